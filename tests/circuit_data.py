"""Shared set-up of the circuit tests (issue 12): the demo directory, référents and
correspondants of two territories, four beneficiaries, a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import copy
import json
import socket
from email import message_from_bytes, policy
from pathlib import Path

from tests.people_data import DEMO, person

SAMPLES = Path(__file__).resolve().parent.parent / "samples"

#: email → (roles, territoire)
PEOPLE = {
    "admin@c.example": (["administrateur"], None),
    "ref.arr@c.example": (["referent"], "arrageois"),
    "ref.art@c.example": (["referent"], "artois"),
    "corr.arr@c.example": (["correspondant"], "arrageois"),
    "corr.art@c.example": (["correspondant"], "artois"),
    "agent.arr@c.example": (["agent_slai"], "arrageois"),
}
PASSWORD = "mot-de-passe-de-test"


def sample(name: str) -> dict:
    return copy.deepcopy(json.loads((SAMPLES / f"fiche-liaison-{name}.json").read_text("utf-8")))


def seed(app) -> dict:
    """Returns ``{"ids": {email: id}, "keys": {email: key}, "b": {name: beneficiary id}}``."""
    from forms_service import db
    from forms_service.accounts import keys, users
    from forms_service.beneficiaries.importer import import_beneficiaries
    from forms_service.directory.file import import_directory, parse_directory

    out: dict = {"ids": {}, "keys": {}}
    with app.app_context(), db.session() as s:
        import_directory(s, parse_directory((DEMO / "annuaire.yaml").read_text("utf-8")), "test")
        for email, (roles, territoire) in PEOPLE.items():
            out["ids"][email] = users.save_user(s, email, roles, password=PASSWORD,
                                                territoire=territoire).id
            _, key = keys.create_key(s, email.split("@")[0], "requests,records,beneficiaries,render,parse",
                                     user_email=email)
            out["keys"][email] = key
        lines = [person(1, "arrageois", "ref.arr@c.example"),
                 person(2, "arrageois", "ref.arr@c.example"),
                 person(3, "artois", "ref.art@c.example"),
                 person(4, "artois", "ref.art@c.example"),
                 person(5, "arrageois", "ref.arr@c.example")]
        report = import_beneficiaries(s, json.dumps(lines).encode(), "b.json")
        assert report.count("created") == 5, report.as_dict()
        ids = [r.id for r in report.lines]
    out["b"] = dict(zip(["arr1", "arr2", "art1", "art2", "arr3"], ids))
    return out


def five_fiches() -> dict[str, tuple[str, str, dict]]:
    """The five fiches the desk's circuit tests print and read back: name → (référent's
    e-mail, beneficiary, data); the last one is invalid (an action CG without its actions)."""
    invalid = sample("actions-cg")
    invalid["actions_cg"] = []
    return {"suspension": ("ref.arr@c.example", "arr1", sample("suspension")),
            "reorientation": ("ref.art@c.example", "art1", sample("reorientation")),
            "actions_cg": ("ref.arr@c.example", "arr2", sample("actions-cg")),
            "demande_appui": ("ref.art@c.example", "art2", sample("demande-appui")),
            "invalid": ("ref.arr@c.example", "arr3", invalid)}


def headers(key: str) -> dict:
    return {"X-API-Key": key}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SmtpServer:
    """A real SMTP server on a loopback port; ``messages`` holds what it received."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        self.messages: list = []
        outer = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                msg = message_from_bytes(envelope.content, policy=policy.default)
                text = msg.get_body(("plain",))
                outer.messages.append({"to": list(envelope.rcpt_tos), "subject": str(msg["Subject"]),
                                       "message_id": str(msg["Message-ID"]),
                                       "body": text.get_content() if text is not None else "",
                                       "attachments": [(a.get_filename(), a.get_content())
                                                       for a in msg.iter_attachments()]})
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def __enter__(self):
        self.controller.start()
        return self

    def __exit__(self, *exc):
        self.controller.stop()

    def wait(self, count: int, timeout: float = 90) -> list[dict]:
        """Until ``count`` messages have arrived (the queue's worker sends them)."""
        import time

        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(self.messages) >= count, f"{len(self.messages)} message(s) of {count}"
        return self.messages

    def to(self, email: str) -> list[dict]:
        return [m for m in self.messages if email in m["to"]]


def mail_worker(app, smtp, tmp_path):
    """A real ``forms-service worker`` (the queue's consumer) that sends to ``smtp``."""
    from tests.desk_queue import start_worker

    settings = app.extensions["forms_service.settings"]
    return start_worker(settings, threads=1, log=tmp_path / "worker.log",
                        SMTP_HOST="127.0.0.1", SMTP_PORT=str(smtp.port), SMTP_STARTTLS="false",
                        MAIL_FROM=settings.mail_from, FORMS_SERVICE_PUBLIC_URL=settings.public_url)

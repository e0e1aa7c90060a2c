"""Webhooks (issue 13, « other systems »): with WEBHOOK_URL and WEBHOOK_SECRET set, every
transition of a request is POSTed from the task queue (a real ``forms-service worker``) to
a real HTTP receiver (``http.server`` on loopback) that checks the signature and the
timestamp itself, answers 500 once, and sees one delivery per transition after the retry;
the body holds ids and codes, no personal data; an administrator reads the delivery log
(API and page) and replays an event (a new delivery of the same body, audited)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from forms_service.config import Settings, SettingsError
from tests.circuit_data import PASSWORD, free_port, headers, sample, seed
from tests.conftest import csrf_token
from tests.desk_queue import start_worker, stop

SECRET = "un-secret-partage-de-test"


class Receiver:
    """A real webhook receiver: verifies each request as docs/circuit.md tells receivers to
    (HMAC-SHA256 of "<timestamp>.<body>", timestamp within 5 minutes), answers 500 to the
    first one, 200 afterwards."""

    def __init__(self, secret: str, fail_first: int = 1):
        self.received: list[dict] = []
        self.refused: list[str] = []
        self.answers: list[int] = []
        outer = self
        remaining = [fail_first]

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                ts = self.headers.get("X-RSA-Timestamp", "")
                expected = "sha256=" + hmac.new(secret.encode(), f"{ts}.".encode() + raw,
                                                hashlib.sha256).hexdigest()
                if not hmac.compare_digest(expected, self.headers.get("X-RSA-Signature", "")):
                    outer.refused.append("signature")
                    code = 401
                elif abs(time.time() - int(ts)) > 300:
                    outer.refused.append("timestamp")
                    code = 401
                elif remaining[0] > 0:
                    remaining[0] -= 1
                    code = 500
                else:
                    outer.received.append({"body": json.loads(raw), "raw": raw,
                                           "delivery": self.headers["X-RSA-Delivery"],
                                           "event": self.headers["X-RSA-Event"]})
                    code = 200
                outer.answers.append(code)
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/rsa/webhooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def wait(self, count: int, timeout: float = 60) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(self.received) >= count, (len(self.received), count, self.answers)
        return self.received


def admin_key(app) -> str:
    from forms_service import db
    from forms_service.accounts import keys

    with app.app_context(), db.session() as s:
        return keys.create_key(s, "admin-webhooks", "admin,requests", user_email="admin@c.example")[1]


def test_a_secret_is_required_with_the_url(tmp_path):
    with pytest.raises(SettingsError, match="WEBHOOK_SECRET"):
        Settings(var_dir=tmp_path, webhook_url="http://127.0.0.1:9/x")


def test_every_transition_is_sent_signed_retried_logged_and_replayed(make_app, tmp_path, db_url):
    with Receiver(SECRET) as receiver:
        app = make_app(database_url=db_url, WEBHOOK_URL=receiver.url, WEBHOOK_SECRET=SECRET,
                       WEBHOOK_RETRY_DELAY="0.5")
        people = seed(app)
        k, b = people["keys"], people["b"]
        k["admin@c.example"] = admin_key(app)
        client = app.test_client()
        settings = app.extensions["forms_service.settings"]
        worker = start_worker(settings, threads=1, log=tmp_path / "worker.log",
                              WEBHOOK_URL=receiver.url, WEBHOOK_SECRET=SECRET,
                              WEBHOOK_RETRY_DELAY="0.5")
        try:
            _transitions(app, client, k, b, receiver)
        finally:
            stop(worker)
    assert receiver.refused == []


def _transitions(app, client, k, b, receiver):
    invalid = sample("suspension")
    invalid["pieces_jointes"]["convocations"] = False
    r = client.post("/api/v1/requests", json={"beneficiaire": b["arr1"], "fiche": invalid},
                    headers=headers(k["ref.arr@c.example"]))
    assert r.status_code == 201, r.get_json()
    rid = r.get_json()["id"]
    # recue → a_corriger (routage), corrected: a_corriger → recue → avis_correspondant,
    # then the correspondant's avis: avis_correspondant → en_ep (a step part 2 continues)
    r = client.post(f"/api/v1/requests/{rid}/correction", json={"fiche": sample("suspension")},
                    headers=headers(k["ref.arr@c.example"]))
    assert r.status_code == 200, r.get_json()
    r = client.post(f"/api/v1/requests/{rid}/avis",
                    json={"etape": "correspondant", "choix": "favorable", "commentaire": "Vu."},
                    headers=headers(k["corr.arr@c.example"]))
    assert r.status_code == 200, r.get_json()
    history = client.get(f"/api/v1/requests/{rid}", headers=headers(k["admin@c.example"])).get_json()
    steps = [(a["etape"], a["etat_avant"], a["etat_apres"]) for a in history["avis"]]
    assert steps == [("routage", "recue", "a_corriger"), ("correction", "a_corriger", "recue"),
                     ("routage", "recue", "avis_correspondant"),
                     ("correspondant", "avis_correspondant", "en_ep")]

    # one delivery per transition (and one for the arrival), the first after a 500
    got = receiver.wait(1 + len(steps))
    time.sleep(1.5)    # nothing more comes: no event is sent twice
    assert len(receiver.received) == 1 + len(steps)
    assert receiver.answers.count(500) == 1 and receiver.answers.count(200) == 1 + len(steps)
    bodies = sorted((m["body"] for m in got), key=lambda x: (x["transition"] or {}).get("avis_id") or 0)
    assert bodies[0]["event"] == "demande.recue" and bodies[0]["transition"] is None
    sent_steps = [(x["transition"]["etape"], x["transition"]["etat_avant"], x["transition"]["etat_apres"])
                  for x in bodies[1:]]
    assert sent_steps == steps
    assert {x["demande"]["id"] for x in bodies} == {rid}
    assert bodies[1]["transition"]["regles"] == ["suspension_convocations_jointes"]
    assert bodies[-1]["transition"]["choix"] == "favorable"
    assert bodies[-1]["demande"]["etat"] == "en_ep" and bodies[-1]["demande"]["territoire"] == "arrageois"
    assert len({x["id"] for x in bodies}) == len(bodies)
    everything = b"".join(m["raw"] for m in got).decode()
    for personal in ("LEMAIRE", "Kevin", "5521907", "1985-09-03", "Boulogne", "Vu.", "c.example"):
        assert personal not in everything

    # the delivery log: through the API (administrators only) and on the page
    assert client.get("/api/v1/webhooks/events", headers=headers(k["ref.arr@c.example"])).status_code == 403
    log = client.get("/api/v1/webhooks/events", query_string={"demande": rid},
                     headers=headers(k["admin@c.example"])).get_json()
    assert log["total"] == 1 + len(steps)
    attempts = [d for e in log["items"] for d in e["deliveries"]]
    assert sorted((d["attempt"], d["status_code"]) for d in attempts) == \
        sorted([(1, 500), (2, 200)] + [(1, 200)] * len(steps))
    assert all(e["delivered"] for e in log["items"])
    failed = next(d for d in attempts if d["status_code"] == 500)
    assert failed["error"] == "HTTP 500" and failed["finished_at"] >= failed["started_at"]

    # replay: a new delivery of the same event (same body, another delivery id), audited
    last = log["items"][0]
    r = client.post(f"/api/v1/webhooks/events/{last['id']}/replay", headers=headers(k["admin@c.example"]))
    assert r.status_code == 202, r.get_json()
    again = receiver.wait(2 + len(steps))[-1]
    assert again["raw"].decode() == last["body"] and again["delivery"] == r.get_json()["delivery"]
    assert again["delivery"] not in {d["delivery"] for d in attempts}
    audit = client.get("/api/v1/audit", query_string={"action": "webhook.rejoue"},
                       headers=headers(k["admin@c.example"])).get_json()
    assert [e["object_id"] for e in audit["items"]] == [str(last["id"])]
    assert client.post("/api/v1/webhooks/events/999999/replay",
                       headers=headers(k["admin@c.example"])).status_code == 404

    # the page: an administrator sees the log and replays from it (CSRF)
    admin = app.test_client()
    token = csrf_token(admin.get("/connexion").get_data(as_text=True))
    admin.post("/connexion", data={"email": "admin@c.example", "mot_de_passe": PASSWORD,
                                   "csrf_token": token})
    page = admin.get(f"/administration/webhooks?demande={rid}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "essai 2" in html and "À corriger par le référent → Reçue" in html
    r = admin.post(f"/administration/webhooks/{last['id']}/renvoyer", data={"csrf_token": csrf_token(html)})
    assert r.status_code == 302
    receiver.wait(3 + len(steps))

    # a module that moves a request on by itself (part 2's steps), without an avis row: the
    # hook is where the state changes, so it is sent too
    from forms_service import db
    from forms_service.circuit.models import Demande

    with app.app_context(), db.session() as s:
        s.get(Demande, rid).etat = "decision"
    moved = receiver.wait(4 + len(steps))[-1]["body"]
    assert moved["transition"]["etape"] is None and moved["demande"]["etat"] == "decision"
    assert (moved["transition"]["etat_avant"], moved["transition"]["etat_apres"]) == ("en_ep", "decision")

    # an event that never reached the queue (the process died between the commit and the
    # queue: written here without the ORM, so nothing queues it): the periodic sweep queues
    # it once, after its grace period
    import datetime as dt

    from sqlalchemy import insert

    from forms_service.desk import queue as desk_queue
    from forms_service.webhooks import sweep
    from forms_service.webhooks.models import WebhookEvent

    assert sweep._periodic in desk_queue.PERIODIC
    sweep.register()   # registered again (an app made twice): still one periodic job
    assert desk_queue.PERIODIC.count(sweep._periodic) == 1
    settings = app.extensions["forms_service.settings"]
    lost_at = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    with app.app_context():
        with db.get_database().engine.begin() as c:
            lost = c.execute(insert(WebhookEvent.__table__).values(
                demande_id=rid, event="demande.transition", body=moved_raw(receiver),
                created_at=lost_at)).inserted_primary_key[0]
    assert sweep.sweep(settings, now=lost_at + dt.timedelta(seconds=30)) == []   # within its grace
    assert set(sweep.sweep(settings)) <= {lost}     # (or the worker's own minute took it)
    assert sweep.sweep(settings) == []              # queued: not again
    swept = receiver.wait(5 + len(steps))[-1]
    assert swept["raw"].decode() == moved_raw(receiver) and len(receiver.received) == 5 + len(steps)
    log = client.get("/api/v1/webhooks/events", query_string={"demande": rid},
                     headers=headers(k["admin@c.example"])).get_json()
    assert next(e for e in log["items"] if e["id"] == lost)["delivered"]


def moved_raw(receiver) -> str:
    """The body of the last transition received (the request moved on by itself)."""
    return next(m for m in reversed(receiver.received) if m["body"]["transition"]
                and m["body"]["transition"]["etape"] is None)["raw"].decode()

"""The circuit's e-mails (issue 12): sent to a real SMTP server, retried when it refuses
once, written as .eml files when no SMTP_HOST is set; logged without addresses. (The
outbox's guarantees: tests/test_circuit_outbox.py.)"""

from __future__ import annotations

from email import message_from_bytes, policy

from forms_service.circuit import mailing, notify
from tests.circuit_data import SmtpServer, free_port


def _mail():
    return notify.Mail(to=("corr.arr@c.example",), subject="Fiche de liaison n° 7 à examiner",
                       body="Bonjour,\n\nUne fiche de liaison vous a été transmise.",
                       about="demande:7", link="/correspondant/demandes/7", kind="nouvelle")


def test_a_refused_message_is_retried_then_received(make_app, log_lines):
    """The server refuses once (451): the delivery fails, is counted and released; the
    queue's retry delivers it; the log names no address."""
    import pytest

    from forms_service import db

    with SmtpServer() as smtp:
        refusals = []
        handler = smtp.controller.handler
        accept = handler.handle_DATA

        async def once_busy(server, session, envelope):
            if not refusals:
                refusals.append(1)
                return "451 Réessayez plus tard"
            return await accept(server, session, envelope)

        handler.handle_DATA = once_busy
        app = make_app(SMTP_HOST="127.0.0.1", SMTP_PORT=smtp.port, SMTP_STARTTLS="false",
                       FORMS_SERVICE_PUBLIC_URL="https://rsa.example/", MAIL_FROM="rsa@d.example",
                       QUEUE_URL=f"redis://127.0.0.1:{free_port()}/0")   # left in the outbox
        settings = app.extensions["forms_service.settings"]
        with app.app_context(), db.session() as s:
            (row,) = mailing.stage(s, settings, [_mail()])
        with pytest.raises(Exception):
            mailing.deliver(settings, row.id)          # the first try: refused
        assert mailing.deliver(settings, row.id) is True  # the queue's retry
    assert len(smtp.messages) == 1
    received = smtp.messages[0]
    assert received["subject"] == "Fiche de liaison n° 7 à examiner"
    assert "https://rsa.example/correspondant/demandes/7" in received["body"]
    events = [e for e in log_lines() if e.get("logger") in ("forms_service.circuit.notify",
                                                             "forms_service.circuit.mailing")]
    assert [e["event"] for e in events if e["event"].startswith("mail_")] == [
        "mail_queue_unavailable", "mail_failed", "mail_sent"]
    assert "corr.arr@c.example" not in str(events)


def test_without_smtp_host_messages_are_eml_files(make_app):
    from forms_service import db

    app = make_app()
    settings = app.extensions["forms_service.settings"]
    assert notify.outbox_mode(settings)
    with app.app_context(), db.session() as s:
        mailing.stage(s, settings, [_mail()])
    files = list((settings.var_dir / "outbox").glob("*.eml"))
    assert len(files) == 1
    msg = message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert msg["To"] == "corr.arr@c.example" and msg["From"] == settings.mail_from
    assert "Une fiche de liaison vous a été transmise." in msg.get_content()

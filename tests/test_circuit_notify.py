"""The circuit's e-mails (issue 12): sent to a real SMTP server, retried when it refuses
once, written as .eml files when no SMTP_HOST is set; logged without addresses."""

from __future__ import annotations

from email import message_from_bytes, policy

from forms_service.circuit import mailing, notify
from forms_service.config import Settings
from tests.circuit_data import SmtpServer


def _mail():
    return notify.Mail(to=("corr.arr@c.example",), subject="Fiche de liaison n° 7 à examiner",
                       body="Bonjour,\n\nUne fiche de liaison vous a été transmise.",
                       about="demande:7", link="/correspondant/demandes/7", kind="nouvelle")


def test_a_refused_message_is_retried_then_received(tmp_path, log_lines, monkeypatch):
    monkeypatch.setattr(notify, "RETRY_DELAY_SECONDS", 0.01)
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
        settings = Settings(var_dir=tmp_path, smtp_host="127.0.0.1", smtp_port=smtp.port,
                            public_url="https://rsa.example/", mail_from="rsa@d.example")
        assert notify.deliver_with_retry(settings, _mail())
    assert len(smtp.messages) == 1
    received = smtp.messages[0]
    assert received["subject"] == "Fiche de liaison n° 7 à examiner"
    assert "https://rsa.example/correspondant/demandes/7" in received["body"]
    events = [e for e in log_lines() if e.get("logger") == "forms_service.circuit.notify"]
    assert [e["event"] for e in events] == ["mail_failed", "mail_sent"]
    assert "corr.arr@c.example" not in str(events)


def test_without_smtp_host_messages_are_eml_files(tmp_path):
    settings = Settings(var_dir=tmp_path)
    assert notify.outbox_mode(settings)
    mailing.send_all(settings, [_mail()])
    files = list((tmp_path / "outbox").glob("*.eml"))
    assert len(files) == 1
    msg = message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert msg["To"] == "corr.arr@c.example" and msg["From"] == settings.mail_from
    assert "Une fiche de liaison vous a été transmise." in msg.get_content()


def test_an_unreachable_server_is_given_up_and_logged(tmp_path, log_lines, monkeypatch):
    from tests.circuit_data import free_port

    monkeypatch.setattr(notify, "RETRY_DELAY_SECONDS", 0.01)
    settings = Settings(var_dir=tmp_path, smtp_host="127.0.0.1", smtp_port=free_port())
    assert notify.deliver_with_retry(settings, _mail()) is False
    events = [e["event"] for e in log_lines() if e.get("logger") == "forms_service.circuit.notify"]
    assert events == ["mail_failed"] * notify.RETRIES + ["mail_abandoned"]

"""The circuit's e-mails leave through an outbox (``circuit.mailing``), with real SQLite,
a real Huey queue and a real SMTP server (aiosmtpd):

- a message is written in its transaction: rolled back, nothing goes; committed, it goes
  once, and delivering or sweeping it again sends nothing more;
- the queue's storage down at the commit (a Redis nobody listens on): the message waits in
  the outbox, the sweep hands it to a queue that works, the queue's task sends it once;
- two deliveries racing for one message: the SMTP server gets it once;
- a failed delivery is counted and released for the next try (its error's type, no address);
- a delivery that died after the SMTP server took the message sends it again once its claim
  expired, with the same ``Message-ID``.
"""

from __future__ import annotations

import datetime as dt
import json
import threading

import pytest
from sqlalchemy import select

from forms_service import db
from forms_service.circuit import mailing, notify
from forms_service.circuit.outbox_models import OutgoingMail
from forms_service.db.models import utcnow
from tests.circuit_data import SmtpServer, free_port


def _mail(to="corr.arr@c.example", n=7):
    return notify.Mail(to=(to,), subject=f"Fiche de liaison n° {n} à examiner",
                       body="Bonjour,\n\nUne fiche de liaison vous a été transmise.",
                       about=f"demande:{n}", link=f"/correspondant/demandes/{n}", kind="nouvelle",
                       attachments=(notify.Attachment("fiche.pdf", "application/pdf", b"%PDF-1.7 x"),))


def _rows(settings):
    with db.session(settings) as s:
        return [(r.id, r.queued_at is not None, r.sent_at is not None, r.attempts, r.last_error)
                for r in s.scalars(select(OutgoingMail).order_by(OutgoingMail.id))]


def _staged_beside(make_app, smtp, *, n):
    """An app sending through ``smtp``, its queue down (the message stays in the outbox),
    and one message staged: (settings, its row)."""
    app = make_app(SMTP_HOST="127.0.0.1", SMTP_PORT=smtp.port, SMTP_STARTTLS="false",
                   QUEUE_URL=f"redis://127.0.0.1:{free_port()}/0")
    settings = app.extensions["forms_service.settings"]
    with app.app_context(), db.session() as s:
        (row,) = mailing.stage(s, settings, [_mail(n=n)])
    return settings, row


def _later(minutes=2):
    return utcnow() + dt.timedelta(minutes=minutes)


def test_a_rolled_back_message_never_goes_a_committed_one_goes_once(make_app):
    from email import message_from_bytes, policy

    app = make_app()
    settings = app.extensions["forms_service.settings"]
    outbox = settings.var_dir / "outbox"
    with pytest.raises(RuntimeError), app.app_context(), db.session() as s:
        mailing.stage(s, settings, [_mail(n=1)])
        raise RuntimeError("the avis failed: its transaction is rolled back")
    assert _rows(settings) == [] and not list(outbox.glob("*.eml"))

    with app.app_context(), db.session() as s:
        (row,) = mailing.stage(s, settings, [_mail(n=2), notify.Mail(
            to=(), subject="s", body="b", about="demande:2")])   # no addressee: not written
    ((mail_id, _queued, sent, attempts, _error),) = _rows(settings)
    assert mail_id == row.id and sent and attempts == 0
    (eml,) = outbox.glob("*.eml")
    msg = message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert msg["Subject"] == "Fiche de liaison n° 2 à examiner"
    assert [a.get_filename() for a in msg.iter_attachments()] == ["fiche.pdf"]
    assert mailing.deliver(settings, mail_id) is None               # sent: not again
    assert mailing.sweep(settings, now=_later(30)) == []
    assert len(list(outbox.glob("*.eml"))) == 1
    with db.session(settings) as s:     # the attachment's content is not kept once sent
        assert "JVBERi" not in s.get(OutgoingMail, mail_id).payload


def test_the_queue_down_at_the_commit_then_the_sweep_sends_it_once(make_app, log_lines):
    with SmtpServer() as smtp:
        smtp_env = dict(SMTP_HOST="127.0.0.1", SMTP_PORT=smtp.port, SMTP_STARTTLS="false")
        down = make_app(QUEUE_URL=f"redis://127.0.0.1:{free_port()}/0", **smtp_env)
        settings = down.extensions["forms_service.settings"]
        with down.app_context(), db.session() as s:
            mailing.stage(s, settings, [_mail(n=3)])     # committed; the queue refuses it
        ((mail_id, queued, sent, _a, _e),) = _rows(settings)
        assert not queued and not sent and smtp.messages == []
        assert "mail_queue_unavailable" in [e["event"] for e in log_lines()]

        # the same service once its queue is back (SQLite queue, same database)
        up = make_app(DATABASE_URL=settings.database_url, **smtp_env)
        up_settings = up.extensions["forms_service.settings"]
        assert mailing.sweep(up_settings) == []                  # within its grace: left
        assert mailing.sweep(up_settings, now=_later()) == [mail_id]
        assert mailing.sweep(up_settings, now=_later()) == []    # on the queue now: not twice
        from forms_service.desk.queue import get_queue

        huey = get_queue(up_settings).huey
        task = huey.dequeue()
        assert task is not None and huey.dequeue() is None
        huey.execute(task)                                       # the queue's own task
        assert [m["subject"] for m in smtp.messages] == ["Fiche de liaison n° 3 à examiner"]
        assert smtp.messages[0]["attachments"] == [("fiche.pdf", b"%PDF-1.7 x")]
        huey.execute(task)                                       # a retry of a sent one
        assert mailing.sweep(up_settings, now=_later(60)) == []
        assert len(smtp.messages) == 1
        events = [e for e in log_lines() if e.get("logger") == "forms_service.circuit.mailing"]
        assert "corr.arr@c.example" not in str(events)


def test_two_deliveries_racing_for_one_message_send_it_once(make_app):
    with SmtpServer() as smtp:
        settings, row = _staged_beside(make_app, smtp, n=4)
        start, results = threading.Barrier(4), []

        def deliver():
            start.wait()
            results.append(mailing.deliver(settings, row.id))

        threads = [threading.Thread(target=deliver) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results, key=str) == [None, None, None, True]
        assert len(smtp.messages) == 1


def test_a_failed_delivery_is_counted_and_released_for_the_next_try(make_app):
    app = make_app(SMTP_HOST="127.0.0.1", SMTP_PORT=free_port(), SMTP_STARTTLS="false",
                   QUEUE_URL=f"redis://127.0.0.1:{free_port()}/0")       # no SMTP server there
    settings = app.extensions["forms_service.settings"]
    with app.app_context(), db.session() as s:
        (row,) = mailing.stage(s, settings, [_mail(n=5)])
    with pytest.raises(OSError):
        mailing.deliver(settings, row.id)
    ((_id, _q, sent, attempts, error),) = _rows(settings)
    assert (sent, attempts, error) == (False, 1, "ConnectionRefusedError")
    with db.session(settings) as s:                  # released: the next try may take it
        assert s.get(OutgoingMail, row.id).claimed_at is None


def test_a_message_sent_again_after_a_crash_keeps_its_message_id(make_app):
    with SmtpServer() as smtp:
        settings, row = _staged_beside(make_app, smtp, n=6)
        taken = mailing._claim(settings, row.id)                 # a delivery takes it,
        notify.deliver(settings, mailing._as_mail(json.loads(taken.payload)))  # the server too,
        with db.session(settings) as s:                          # and the process dies here
            s.get(OutgoingMail, row.id).claimed_at = utcnow() - mailing.CLAIM_TIMEOUT * 2
        assert mailing.deliver(settings, row.id) is True         # sent again, the claim expired
        first, again = smtp.messages
        assert first["message_id"] == again["message_id"] and "@rsa-formulaires>" in first["message_id"]
        assert mailing.deliver(settings, row.id) is None         # and not a third time

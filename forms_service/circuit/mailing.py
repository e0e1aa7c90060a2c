"""The circuit's e-mails leave through an outbox: written in the transaction that makes
them, sent after it commits, exactly once.

    with db.session() as s:
        outcome = service.record_avis(s, ...)
        mailing.stage(s, settings, outcome.mails)   # rows of ``outgoing_mail``, same transaction
    # committed: each is handed to the task queue (task ``circuit.send_mail``, by id), or,
    # with no SMTP_HOST, written at once as an .eml file under ``<var>/outbox/``

- A transaction rolled back sends nothing; a committed one loses nothing: a message the
  queue never got (its storage was down, the process died between the commit and the
  queue), or got and lost (a worker killed with its job), is handed over again by the
  queue's periodic :func:`sweep`.
- A message is delivered once: a delivery first claims its row (``claimed_at``, one at
  a time, whoever else tries: a retry, the sweep, a second worker), and a row once sent
  (``sent_at``) is never sent again. The one window left is SMTP's own: a process that
  dies after the server took the message and before ``sent_at`` is written sends it again
  after :data:`CLAIM_TIMEOUT` — with the same ``Message-ID`` (chosen when the row is
  written), by which mail systems recognise a message they already have.
- Logged by row id, request and address count, never the addresses.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import smtplib
from functools import partial

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from forms_service import db
from forms_service.circuit import notify
from forms_service.circuit.notify import Mail, payload
from forms_service.circuit.outbox_models import OutgoingMail
from forms_service.config import Settings
from forms_service.db.models import utcnow
from forms_service.db.on_commit import on_commit
from forms_service.logging_setup import get_logger

log = get_logger(__name__)

#: A message younger than this may still be handed over by its own commit: the sweep leaves it.
GRACE = dt.timedelta(seconds=60)
#: A message on the queue this long without being sent lost its job: the sweep hands it over again.
REQUEUE_AFTER = dt.timedelta(minutes=10)
#: A claim older than this was made by a process that died mid-delivery: it may be taken again.
CLAIM_TIMEOUT = dt.timedelta(minutes=5)
#: After this many failed deliveries, the sweep leaves the message (logged ``mail_abandoned``).
MAX_ATTEMPTS = 20
#: At most this many per sweep (the next minute takes the rest).
SWEEP_BATCH = 200


# --------------------------------------------------------------------------- in the transaction

def stage(s: Session, settings: Settings | None, mails) -> list[OutgoingMail]:
    """Write ``mails`` in ``s``'s transaction; they are handed over once it commits."""
    rows = []
    for mail in mails:
        if not mail.to:
            log.info("mail_no_addressee", about=mail.about, kind=mail.kind)
            continue
        rows.append(OutgoingMail(about=mail.about[:64], kind=mail.kind[:32],
                                 payload=json.dumps(payload(mail)), attempts=0))
    if not rows:
        return rows
    s.add_all(rows)
    s.flush()
    if settings is not None:   # else (no settings in force) the sweep hands them over
        for row in rows:       # once the outermost transaction commits; rolled back: gone
            on_commit(s, partial(hand_over, settings, row.id))
    return rows


# --------------------------------------------------------------------------- after the commit

def hand_over(settings: Settings, mail_id: int) -> bool:
    """Onto the task queue (SMTP), or delivered at once (no SMTP_HOST: an .eml file).
    False when it did not go now: the sweep hands it over later."""
    if notify.outbox_mode(settings):
        try:
            return deliver(settings, mail_id) is not False
        except (OSError, smtplib.SMTPException):   # logged by deliver: the sweep tries again
            return False
    from forms_service.desk.queue import get_queue

    try:
        get_queue(settings).send_mail(mail_id)
    except Exception as exc:   # the queue's storage is down: the sweep takes it
        log.warning("mail_queue_unavailable", mail_id=mail_id, exc_type=type(exc).__name__)
        return False
    try:
        with db.session(settings) as s:
            s.execute(update(OutgoingMail).where(OutgoingMail.id == mail_id)
                      .values(queued_at=utcnow()))
    except Exception as exc:   # the database is down: the sweep hands it over again, once
        log.warning("mail_not_marked_queued", mail_id=mail_id, exc_type=type(exc).__name__)
    log.info("mail_queued", mail_id=mail_id)
    return True


def _claim(settings: Settings, mail_id: int) -> OutgoingMail | None:
    """The row, taken for this delivery; None when it is sent or being sent."""
    now = utcnow()
    with db.session(settings) as s:
        taken = s.execute(
            update(OutgoingMail)
            .where(OutgoingMail.id == mail_id, OutgoingMail.sent_at.is_(None),
                   or_(OutgoingMail.claimed_at.is_(None),
                       OutgoingMail.claimed_at < now - CLAIM_TIMEOUT))
            .values(claimed_at=now)).rowcount
        return s.get(OutgoingMail, mail_id) if taken == 1 else None


def _as_mail(data: dict) -> Mail:
    return Mail(to=tuple(data["to"]), subject=data["subject"], body=data["body"],
                about=data["about"], link=data.get("link", ""), kind=data.get("kind", "info"),
                message_id=data.get("message_id", ""),
                attachments=tuple(notify.Attachment(a["filename"], a["mimetype"],
                                                    base64.b64decode(a["content"]))
                                  for a in data.get("attachments", [])))


def _sent_payload(data: dict) -> str:
    """What is kept of a sent message: its attachments' names, not their content."""
    kept = dict(data, attachments=[{"filename": a["filename"], "mimetype": a["mimetype"]}
                                   for a in data.get("attachments", [])])
    return json.dumps(kept)


def deliver(settings: Settings, mail_id: int) -> bool | None:
    """Deliver one row (the queue's task, or at once in .eml mode). None when it was not
    to deliver (sent already, or a delivery holds it); True once delivered; on failure
    the claim is released, the attempt counted, and the error raised (the queue retries)."""
    row = _claim(settings, mail_id)
    if row is None:
        log.info("mail_not_to_send", mail_id=mail_id)
        return None
    data = json.loads(row.payload)
    try:
        notify.deliver(settings, _as_mail(data))
    except (OSError, smtplib.SMTPException) as exc:
        with db.session(settings) as s:
            s.execute(update(OutgoingMail).where(OutgoingMail.id == mail_id)
                      .values(claimed_at=None, attempts=OutgoingMail.attempts + 1,
                              last_error=type(exc).__name__[:255]))
        log.warning("mail_failed", mail_id=mail_id, about=row.about, kind=row.kind,
                    exc_type=type(exc).__name__)
        raise
    with db.session(settings) as s:
        s.execute(update(OutgoingMail).where(OutgoingMail.id == mail_id)
                  .values(sent_at=utcnow(), claimed_at=None, payload=_sent_payload(data)))
    return True


def _send_task(queue, item) -> None:
    """The queue's task ``circuit.send_mail``: one outbox row by id. A task queued before
    the outbox (the message itself, a dict) is still delivered."""
    if isinstance(item, dict):
        notify.deliver(queue.settings, _as_mail(item))
        return
    deliver(queue.settings, int(item))


# --------------------------------------------------------------------------- the sweep

def sweep(settings: Settings, *, now: dt.datetime | None = None) -> list[int]:
    """Hand over again every message not sent that the queue never got (older than
    :data:`GRACE`) or got and lost (queued more than :data:`REQUEUE_AFTER` ago); the ids."""
    now = now or utcnow()
    with db.session(settings) as s:
        rows = s.execute(
            select(OutgoingMail.id, OutgoingMail.attempts)
            .where(OutgoingMail.sent_at.is_(None), OutgoingMail.created_at < now - GRACE,
                   or_(OutgoingMail.queued_at.is_(None),
                       OutgoingMail.queued_at < now - REQUEUE_AFTER),
                   or_(OutgoingMail.claimed_at.is_(None),
                       OutgoingMail.claimed_at < now - CLAIM_TIMEOUT))
            .order_by(OutgoingMail.id).limit(SWEEP_BATCH)).all()
    handed = []
    for mail_id, attempts in rows:
        if attempts >= MAX_ATTEMPTS:
            log.error("mail_abandoned", mail_id=mail_id, attempts=attempts)
            continue
        if hand_over(settings, mail_id):
            handed.append(mail_id)
    if rows:
        log.info("mail_sweep", found=len(rows), handed=len(handed))
    return handed


def _periodic(queue) -> None:
    sweep(queue.settings)


def register() -> None:
    """The queue's mail task and periodic sweep (``circuit.hooks.install`` calls it)."""
    from forms_service.desk import queue as desk_queue

    desk_queue.HANDLERS[desk_queue.MAIL_TASK] = _send_task
    desk_queue.periodic(_periodic)


__all__ = ["stage", "hand_over", "deliver", "sweep", "register",
           "CLAIM_TIMEOUT", "GRACE", "REQUEUE_AFTER"]

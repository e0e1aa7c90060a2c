"""Handing the circuit's e-mails over once their transaction committed: to the task queue
(the desk's Huey, task ``circuit.send_mail`` of :mod:`forms_service.circuit.notify`), or,
with no ``SMTP_HOST``, written at once as ``.eml`` files under ``<var>/outbox/``."""

from __future__ import annotations

from forms_service.circuit import notify
from forms_service.circuit.notify import payload
from forms_service.config import Settings
from forms_service.logging_setup import get_logger

log = get_logger(__name__)


def send_all(settings: Settings, mails) -> None:
    """After the transaction that made them committed: onto the task queue (SMTP), or
    written at once as .eml files (no SMTP_HOST: nothing to wait for)."""
    for mail in mails:
        if not mail.to:
            log.info("mail_no_addressee", about=mail.about, kind=mail.kind)
    mails = [m for m in mails if m.to]
    if not mails:
        return
    if notify.outbox_mode(settings):
        for mail in mails:
            notify.deliver_with_retry(settings, mail)
        return
    from forms_service.desk.queue import get_queue

    queue = get_queue(settings)
    for mail in mails:
        try:
            queue.send_mail(payload(mail))
            log.info("mail_queued", about=mail.about, kind=mail.kind, recipients=len(mail.to))
        except Exception as exc:   # the queue's storage is down: try now rather than lose it
            log.warning("mail_queue_unavailable", about=mail.about, exc_type=type(exc).__name__)
            notify.deliver_with_retry(settings, mail)


__all__ = ["send_all"]

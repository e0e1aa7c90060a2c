"""The sweep: webhook events that never reached the task queue are queued again.

An event is written in its transition's transaction and handed to the queue once that
commits (``events._after_commit`` → ``dispatch.enqueue``, which sets ``queued_at``). If
the queue's storage was down then, or the process died between the commit and the queue,
the event has no ``queued_at``: the queue's periodic job (once a minute, once whatever the
number of workers: the desk queue's key per period) queues every such event older than
``GRACE_SECONDS`` (so as not to race a commit that is about to queue it).

    queued = sweep(settings)        # the event ids queued again
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from forms_service import db
from forms_service.config import Settings
from forms_service.db.models import utcnow
from forms_service.logging_setup import get_logger
from forms_service.webhooks.models import WebhookEvent

log = get_logger(__name__)

#: An event younger than this may still be queued by its own commit.
GRACE_SECONDS = 60
#: At most this many per run (the next minute takes the rest).
BATCH = 500


def sweep(settings: Settings, *, now: dt.datetime | None = None) -> list[int]:
    """Queue again the events never queued (see the module docstring); their ids."""
    from forms_service.webhooks.dispatch import enqueue
    from forms_service.webhooks.events import configured

    if not configured(settings):
        return []
    before = (now or utcnow()) - dt.timedelta(seconds=GRACE_SECONDS)
    with db.session(settings) as s:
        ids = list(s.scalars(select(WebhookEvent.id)
                             .where(WebhookEvent.queued_at.is_(None), WebhookEvent.created_at < before)
                             .order_by(WebhookEvent.id).limit(BATCH)))
    queued = [event_id for event_id in ids if enqueue(settings, event_id)]
    if ids:
        log.info("webhook_sweep", found=len(ids), queued=len(queued))
    return queued


def _periodic(queue) -> None:
    sweep(queue.settings)


def register() -> None:
    """Onto the desk queue's periodic jobs (``circuit.hooks.install`` calls it)."""
    from forms_service.desk import queue as desk_queue

    desk_queue.periodic(_periodic)


__all__ = ["sweep", "register", "GRACE_SECONDS"]

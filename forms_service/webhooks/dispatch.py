"""Handing webhook events to the task queue, and replaying one.

    enqueue(settings, event_id)                 # after the transition's commit (events.py);
                                                # marks it queued (``queued_at``)
    replay(principal, event_id, settings)       # a new delivery of the same event (audited)

The queue's task itself is :mod:`.delivery` (``webhooks.deliver``).
"""

from __future__ import annotations

import uuid

from forms_service import db
from forms_service.audit import record_event
from forms_service.config import Settings
from forms_service.errors import ComponentMissing, Conflict, NotFound
from forms_service.logging_setup import get_logger
from forms_service.webhooks.delivery import SYSTEM
from forms_service.webhooks.models import WebhookEvent

log = get_logger(__name__)


def enqueue(settings: Settings | None, event_id: int, *, requested_by: str = SYSTEM) -> str | None:
    """Hand one event to the queue as a new delivery; returns its id."""
    if settings is None or not settings.webhook_url:
        return None
    from forms_service.desk.queue import get_queue

    delivery = str(uuid.uuid4())
    try:
        get_queue(settings).deliver_webhook(event_id, delivery, requested_by)
    except Exception as exc:   # the queue's storage is down: the log shows it never left
        log.error("webhook_queue_unavailable", event_id=event_id, exc_type=type(exc).__name__)
        return None
    _mark_queued(settings, event_id)
    log.info("webhook_queued", event_id=event_id, delivery=delivery)
    return delivery


def _mark_queued(settings: Settings, event_id: int) -> None:
    """The event is on the queue: the sweep leaves it (``webhook_event.queued_at``)."""
    from sqlalchemy import update

    from forms_service.db.models import utcnow

    try:
        with db.session(settings) as s:
            s.execute(update(WebhookEvent).where(WebhookEvent.id == event_id,
                                                 WebhookEvent.queued_at.is_(None))
                      .values(queued_at=utcnow()))
    except Exception as exc:   # the database is down: the sweep may send it twice, never lose it
        log.warning("webhook_not_marked_queued", event_id=event_id, exc_type=type(exc).__name__)


def replay(principal, event_id: int, settings: Settings) -> str:
    """A new delivery of the same event (same body, a new delivery id, new timestamps),
    audited; returns the delivery id. 409 when webhooks are not configured (the request
    conflicts with the service's configuration: nothing to send to), 404 for an unknown
    event, 503 when the queue is down."""
    if not (settings.webhook_url and settings.webhook_secret):
        raise Conflict("Webhooks non configurés (WEBHOOK_URL, WEBHOOK_SECRET) : rien à renvoyer",
                       rule="webhook_non_configure")
    with db.session(settings) as s:
        event = s.get(WebhookEvent, event_id)
        if event is None:
            raise NotFound("Évènement introuvable", path="event_id")
        record_event(principal, "webhook.rejoue", object_type="webhook_event", object_id=event_id,
                     session=s, demande_id=event.demande_id, webhook=event.event)
    delivery = enqueue(settings, event_id, requested_by=principal.actor)
    if delivery is None:
        raise ComponentMissing("File d'attente indisponible : réessayez plus tard",
                               rule="file_indisponible")
    return delivery


__all__ = ["enqueue", "replay"]

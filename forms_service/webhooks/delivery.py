"""Sending the webhooks: the queue task, its retries, the delivery log, replay.

    enqueue(settings, event_id)                   # after the transition's commit
    replay(session, principal, event_id)          # a new delivery of the same event (audited)
    deliveries_page(session, demande=3, page=1)   # the log, newest first

The task ``webhooks.deliver`` (on the desk's Huey queue, registered by ``register_task``)
POSTs the event's body to ``WEBHOOK_URL`` with ``X-RSA-Signature`` / ``X-RSA-Timestamp``
(:mod:`.signing`), ``X-RSA-Event`` and ``X-RSA-Delivery``; every attempt is a
``WebhookDelivery`` row (status code or error, start and end). Anything but a 2xx raises,
and the queue tries again ``WEBHOOK_RETRIES`` times, ``WEBHOOK_RETRY_DELAY`` seconds after
the first failure, twice as long each time (Huey's ``retry_backoff``).
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
import uuid

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from forms_service import db
from forms_service.audit import record_event
from forms_service.config import Settings
from forms_service.db.models import utcnow
from forms_service.errors import NotFound
from forms_service.logging_setup import get_logger
from forms_service.webhooks import signing
from forms_service.webhooks.models import WebhookDelivery, WebhookEvent

log = get_logger(__name__)

TIMEOUT_SECONDS = 10
BACKOFF = 2
PER_PAGE = 50
SYSTEM = "systeme"


class DeliveryFailed(Exception):
    """An attempt that did not get a 2xx (the queue retries)."""


def post(settings: Settings, event: WebhookEvent, delivery: str) -> tuple[int | None, str | None]:
    """One HTTP attempt: (status code, error). Never raises for the receiver's answer."""
    data = event.body.encode("utf-8")
    headers = {"Content-Type": "application/json", "User-Agent": "forms-service-webhooks/1",
               "X-RSA-Event": event.event, "X-RSA-Delivery": delivery,
               **signing.headers(settings.webhook_secret or "", data)}
    req = urllib.request.Request(settings.webhook_url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_SECONDS) as resp:
            resp.read(65536)
            return resp.status, None
    except urllib.error.HTTPError as exc:
        return exc.code, f"HTTP {exc.code}"
    except (OSError, ValueError) as exc:   # refused, timeout, DNS, TLS, bad URL
        reason = getattr(exc, "reason", None)
        return None, type(reason if isinstance(reason, BaseException) else exc).__name__[:255]


def attempt(settings: Settings, event_id: int, delivery: str, number: int,
            requested_by: str = SYSTEM) -> WebhookDelivery | None:
    """Attempt ``number`` of ``delivery``: sent, logged; raises ``DeliveryFailed`` unless 2xx."""
    with db.session(settings) as s:
        event = s.get(WebhookEvent, event_id)
        if event is None:   # its transition was rolled back (a savepoint), or deleted
            log.warning("webhook_event_missing", event_id=event_id, delivery=delivery)
            return None
        s.expunge(event)
    started = utcnow()
    status, error = post(settings, event, delivery)
    row = WebhookDelivery(event_id=event_id, delivery=delivery, attempt=number,
                          status_code=status, error=error, started_at=started,
                          finished_at=utcnow(), requested_by=requested_by)
    with db.session(settings) as s:
        s.add(row)
    log.info("webhook_attempt", event_id=event_id, demande_id=event.demande_id, delivery=delivery,
             attempt=number, status=status, error=error)
    if not row.ok:
        raise DeliveryFailed(error or f"HTTP {status}")
    return row


def register_task(huey, settings: Settings):
    """The queue's ``webhooks.deliver`` task (producer and consumer alike)."""
    retries = settings.webhook_retries

    def deliver(event_id: int, delivery: str, requested_by: str = SYSTEM, task=None) -> None:
        left = task.retries if task is not None else 0
        attempt(settings, event_id, delivery, retries - left + 1, requested_by)

    return huey.task(name="webhooks.deliver", retries=retries,
                     retry_delay=settings.webhook_retry_delay, retry_backoff=BACKOFF,
                     context=True)(deliver)


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
    log.info("webhook_queued", event_id=event_id, delivery=delivery)
    return delivery


def replay(principal, event_id: int, settings: Settings) -> str:
    """A new delivery of the same event (same body, a new delivery id, new timestamps),
    audited; returns the delivery id. 404 for an unknown event, 503 when webhooks are not
    configured or the queue is down."""
    from forms_service.errors import ComponentMissing

    if not (settings.webhook_url and settings.webhook_secret):
        raise ComponentMissing("Webhooks non configurés (WEBHOOK_URL, WEBHOOK_SECRET)",
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


def event_view(event: WebhookEvent) -> dict:
    deliveries = [{"delivery": d.delivery, "attempt": d.attempt, "status_code": d.status_code,
                   "error": d.error, "started_at": d.started_at.isoformat(),
                   "finished_at": d.finished_at.isoformat() if d.finished_at else None,
                   "requested_by": d.requested_by, "ok": d.ok} for d in event.deliveries]
    transition = json.loads(event.body).get("transition") or {}
    return {"id": event.id, "demande_id": event.demande_id, "event": event.event,
            "created_at": event.created_at.isoformat(), "body": event.body,
            "etape": transition.get("etape"), "choix": transition.get("choix"),
            "etat_avant": transition.get("etat_avant"), "etat_apres": transition.get("etat_apres"),
            "delivered": any(d["ok"] for d in deliveries), "deliveries": deliveries}


def events_page(s: Session, *, demande: int | None = None, failed: bool = False,
                page: int = 1, per_page: int = PER_PAGE) -> dict:
    """The delivery log by event, newest first: each event with its attempts."""
    stmt = select(WebhookEvent)
    if demande is not None:
        stmt = stmt.where(WebhookEvent.demande_id == demande)
    if failed:
        ok = (select(WebhookDelivery.id).where(WebhookDelivery.event_id == WebhookEvent.id,
                                               WebhookDelivery.status_code >= 200,
                                               WebhookDelivery.status_code < 300).exists())
        stmt = stmt.where(~ok)
    total = s.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = s.scalars(stmt.order_by(WebhookEvent.id.desc())
                     .offset((page - 1) * per_page).limit(per_page)).all()
    return {"items": [event_view(e) for e in rows], "page": page,
            "pages": max(1, math.ceil(total / per_page)), "total": total}


__all__ = ["enqueue", "replay", "attempt", "register_task", "events_page", "event_view",
           "DeliveryFailed", "post"]

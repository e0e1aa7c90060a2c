"""Sending the webhooks: the queue task and its retries (what a worker runs).

The task ``webhooks.deliver`` (on the desk's Huey queue, registered by ``register_task``)
POSTs the event's body to ``WEBHOOK_URL`` with ``X-RSA-Signature`` / ``X-RSA-Timestamp``
(:mod:`.signing`), ``X-RSA-Event`` and ``X-RSA-Delivery``; every attempt is a
``WebhookDelivery`` row (status code or error, start and end). Anything but a 2xx raises,
and the queue tries again ``WEBHOOK_RETRIES`` times, ``WEBHOOK_RETRY_DELAY`` seconds after
the first failure, twice as long each time (Huey's ``retry_backoff``).
"""

from __future__ import annotations

import urllib.error
import urllib.request

from forms_service import db
from forms_service.config import Settings
from forms_service.db.models import utcnow
from forms_service.logging_setup import get_logger
from forms_service.webhooks import signing
from forms_service.webhooks.models import WebhookDelivery, WebhookEvent

log = get_logger(__name__)

TIMEOUT_SECONDS = 10
BACKOFF = 2
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


__all__ = ["attempt", "register_task", "post", "DeliveryFailed", "SYSTEM"]

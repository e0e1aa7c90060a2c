"""The webhooks' delivery log read back (administrators): each event with its attempts.

    events_page(session, demande=3, failed=False, page=1)   # newest first
"""

from __future__ import annotations

import json
import math

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from forms_service.webhooks.models import WebhookDelivery, WebhookEvent

PER_PAGE = 50


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


__all__ = ["events_page", "event_view", "PER_PAGE"]

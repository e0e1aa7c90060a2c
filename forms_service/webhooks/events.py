"""The one hook: wherever a request's state changes, an event to send.

It listens to every ORM flush (``install()``, once per process; the circuit's
``hooks.install`` calls it) and looks at what the flush writes, not at who wrote it:

- a new ``Avis`` (every step of the circuit, parts 1 and 2, is one: before → after);
- a ``Demande`` whose ``etat`` changed without an avis (a module that moves a request on
  by itself) — the same event, without step or choice;
- a new ``Demande`` (it arrives: ``demande.recue``).

Each becomes a ``WebhookEvent`` row in the same transaction (nothing sent for a change
rolled back) whose body is the JSON sent; once the outermost transaction commits
(``db.on_commit``), each event is handed to the task queue (``dispatch.enqueue``). Nothing happens unless ``WEBHOOK_URL``
is set for the settings in force (the app's, or the worker's).
"""

from __future__ import annotations

import json
import uuid
from functools import partial

from sqlalchemy import event, insert, inspect
from sqlalchemy.orm import Session

from forms_service.circuit.models import Avis, Demande
from forms_service.db.models import utcnow
from forms_service.db.on_commit import on_commit
from forms_service.logging_setup import get_logger
from forms_service.webhooks.models import WebhookEvent

log = get_logger(__name__)

TRANSITION = "demande.transition"
RECEIVED = "demande.recue"
#: Version of the body's shape (``"version"`` in every body).
BODY_VERSION = 1


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def body(event_name: str, demande: Demande, *, avis: Avis | None = None,
         before: str | None = None) -> dict:
    """The JSON sent: ids, codes, states, step, choice, timestamps — no personal data (no
    name, no comment: free text may hold some)."""
    transition = None
    if event_name == TRANSITION:
        transition = {"etape": avis.etape if avis else None,
                      "choix": avis.choix if avis else None,
                      "etat_avant": avis.etat_avant if avis else before,
                      "etat_apres": avis.etat_apres if avis else demande.etat,
                      "source": avis.source if avis else None,
                      "avis_id": avis.id if avis else None,
                      "at": _iso(avis.at if avis else None) or _iso(utcnow()),
                      "regles": sorted({p.get("rule") for p in (avis.problems or [])
                                        if isinstance(p, dict) and p.get("rule")}) if avis else []}
    return {
        "version": BODY_VERSION,
        "id": str(uuid.uuid4()),
        "event": event_name,
        "occurred_at": _iso(utcnow()),
        "demande": {"id": demande.id, "etat": demande.etat, "types": list(demande.types),
                    "territoire": demande.territoire, "mds": demande.mds,
                    "beneficiary_id": demande.beneficiary_id, "referent_id": demande.referent_id,
                    "document_id": demande.document_id, "source": demande.source,
                    "echeance": _iso(demande.echeance), "created_at": _iso(demande.created_at)},
        "transition": transition,
    }


#: Gives the settings in force (the app's, or a worker's): set by ``install``.
_settings_now = lambda: None  # noqa: E731


def configured(settings) -> bool:
    return bool(settings is not None and settings.webhook_url and settings.webhook_secret)


def _after_flush(session: Session, flush_context) -> None:
    settings = _settings_now()
    if not configured(settings):
        return
    bodies: list[tuple[int, dict]] = []
    with_avis: set[int] = set()
    for obj in session.new:
        if isinstance(obj, Demande):
            bodies.append((obj.id, body(RECEIVED, obj)))
    for obj in session.new:
        if isinstance(obj, Avis) and obj.demande is not None:
            with_avis.add(obj.demande.id)
            bodies.append((obj.demande.id, body(TRANSITION, obj.demande, avis=obj)))
    for obj in session.dirty:
        if isinstance(obj, Demande) and obj.id not in with_avis:
            hist = inspect(obj).attrs.etat.history
            if hist.deleted and hist.added and hist.deleted[0] != hist.added[0]:
                bodies.append((obj.id, body(TRANSITION, obj, before=hist.deleted[0])))
    if not bodies:
        return
    bodies.sort(key=_order)
    conn = session.connection()
    for demande_id, data in bodies:
        result = conn.execute(insert(WebhookEvent.__table__).values(
            demande_id=demande_id, event=data["event"], created_at=utcnow(),
            body=json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=True)))
        # handed to the queue once the outermost transaction commits (rolled back: never)
        on_commit(session, partial(_enqueue, result.inserted_primary_key[0]))
        log.info("webhook_event", demande_id=demande_id, kind=data["event"],
                 etape=(data["transition"] or {}).get("etape"))


def _order(item: tuple[int, dict]) -> tuple:
    """Arrival first, then the transitions in the order they were taken."""
    data = item[1]
    return (item[0], data["event"] != RECEIVED, (data["transition"] or {}).get("avis_id") or 0)


def _enqueue(event_id: int) -> None:
    from forms_service.webhooks.dispatch import enqueue

    enqueue(_settings_now(), event_id)


def install(settings_now) -> None:
    """Listen to every session's flushes and commits (once per process); ``settings_now()``
    gives the settings in force when a flush happens."""
    global _settings_now
    _settings_now = settings_now
    if not event.contains(Session, "after_flush", _after_flush):
        event.listen(Session, "after_flush", _after_flush)


__all__ = ["install", "body", "configured", "TRANSITION", "RECEIVED"]

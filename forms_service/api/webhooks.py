"""``/api/v1/webhooks``: the webhooks' delivery log and replay (issue 13), for
administrators (scope ``admin``, and the ``administrateur`` role or a machine key).

- ``GET /webhooks/events?demande=&echec=&page=`` — the events (one per transition of a
  request), newest first, each with its attempts: ``{"items","page","pages","total"}``;
- ``POST /webhooks/events/<id>/replay`` — a new delivery of the same event (audited): 202
  ``{"event_id","delivery"}``.
"""

from __future__ import annotations

from typing import Optional

from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field

from forms_service import db
from forms_service.api.errors import ErrorBody
from forms_service.audit_query import require_audit_reader
from forms_service.config import current_settings
from forms_service.principal import current_principal
from forms_service.webhooks import dispatch, log

tag = Tag(name="webhooks", description="Webhooks : journal des envois et renvoi (administrateurs)")
bp = APIBlueprint("webhooks", __name__, abp_tags=[tag],
                  abp_responses={400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody,
                                 422: ErrorBody})

MAX_ID = 2**31 - 1


class EventsQuery(BaseModel):
    demande: Optional[int] = Field(None, ge=1, le=MAX_ID, description="Numéro de la demande")
    echec: bool = Field(False, description="Seulement les évènements jamais reçus (aucun 2xx)")
    page: int = Field(1, ge=1, le=100000)
    per_page: int = Field(log.PER_PAGE, ge=1, le=200)


class EventPath(BaseModel):
    event_id: int = Field(ge=1, le=MAX_ID)


class AttemptOut(BaseModel):
    delivery: str
    attempt: int
    status_code: Optional[int]
    error: Optional[str]
    started_at: str
    finished_at: Optional[str]
    requested_by: str
    ok: bool


class EventOut(BaseModel):
    id: int
    demande_id: Optional[int]
    event: str
    created_at: str
    body: str = Field(description="Le corps JSON envoyé, tel quel (signé)")
    etape: Optional[str]
    choix: Optional[str]
    etat_avant: Optional[str]
    etat_apres: Optional[str]
    delivered: bool
    deliveries: list[AttemptOut]


class EventPage(BaseModel):
    items: list[EventOut]
    page: int
    pages: int
    total: int


class ReplayOut(BaseModel):
    event_id: int
    delivery: str


@bp.get("/webhooks/events", summary="Journal des webhooks", responses={200: EventPage})
def list_events(query: EventsQuery):
    require_audit_reader(current_principal())
    with db.session() as s:
        return log.events_page(s, demande=query.demande, failed=query.echec,
                                    page=query.page, per_page=query.per_page)


@bp.post("/webhooks/events/<int:event_id>/replay", summary="Renvoyer un webhook",
         responses={202: ReplayOut, 409: ErrorBody, 503: ErrorBody})
def replay_event(path: EventPath):
    principal = current_principal()
    require_audit_reader(principal)
    sent = dispatch.replay(principal, path.event_id, current_settings())
    return {"event_id": path.event_id, "delivery": sent}, 202


__all__ = ["bp"]

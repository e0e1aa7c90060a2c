"""``/api/v1/ep``: the équipe pluridisciplinaire's sessions (issue 13), scope ``requests``,
behind the access policy (a session or request one may not see is 404).

- ``GET /ep/sessions?territoire=&ouverte=`` — the sessions the caller may see, open ones
  first, then by date: ``{"items"}``;
- ``GET /ep/sessions/<id>`` — one session and its agenda: each request scheduled, its
  state, its deadline (one month from referral, CASF R262-71) and the EP's avis if given;
- ``POST /ep/sessions/<id>/requests/<request_id>/avis`` — ``{"choix", "commentaire"}``: the
  EP's avis on a request of an open session's agenda (the secretariat's role; the circuit's
  ``record_avis``: 409 when the session is closed or the request not on its agenda), then
  the request as ``GET /requests/<id>`` shows it.

The same functions as the pages ``/ep/`` (``circuit.ep_service``, ``circuit.ep_deadlines``).
"""

from __future__ import annotations

from typing import Optional

from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field

from forms_service import access, clock, db
from forms_service.api.errors import ErrorBody
from forms_service.api.requests import MAX_ID, RequestDetail, request_detail, stage_mails
from forms_service.audit import record_event
from forms_service.circuit import ep_deadlines, ep_service
from forms_service.circuit.ep_models import EpSession
from forms_service.circuit.machine import machine
from forms_service.circuit.models import Demande
from forms_service.principal import current_principal

tag = Tag(name="équipe pluridisciplinaire",
          description="Séances de l'équipe pluridisciplinaire, leur ordre du jour et ses avis")
bp = APIBlueprint("ep", __name__, abp_tags=[tag],
                  abp_responses={400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody,
                                 422: ErrorBody})


class SessionsQuery(BaseModel):
    territoire: Optional[str] = Field(None, max_length=32)
    ouverte: Optional[bool] = Field(None, description="Seulement les séances ouvertes (ou closes)")


class SessionPath(BaseModel):
    session_id: int = Field(ge=1, le=MAX_ID)


class AvisPath(SessionPath):
    request_id: int = Field(ge=1, le=MAX_ID)


class EpAvisBody(BaseModel):
    choix: str = Field(max_length=64, description="favorable ou defavorable")
    commentaire: str = Field("", max_length=2000,
                             description="L'avis motivé : tient dans le champ imprimé de la fiche")


class SessionOut(BaseModel):
    id: int
    territoire: str
    date_seance: str = Field(description="Date et heure (ISO 8601)")
    lieu: str
    statut: str
    statut_libelle: str
    ouverte: bool
    inscrites: int = Field(description="Demandes à l'ordre du jour")
    avis: int = Field(description="Demandes dont l'avis est rendu")


class SessionList(BaseModel):
    items: list[SessionOut]


class EpAvisOut(BaseModel):
    choix: str
    choix_libelle: str
    source: str
    at: str


class AgendaItem(BaseModel):
    position: int
    demande_id: int
    etat: str
    types: list[str]
    renvoi: Optional[str] = Field(description="Saisine de l'équipe (entrée à l'état en_ep)")
    echeance: str = Field(description="Date limite de l'avis (un mois après la saisine)")
    delai: str = Field(description="en_retard, proche (sous 7 jours) ou a_venir")
    avis_ep: Optional[EpAvisOut]


class SessionDetail(SessionOut):
    ordre_du_jour: list[AgendaItem]


def _session(row: EpSession) -> dict:
    return {"id": row.id, "territoire": row.territoire, "date_seance": row.date_seance.isoformat(),
            "lieu": row.lieu, "statut": row.statut, "statut_libelle": row.statut_libelle,
            "ouverte": bool(row.ouverte), "inscrites": len(row.passages),
            "avis": sum(1 for x in row.passages if x.avis_id is not None)}


def _agenda(s, p, row: EpSession) -> list[dict]:
    today = clock.current().today()
    visible = set(s.scalars(access.visible_requests(p).with_only_columns(Demande.id)
                            .where(Demande.id.in_([x.demande_id for x in row.passages]))))
    items = []
    for x in sorted(row.passages, key=lambda x: x.position):
        if x.demande_id not in visible:     # the policy's, as everywhere: not shown
            continue
        d = s.get(Demande, x.demande_id)
        due = ep_deadlines.deadline(d, today)
        avis = ep_service.ep_avis_of(d) if x.avis_id is not None else None
        items.append({"position": x.position, "demande_id": d.id, "etat": d.etat,
                      "types": list(d.types),
                      "renvoi": due.referral.isoformat() if due.referral else None,
                      "echeance": due.deadline.isoformat(), "delai": due.status,
                      "avis_ep": None if avis is None else {
                          "choix": avis.choix, "source": avis.source, "at": avis.at.isoformat(),
                          "choix_libelle": machine().step(ep_service.STEP).choices.get(avis.choix, avis.choix)}})
    return items


@bp.get("/ep/sessions", summary="Séances de l'équipe pluridisciplinaire visibles par l'appelant",
        responses={200: SessionList})
def list_sessions(query: SessionsQuery):
    p = current_principal()
    with db.session() as s:
        rows = ep_service.sessions(s, p, territoire=query.territoire)
        if query.ouverte is not None:
            rows = [r for r in rows if bool(r.ouverte) == query.ouverte]
        items = [_session(r) for r in rows]
    record_event(p, "ep.seances_liste", object_type="ep_session", ids=[i["id"] for i in items])
    return {"items": items}


@bp.get("/ep/sessions/<int:session_id>", summary="Une séance et son ordre du jour",
        responses={200: SessionDetail})
def get_session(path: SessionPath):
    p = current_principal()
    with db.session() as s:
        row = access.get_ep_session(p, path.session_id, session=s)
        out = {**_session(row), "ordre_du_jour": _agenda(s, p, row)}
    record_event(p, "ep.seance_consultee", object_type="ep_session", object_id=path.session_id)
    return out


@bp.post("/ep/sessions/<int:session_id>/requests/<int:request_id>/avis",
         summary="Enregistrer l'avis de l'équipe sur une demande de l'ordre du jour",
         description="Réservé au secrétariat de l'équipe pluridisciplinaire. 409 si la séance "
                     "est close ou si la demande n'est pas à son ordre du jour.",
         responses={200: RequestDetail, 409: ErrorBody})
def post_ep_avis(path: AvisPath, body: EpAvisBody):
    p = current_principal()
    with db.session() as s:
        outcome = ep_service.record_ep_avis(s, p, path.session_id, path.request_id, body.choix,
                                            body.commentaire, source="api")
        stage_mails(s, outcome.mails)
    return request_detail(path.request_id)


__all__ = ["bp"]

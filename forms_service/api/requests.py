"""``/api/v1/requests``: the fiche de liaison's circuit (issue 12), scope ``requests``,
behind the access policy (a request one may not see is 404).

- ``POST /requests`` — submit a fiche de liaison for a beneficiary (the API entry; the desk's
  stored records arrive through ``circuit.service.submit_record``): checked and routed at once;
- ``GET /requests?etat=&type=&territoire=&referent=&depuis=&echeance_avant=&page=`` —
  ``{"items","page","pages","total"}``; ``GET /requests/export.csv`` the same list as CSV;
- ``GET /requests/<id>`` — with its fiche and its avis history;
- ``POST /requests/<id>/avis`` — ``{"etape","choix","commentaire"}``: 409 when the circuit
  does not allow that step now, 403 when the caller's role may not take it;
- ``POST /requests/<id>/correction`` — the référent sends the corrected fiche again;
- ``GET /records?etat=&type=&territoire=&referent=&depuis=&page=`` — the records read back.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any, Optional

from flask import Response
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from forms_service import access, db
from forms_service.api.errors import ErrorBody
from forms_service.audit import record_event
from forms_service.beneficiaries.models import Beneficiary
from forms_service.circuit import mailing, queries, service
from forms_service.config import current_settings
from forms_service.principal import current_principal

tag = Tag(name="demandes", description="Circuit de la fiche de liaison : demandes et avis")
bp = APIBlueprint("requests", __name__, abp_tags=[tag],
                  abp_responses={400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody,
                                 422: ErrorBody})

MAX_PER_PAGE = 200
#: Largest id a database integer holds (a bigger one is 422, never a driver overflow).
MAX_ID = 2**31 - 1


class ListQuery(BaseModel):
    etat: Optional[str] = Field(None, max_length=32, description="État (recue, a_corriger, …)")
    type: Optional[str] = Field(None, max_length=32, description="Type de demande")
    territoire: Optional[str] = Field(None, max_length=32)
    referent: Optional[int] = Field(None, ge=1, le=MAX_ID, description="Compte du référent")
    depuis: Optional[dt.date] = Field(None, description="Reçues depuis cette date")
    echeance_avant: Optional[dt.date] = Field(None, description="Échéance au plus tard ce jour")
    page: int = Field(1, ge=1, le=100000)
    per_page: int = Field(queries.PER_PAGE, ge=1, le=MAX_PER_PAGE)

    def filters(self) -> queries.Filters:
        return queries.Filters(etat=self.etat, type=self.type, territoire=self.territoire,
                               referent=self.referent, depuis=self.depuis,
                               echeance_avant=self.echeance_avant)


class RequestPath(BaseModel):
    request_id: int = Field(ge=1, le=MAX_ID)


class Problem(BaseModel):
    path: str
    rule: str
    message: str
    severity: Optional[str] = None


class AvisOut(BaseModel):
    id: int
    at: str
    actor: str
    user_id: Optional[int]
    etape: str
    etape_libelle: str
    choix: str
    choix_libelle: str
    commentaire: str
    etat_avant: str
    etat_apres: str
    source: str
    problems: list[Problem]


class RequestOut(BaseModel):
    id: int
    etat: str
    etat_libelle: str
    types: list[str]
    beneficiary_id: int
    territoire: str
    mds: Optional[str]
    referent_id: Optional[int]
    document_id: Optional[str]
    record_id: Optional[int]
    source: str
    echeance: Optional[str]
    created_at: str
    updated_at: str
    problems: list[Problem]
    etapes_possibles: list[str]


class RequestDetail(RequestOut):
    avis: list[AvisOut]
    fiche: dict[str, Any]


class RequestPage(BaseModel):
    items: list[RequestOut]
    page: int
    pages: int
    total: int


class SubmitBody(BaseModel):
    beneficiaire: int = Field(ge=1, le=MAX_ID, description="Le bénéficiaire (GET /beneficiaries)")
    fiche: dict[str, Any] = Field(description="Les données de la fiche de liaison "
                                              "(components.schemas.fiche-liaison)")
    document_id: Optional[str] = Field(None, max_length=26,
                                       description="Le document imprimé dont elle vient, s'il y en a un")


class CorrectionBody(BaseModel):
    fiche: dict[str, Any]


class AvisBody(BaseModel):
    etape: str = Field(max_length=32, description="correspondant, ep, president, structure, annulation")
    choix: str = Field(max_length=64)
    commentaire: str = Field("", max_length=2000,
                             description="Tient dans le champ imprimé de la fiche (max_length)")
    champs: dict[str, str] = Field(
        default_factory=dict, max_length=20,
        description="Étapes president et structure : les autres champs de leur partie de la "
                    "fiche, par chemin (avenant, president.structure, structure.motif...) ; "
                    "pour president, « organisme » : le code d'un organisme de l'annuaire")


def request_detail(request_id: int) -> dict:
    with db.session() as s:
        d = access.get_request(current_principal(), request_id, session=s)
        return queries.as_dict(d, with_avis=True, with_data=True)


def stage_mails(s, outcome_mails) -> None:
    """The outcome's e-mails, written in its transaction (sent once it commits)."""
    mailing.stage(s, current_settings(), outcome_mails)


@bp.post("/requests", summary="Transmettre une fiche de liaison",
         description="La fiche est contrôlée puis routée : complète, vers le correspondant du "
                     "territoire du bénéficiaire ; incomplète, retour au référent (a_corriger) "
                     "avec les règles en défaut. Si son document a déjà une demande, la fiche "
                     "y ajoute ses avis.",
         responses={201: RequestDetail, 200: RequestDetail})
def submit_request(body: SubmitBody):
    principal = current_principal()
    with db.session() as s:
        outcome = service.submit(s, principal, body.fiche, beneficiary_id=body.beneficiaire,
                                 source="api", document_id=body.document_id)
        request_id, added = outcome.demande.id, outcome.added_to_existing
        stage_mails(s, outcome.mails)
    return request_detail(request_id), (200 if added else 201)


@bp.get("/requests", summary="Demandes visibles par l'appelant", responses={200: RequestPage})
def list_requests(query: ListQuery):
    principal = current_principal()
    with db.session() as s:
        rows, total, pages = queries.page(s, principal, query.filters(), query.page, query.per_page)
        items = [queries.as_dict(d) for d in rows]
    record_event(principal, "demandes.liste", object_type="demande",
                 ids=[i["id"] for i in items], page=query.page)
    return {"items": items, "page": query.page, "pages": pages, "total": total}


CSV_RESPONSE = {"description": "Les demandes, une par ligne (UTF-8 avec BOM, séparateur « ; »)",
                "content": {"text/csv": {"schema": {"type": "string"}}}}


@bp.get("/requests/export.csv", summary="Export CSV d'une liste de demandes",
        description="Mêmes filtres que la liste, toutes les pages : UTF-8 avec BOM, « ; ».",
        responses={200: CSV_RESPONSE})
def export_requests(query: ListQuery):
    principal = current_principal()
    with db.session() as s:
        rows = s.scalars(queries.statement(principal, query.filters())
                         .order_by(queries.Demande.id)).all()
        content = queries.csv_export(rows)
        ids = [d.id for d in rows]
    record_event(principal, "demandes.export", object_type="demande", ids=ids)
    response = Response(content, mimetype="text/csv")
    response.headers["Content-Type"] = "text/csv; charset=utf-8"
    response.headers.set("Content-Disposition", "attachment", filename="demandes.csv")
    return response


@bp.get("/requests/<int:request_id>", summary="Une demande et l'historique de ses avis",
        responses={200: RequestDetail})
def get_request(path: RequestPath):
    detail = request_detail(path.request_id)
    record_event(current_principal(), "demande.consultee", object_type="demande",
                 object_id=path.request_id)
    return detail


@bp.post("/requests/<int:request_id>/avis", summary="Donner un avis (une étape du circuit)",
         description="409 si le circuit ne permet pas cette étape à l'état actuel de la demande.",
         responses={200: RequestDetail, 409: ErrorBody})
def post_avis(path: RequestPath, body: AvisBody):
    from forms_service.circuit import decision, structure

    p, champs = current_principal(), dict(body.champs)
    with db.session() as s:
        if body.etape == decision.STEP:      # issue 13: the decision's checks and designation
            outcome = decision.decide(s, p, path.request_id, decision.Decision(
                choix=body.choix, avenant=champs.pop("avenant", None),
                organisme=champs.pop("organisme", None), structure=champs,
                commentaire=body.commentaire), source="api")
        elif body.etape == structure.STEP:
            outcome = structure.record_return(s, p, path.request_id, body.choix,
                                              synthese=body.commentaire, fields=champs,
                                              source="api")
        else:
            outcome = service.record_avis(s, p, path.request_id, body.etape, body.choix,
                                          body.commentaire, source="api", fields=champs)
        stage_mails(s, outcome.mails)
    return request_detail(path.request_id)


@bp.post("/requests/<int:request_id>/correction", summary="Renvoyer une fiche corrigée",
         responses={200: RequestDetail, 409: ErrorBody})
def post_correction(path: RequestPath, body: CorrectionBody):
    with db.session() as s:
        outcome = service.correct(s, current_principal(), path.request_id, body.fiche)
        stage_mails(s, outcome.mails)
    return request_detail(path.request_id)


class RecordItem(BaseModel):
    id: int
    form_id: str
    document_id: Optional[str]
    beneficiary_id: Optional[int]
    territoire: Optional[str]
    status: str
    review: Optional[str]
    source: str
    created_at: str


class RecordPage(BaseModel):
    items: list[RecordItem]
    page: int
    pages: int
    total: int


@bp.get("/records", summary="Enregistrements lus visibles par l'appelant",
        description="etat = statut (valid, invalid, needs_review), type = formulaire.",
        responses={200: RecordPage})
def list_records(query: ListQuery):
    principal = current_principal()
    Record = db.Record
    stmt = access.visible_records(principal)
    if query.etat:
        stmt = stmt.where(Record.status == query.etat)
    if query.type:
        stmt = stmt.where(Record.form_id == query.type)
    if query.territoire:
        stmt = stmt.where(Record.territoire == query.territoire)
    if query.referent is not None:
        stmt = stmt.where(Record.beneficiary_id.in_(
            select(Beneficiary.id).where(Beneficiary.referent_id == query.referent)))
    if query.depuis:
        stmt = stmt.where(Record.created_at >= dt.datetime.combine(
            query.depuis, dt.time.min, tzinfo=dt.timezone.utc))
    with db.session() as s:
        total = s.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        rows = s.scalars(stmt.order_by(Record.id.desc()).offset((query.page - 1) * query.per_page)
                         .limit(query.per_page)).all()
        items = [{"id": r.id, "form_id": r.form_id, "document_id": r.document_id,
                  "beneficiary_id": r.beneficiary_id, "territoire": r.territoire,
                  "status": r.status, "review": r.review, "source": r.source,
                  "created_at": r.created_at.isoformat()} for r in rows]
    record_event(principal, "enregistrements.liste", object_type="enregistrement",
                 ids=[i["id"] for i in items], page=query.page)
    return {"items": items, "page": query.page,
            "pages": max(1, math.ceil(total / query.per_page)), "total": total}


__all__ = ["bp"]

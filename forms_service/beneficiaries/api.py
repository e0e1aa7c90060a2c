"""``/api/v1/beneficiaries``: the caller's beneficiaries (through the access policy) and the import.

- ``GET /beneficiaries?page=&per_page=&territoire=&referent_id=`` — those the caller may see;
- ``GET /beneficiaries/<id>`` — one, or 404 (whether absent or not the caller's);
- ``POST /beneficiaries/import`` — administrators: a CSV or JSON file (multipart ``file``,
  or the body itself as ``text/csv`` / ``application/json``); the line-by-line report.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

from flask import request
from flask_openapi3 import APIBlueprint, FileStorage, Tag
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from forms_service import access, db
from forms_service.api.errors import ErrorBody
from forms_service.api.params import PageNumber, RowId
from forms_service.audit import record_event
from forms_service.beneficiaries.models import Beneficiary
from forms_service.errors import BadRequest
from forms_service.principal import current_principal

tag = Tag(name="bénéficiaires", description="Bénéficiaires du RSA et leur référent")
bp = APIBlueprint("beneficiaries", __name__, abp_tags=[tag],
                  abp_responses={400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody})

MAX_PER_PAGE = 200


class Orientation(BaseModel):
    sphere: Literal["solidarite", "professionnelle"]
    date_decision: Optional[str]


class Cer(BaseModel):
    type: Literal["cers", "cerp"]
    date_debut: Optional[str]
    date_fin: Optional[str]
    date_signature: Optional[str]


class BeneficiaryOut(BaseModel):
    id: int
    num_caf: str
    nom: str
    prenom: str
    date_naissance: str
    adresse: str
    territoire: str
    mds: str
    orientation: Optional[Orientation]
    referent_id: Optional[int] = Field(description="Le compte du référent désigné")
    cer: Optional[Cer]


class BeneficiaryPage(BaseModel):
    items: list[BeneficiaryOut]
    page: int
    per_page: int
    total: int


class ListQuery(BaseModel):
    page: PageNumber = 1
    per_page: int = Field(50, ge=1, le=MAX_PER_PAGE)
    territoire: Optional[str] = None
    referent_id: Optional[RowId] = None


class BeneficiaryPath(BaseModel):
    beneficiary_id: RowId


class ImportLine(BaseModel):
    line: int
    status: Literal["created", "updated", "unchanged", "refused"]
    id: Optional[int] = None
    errors: list[dict[str, str]] = []


class ImportReport(BaseModel):
    created: int
    updated: int
    unchanged: int
    refused: int
    lines: list[ImportLine]


class ImportForm(BaseModel):
    file: Optional[FileStorage] = Field(None, description="Fichier CSV ou JSON")


@bp.get("/beneficiaries", summary="Bénéficiaires visibles par l'appelant",
        responses={200: BeneficiaryPage})
def list_beneficiaries(query: ListQuery):
    principal = current_principal()
    stmt = access.visible_beneficiaries(principal)
    if query.territoire:
        stmt = stmt.where(Beneficiary.territoire == query.territoire)
    if query.referent_id is not None:
        stmt = stmt.where(Beneficiary.referent_id == query.referent_id)
    with db.session() as s:
        total = s.scalar(select(func.count()).select_from(stmt.subquery()))
        rows = s.scalars(stmt.order_by(Beneficiary.id)
                         .offset((query.page - 1) * query.per_page).limit(query.per_page)).all()
        items = [b.as_dict() for b in rows]
    record_event(principal, "beneficiaires.liste", object_type="beneficiaire",
                 ids=[i["id"] for i in items], page=query.page)
    return {"items": items, "page": query.page, "per_page": query.per_page, "total": total}


@bp.get("/beneficiaries/<int:beneficiary_id>", summary="Un bénéficiaire",
        description="404 s'il n'existe pas ou si l'appelant n'y a pas accès (sans distinction).",
        responses={200: BeneficiaryOut})
def get_beneficiary(path: BeneficiaryPath):
    principal = current_principal()
    beneficiary = access.get_beneficiary(principal, path.beneficiary_id)
    record_event(principal, "beneficiaire.consulte", object_type="beneficiaire",
                 object_id=beneficiary.id)
    return beneficiary.as_dict()


def _uploaded() -> tuple[bytes, str]:
    upload = request.files.get("file")
    if upload is not None:
        return upload.read(), upload.filename or ""
    content = request.get_data(cache=False)
    kind = (request.mimetype or "").lower()
    name = "import.json" if kind.endswith("json") else ("import.csv" if "csv" in kind else "")
    if not content.strip():
        raise BadRequest("Aucun fichier reçu (champ « file », ou le corps en text/csv ou "
                         "application/json)", path="file", rule="fichier_manquant")
    return content, name


@bp.post("/beneficiaries/import", summary="Importer des bénéficiaires (CSV ou JSON)",
         description="Administrateurs. Idempotent sur (num_caf, date_naissance). Répond ligne par "
                     "ligne : created, updated, unchanged ou refused (avec les raisons).",
         responses={200: ImportReport})
def import_beneficiaries(form: ImportForm):
    from forms_service.beneficiaries.importer import import_beneficiaries as run_import
    from forms_service.errors import Forbidden

    principal = current_principal()
    if not principal.is_admin:
        raise Forbidden("Import réservé aux administrateurs", rule="administrateur_requis")
    content, name = _uploaded()
    with db.session() as s:
        report = run_import(s, content, name)
    body: dict[str, Any] = report.as_dict()
    record_event(principal, "beneficiaires.importes", object_type="beneficiaire",
                 created=body["created"], updated=body["updated"], unchanged=body["unchanged"],
                 refused=body["refused"], created_ids=report.ids("created"),
                 updated_ids=report.ids("updated"))
    return body


__all__ = ["bp"]

"""``/api/v1/forms/{id}/render``, ``/render-batch`` and ``/layout``: documents from data.

The answer of a render is the file itself (``Content-Disposition: attachment``) with:

* ``X-Document-Id`` — the document's id (also in its QR codes and footer);
* ``X-Template-Version`` — the template version it was printed from;
* ``X-Forms-Findings`` — the business-rule findings, JSON ``[{"path","rule","severity",
  "message"}]`` with non-ASCII characters escaped (``\\u00e9``), cut if longer than
  6000 bytes; ``X-Forms-Findings-Count`` gives their number.

Errors go through the app's one handler (``api/errors.py``): unknown form 404, body not
JSON 400, data not fitting the model 422 (every path), strict mode 422 (rule codes), body
too large or batch too long 413, LibreOffice missing 503 for a PDF (DOCX still works).

The endpoints use the app's :class:`RenderService` (made by ``create_app``).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Literal, Optional

from flask import Response, current_app, request
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, ConfigDict, Field, RootModel

from forms_service.api.errors import ErrorBody
from forms_service.api.params import RowId
from forms_service.audit import current_actor
from forms_service.errors import BadRequest
from forms_service.principal import current_principal
from forms_service.render.service import (FINDINGS_HEADER_LIMIT, MAX_BATCH, MIMETYPES, batch_zip,
                                          findings_header, get_service)

tag = Tag(name="rendu", description="Production des documents (DOCX, PDF) à partir des données")
bp = APIBlueprint("render", __name__, abp_tags=[tag],
                  abp_responses={400: ErrorBody, 401: ErrorBody, 404: ErrorBody, 413: ErrorBody,
                                 422: ErrorBody, 500: ErrorBody, 503: ErrorBody})

#: A retry with the same key (same caller, same request) returns the same documents.
IDEMPOTENCY_HEADER = "Idempotency-Key"


# ---------------------------------------------------------------------- models

class FormPath(BaseModel):
    form_id: str = Field(description="Identifiant ou alias du formulaire (ex. « fiche-liaison », "
                                     "« annexe-7 ») ; une liste de référence se rend sans données")


class RenderQuery(BaseModel):
    format: Literal["docx", "pdf"] = Field("docx", description="Format du document")
    fillable: bool = Field(False, description="PDF remplissable (champs AcroForm pré-remplis) ; "
                                              "avec format=pdf seulement")
    strict: bool = Field(False, description="Refuser (422) les données qui enfreignent une règle "
                                            "de niveau « error » au lieu de les signaler")
    beneficiaire: Optional[RowId] = Field(None, description="Identifiant du bénéficiaire concerné : "
                                        "le document lui est rattaché (404 s'il n'est pas visible)")


class RenderBody(RootModel[Optional[dict[str, Any]]]):
    """The form's data, as described by its JSON Schema (``components.schemas.<form id>``).
    Absent, empty or ``{}``: the blank form."""

    model_config = ConfigDict(openapi_extra={
        "required": False,
        "description": "Données du formulaire (objet JSON) ; corps vide : formulaire vierge"})


class RenderBatchBody(RootModel[list[Any]]):
    """One data object per document (each item is checked by the service, which names
    the wrong one: ``items.<i>``)."""

    model_config = ConfigDict(
        json_schema_extra={"maxItems": MAX_BATCH, "minItems": 1},
        openapi_extra={"description": f"Liste de données (un objet par document, "
                                      f"{MAX_BATCH} au plus)"})


class DocumentFile(RootModel[bytes]):
    """The document, as an attachment."""


class RenderHeaders(BaseModel):
    """Response headers of a render."""

    document_id: str = Field(alias="X-Document-Id",
                             description="Identifiant du document (dans ses QR codes et son pied de page)")
    template_version: str = Field(alias="X-Template-Version",
                                  description="Version du modèle (12 chiffres hexadécimaux)")
    findings: str = Field(alias="X-Forms-Findings", description=(
        "Constats des règles métier : JSON [{\"path\",\"rule\",\"severity\",\"message\"}], "
        f"caractères non ASCII échappés (\\u00e9), tronqué au-delà de {FINDINGS_HEADER_LIMIT} octets"))
    findings_count: int = Field(alias="X-Forms-Findings-Count", description="Nombre de constats")
    content_disposition: str = Field(alias="Content-Disposition", description=(
        "attachment ; nom : <formulaire>_<AAAA-MM-JJ>_<identifiant>.<format> (sans donnée personnelle)"))


class BatchHeaders(BaseModel):
    """Response headers of a batch."""

    count: int = Field(alias="X-Documents-Count", description="Nombre de documents dans l'archive")
    content_disposition: str = Field(alias="Content-Disposition", description=(
        "attachment ; nom : <formulaire>_<AAAA-MM-JJ>_lot-<n>.zip"))


class RenderJobQueued(BaseModel):
    """A long batch (more than RENDER_ASYNC_THRESHOLD items), rendered on the task queue."""

    id: int
    status: Literal["queued", "running", "done", "failed"]
    poll: str = Field(description="GET /api/v1/render-jobs/<id> : état, puis documents et archive")


class LayoutMap(RootModel[dict[str, Any]]):
    """Where each box, text zone and signature zone of the blank form is printed."""


def _headers_doc(model: type[BaseModel]) -> dict[str, dict]:
    """OpenAPI response headers from a pydantic model (alias = header name)."""
    props = model.model_json_schema(by_alias=True)["properties"]
    return {name: {"description": p.get("description", ""),
                   "schema": {k: v for k, v in p.items() if k in ("type", "format")}}
            for name, p in props.items()}


def _file_response(description: str, mimetypes: list[str], headers: type[BaseModel]) -> dict:
    schema = {k: v for k, v in DocumentFile.model_json_schema().items() if k != "title"}
    return {"description": description,
            "content": {m: {"schema": schema} for m in mimetypes},
            "headers": _headers_doc(headers)}


# ---------------------------------------------------------------------- helpers

def _json_body() -> Any:
    """The request body as JSON (``None`` when empty); 400 when it is not JSON."""
    raw = request.get_data(cache=True)  # 413 above MAX_CONTENT_LENGTH
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        where = f" (ligne {exc.lineno}, colonne {exc.colno})" if hasattr(exc, "lineno") else ""
        raise BadRequest(f"Le corps de la requête n'est pas du JSON valide{where}",
                         rule="json_invalide") from None


def _attachment(content: bytes, mimetype: str, filename: str) -> Response:
    response = Response(content, mimetype=mimetype)
    response.headers.set("Content-Disposition", "attachment", filename=filename)
    # The document holds personal data: no shared cache may keep it.
    response.headers["Cache-Control"] = "no-store"
    return response


# ---------------------------------------------------------------------- endpoints

@bp.post("/forms/<form_id>/render", summary="Produire un document (DOCX ou PDF)",
         description="Corps : les données du formulaire (objet JSON) ; vide : le formulaire vierge. "
                     "Répond le fichier en pièce jointe. Les constats des règles métier sont dans "
                     "l'en-tête X-Forms-Findings (ils ne bloquent pas, sauf strict=true : 422). "
                     "422 pour des données qui ne respectent pas le modèle (types, codes, dates, "
                     "longueurs) avec le chemin de chaque problème ; 503 pour un PDF quand "
                     "LibreOffice est indisponible (le DOCX reste disponible).",
         responses={200: _file_response("Le document", list(MIMETYPES.values()), RenderHeaders)})
def render_form(path: FormPath, query: RenderQuery, body: RenderBody):
    from forms_service import access

    principal = current_principal()
    if query.beneficiaire is not None:   # checked before anything is produced
        access.get_beneficiary(principal, query.beneficiaire)
    service = get_service()
    doc = service.render(path.form_id, _json_body(), fmt=query.format, fillable=query.fillable,
                         strict=query.strict, actor=current_actor(),
                         idempotency_key=request.headers.get(IDEMPOTENCY_HEADER))
    if query.beneficiaire is not None:
        access.link_document(doc.document_id, query.beneficiaire)
    response = _attachment(doc.content, doc.mimetype, doc.filename)
    response.headers["X-Document-Id"] = doc.document_id
    response.headers["X-Template-Version"] = doc.template_version
    response.headers["X-Forms-Findings"] = findings_header(doc.findings)
    response.headers["X-Forms-Findings-Count"] = str(len(doc.findings))
    return response


@bp.post("/forms/<form_id>/render-batch", summary="Produire un lot de documents (archive ZIP)",
         description=f"Corps : une liste d'objets de données ({MAX_BATCH} au plus ; au-delà 413). "
                     "Toutes les données sont contrôlées avant toute production : un élément "
                     "invalide refuse le lot (422, chemins « items.<i>.<champ> »). L'archive "
                     "contient un fichier par élément, dans l'ordre (« 001_… »), et findings.json "
                     "([{\"index\",\"file\",\"document_id\",\"template_version\",\"findings\"}]). "
                     "Au-delà de RENDER_ASYNC_THRESHOLD éléments, le lot est produit en arrière-plan "
                     "(file d'attente) : 202 et l'adresse du travail à suivre.",
         responses={200: _file_response("Archive ZIP des documents et findings.json",
                                        ["application/zip"], BatchHeaders),
                    202: RenderJobQueued})
def render_batch(path: FormPath, query: RenderQuery, body: RenderBatchBody):
    from forms_service.render import jobs

    service = get_service()
    items = _json_body()
    settings = current_app.extensions["forms_service.settings"]
    if isinstance(items, list) and settings.render_async_threshold < len(items) <= MAX_BATCH:
        # a long batch: rendered on the task queue through the same code path (202, a job);
        # an unknown form is 404 and every item is checked before it is queued (422, as a batch)
        service._catalogue().get(path.form_id)
        job = jobs.submit(settings, current_actor(), path.form_id, items, fmt=query.format,
                          fillable=query.fillable, strict=query.strict,
                          key=request.headers.get(IDEMPOTENCY_HEADER))
        return {"id": job.id, "status": job.status, "poll": f"/api/v1/render-jobs/{job.id}"}, 202, \
            {"Location": f"/api/v1/render-jobs/{job.id}"}
    docs = service.render_batch(path.form_id, items, fmt=query.format,
                                fillable=query.fillable, strict=query.strict,
                                actor=current_actor(),
                                idempotency_key=request.headers.get(IDEMPOTENCY_HEADER))
    form_id = docs[0].form_id
    name = f"{form_id}_{dt.date.today().isoformat()}_lot-{len(docs)}.zip"
    response = _attachment(batch_zip(docs), "application/zip", name)
    response.headers["X-Documents-Count"] = str(len(docs))
    return response


@bp.get("/forms/<form_id>/layout", summary="Carte de mise en page du formulaire vierge",
        description="Position de chaque case, zone de texte et zone de signature du formulaire "
                    "imprimé (version de modèle en cours). 400 pour une liste de référence ; 503 "
                    "quand LibreOffice ou le module de mise en page est indisponible.",
        responses={200: LayoutMap})
def form_layout(path: FormPath):
    return get_service().blank_layout(path.form_id)


__all__ = ["bp"]

"""``POST /api/v1/batches`` (received files, read in the background) and ``GET
/api/v1/batches/<id>`` (progress, summary, every page), scope ``parse``, through the
access policy (a batch the caller may not see answers 404).

The body is read as it arrives: each file is stored, committed and queued for reading
as soon as it is whole (``desk/receiving.py``), so the workers read the first files while
the last ones arrive; the answer (202, every file's sha256 and ``duplicate_of``) comes
at the end. Batches have their own size limit (``MAX_BATCH_BYTES``, 1 GiB by default), raised for
this route only above the API's ``MAX_CONTENT_LENGTH``.
"""

from __future__ import annotations

from typing import Literal, Optional

from flask import Response, current_app, request
from flask_openapi3 import APIBlueprint, FileStorage, Tag
from pydantic import BaseModel, Field

from forms_service import db
from forms_service.api.errors import ErrorBody
from forms_service.api.params import RowId
from forms_service.desk import batches, receiving
from forms_service.errors import BadRequest
from forms_service.principal import current_principal

tag = Tag(name="lots", description="Lots de formulaires reçus (bureau du SLAI), lus en arrière-plan")
bp = APIBlueprint("batches", __name__, abp_tags=[tag],
                  abp_responses={400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody,
                                 413: ErrorBody, 503: ErrorBody})


@bp.before_request
def _batch_size_limit():
    """The batches' own limit (``MAX_BATCH_BYTES``) instead of the API's."""
    if request.endpoint and request.endpoint.endswith("batches.submit"):
        request.max_content_length = current_app.extensions["forms_service.settings"].max_batch_bytes


class BatchForm(BaseModel):
    files: list[FileStorage] = Field(default_factory=list,
                                     description="Un ou plusieurs fichiers : PDF, TIFF, JPEG, PNG")
    territoire: Optional[str] = Field(None, max_length=32,
                                      description="Code du territoire ; obligatoire si l'appelant n'en a pas")


class BatchPath(BaseModel):
    batch_id: RowId


class DuplicateOf(BaseModel):
    batch: int
    file: int = Field(description="Rang du fichier dans ce lot (à partir de 0)")


class BatchFileOut(BaseModel):
    name: str
    sha256: str
    duplicate_of: Optional[DuplicateOf]


class BatchCreated(BaseModel):
    id: int
    status: Literal["queued", "running", "done"]
    files: list[BatchFileOut]


class Progress(BaseModel):
    pages_total: int
    pages_done: int


class Summary(BaseModel):
    forms: int
    valid: int
    needs_review: int
    invalid: int
    blank: int
    unknown: int
    duplicates: int
    errors: int


class PageOf(BaseModel):
    batch: int
    file: int = Field(description="Rang du fichier dans ce lot (à partir de 0)")
    file_page: int


class PageOut(BaseModel):
    file: int
    file_page: int
    status: Literal["pending", "record", "blank", "unknown", "duplicate", "error"]
    record: Optional[int]
    message: Optional[str] = None
    duplicate_of: Optional[PageOf] = Field(
        None, description="La page précédente à l'image identique (visible par l'appelant), sinon null")


class BatchOut(BaseModel):
    id: int
    status: Literal["queued", "running", "done"]
    territoire: Optional[str]
    created_at: str
    progress: Progress
    summary: Summary
    files: list[BatchFileOut]
    records: list[int]
    pages: list[PageOut]


@bp.post("/batches", summary="Déposer un lot de formulaires",
         description="Chaque fichier est enregistré d'abord, puis lu en arrière-plan ; la réponse "
                     "(202) vient aussitôt. Un fichier déjà reçu n'est pas relu : « duplicate_of » "
                     "nomme la copie précédente visible par l'appelant.",
         responses={202: BatchCreated})
def submit(form: BatchForm = None):
    """Read as it arrives (not parsed first: ``__delay_validate_request__``): each file is
    stored, committed and queued as soon as it is whole (``desk/receiving.py``)."""
    principal = current_principal()
    boundary = request.mimetype_params.get("boundary") if request.mimetype == "multipart/form-data" else None
    if not boundary:
        raise BadRequest("Corps attendu en multipart/form-data (champ « files »)", path="files",
                         rule="fichier_manquant")
    settings = current_app.extensions["forms_service.settings"]
    receiver = receiving.Receiver(settings, principal, source="api", database=db.get_database())
    batch = receiving.read_multipart(request.stream, boundary.encode("latin-1"), receiver)
    with db.session() as s:
        files = batches.files_view(s, principal, batch)
    return {"id": batch.id, "status": batch.status, "files": files}, 202


# the body is read part by part by the view itself, never parsed whole before it
submit.__delay_validate_request__ = True


@bp.get("/batches/<int:batch_id>", summary="Suivre un lot",
        description="La réponse porte un ETag : renvoyé dans « If-None-Match », il donne 304 "
                    "sans corps tant que le lot n'a pas changé (un suivi toutes les secondes ne "
                    "coûte presque rien).",
        responses={200: BatchOut, 304: {"description": "Lot inchangé depuis l'ETag envoyé"}})
def show(path: BatchPath):
    principal = current_principal()
    with db.session() as s:
        etag = batches.batch_etag(s, principal, path.batch_id)   # first: never older than the view
        if request.if_none_match.contains(etag):
            response = Response(status=304)
        else:
            response = current_app.json.response(batches.batch_view(s, principal, path.batch_id))
    response.set_etag(etag)
    response.headers["Cache-Control"] = "private, no-cache"   # asked again each time, 304 when unchanged
    return response


__all__ = ["bp"]

"""``GET /api/v1/render-jobs/<id>`` and ``GET /api/v1/render-jobs/<id>/archive``: a long
render batch run on the task queue (``POST /api/v1/forms/<id>/render-batch`` above
``RENDER_ASYNC_THRESHOLD`` items answers 202 with the job), scope ``render``; a job is seen
by its requester and administrators only (404 otherwise).
"""

from __future__ import annotations

import datetime as dt
from typing import Literal, Optional

from flask import Response
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field

from forms_service import db
from forms_service.api.errors import ErrorBody
from forms_service.api.params import RowId
from forms_service.errors import Conflict
from forms_service.principal import current_principal
from forms_service.render import jobs
from forms_service.render.service import batch_zip

tag = Tag(name="rendu", description="Production des documents (DOCX, PDF) à partir des données")
bp = APIBlueprint("render_jobs", __name__, abp_tags=[tag],
                  abp_responses={401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody})


class JobPath(BaseModel):
    job_id: RowId


class JobDocument(BaseModel):
    document_id: str
    filename: str


class JobError(BaseModel):
    path: str
    rule: str
    message: str


class RenderJobOut(BaseModel):
    id: int
    status: Literal["queued", "running", "done", "failed"]
    form_id: str
    format: Literal["docx", "pdf"]
    items: int = Field(description="Nombre d'éléments du lot")
    created_at: str
    finished_at: Optional[str]
    documents: Optional[list[JobDocument]] = Field(description="Une fois produit : les documents, dans l'ordre")
    errors: Optional[list[JobError]] = Field(description="En échec : les erreurs, comme un lot synchrone")
    archive: Optional[str] = Field(description="Une fois produit : l'adresse de l'archive ZIP")


@bp.get("/render-jobs/<int:job_id>", summary="Suivre un lot de rendu en arrière-plan",
        responses={200: RenderJobOut})
def show(path: JobPath):
    with db.session() as s:
        return jobs.job_view(s, current_principal(), path.job_id)


@bp.get("/render-jobs/<int:job_id>/archive", summary="Archive ZIP d'un lot de rendu produit",
        description="409 tant que le lot n'est pas produit.",
        responses={200: {"description": "Archive ZIP des documents et findings.json",
                         "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}}}})
def archive(path: JobPath):
    with db.session() as s:
        job = jobs.get_job(s, current_principal(), path.job_id)
        s.expunge(job)
    if job.status != "done":
        raise Conflict(f"Lot de rendu pas encore produit (état : {job.status})", path="travail",
                       rule="travail_en_cours")
    docs = jobs.job_documents(job)
    name = f"{job.form_id}_{dt.date.today().isoformat()}_lot-{len(docs)}.zip"
    response = Response(batch_zip(docs), mimetype="application/zip")
    response.headers.set("Content-Disposition", "attachment", filename=name)
    response.headers["Cache-Control"] = "no-store"   # personal data
    response.headers["X-Documents-Count"] = str(len(docs))
    return response


__all__ = ["bp"]

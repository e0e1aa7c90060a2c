"""``GET /api/v1/documents/<id>`` (an issued document's file) and ``GET /api/v1/records/<id>``
(a record read back), both through the access policy: 404 when absent or not the caller's."""

from __future__ import annotations

import mimetypes
from pathlib import Path

from flask import Response
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field

from forms_service import access
from forms_service.api.errors import ErrorBody
from forms_service.api.params import RowId
from forms_service.audit import record_event
from forms_service.errors import NotFound
from forms_service.principal import current_principal

tag = Tag(name="documents", description="Documents produits et enregistrements lus")
bp = APIBlueprint("records", __name__, abp_tags=[tag],
                  abp_responses={401: ErrorBody, 403: ErrorBody, 404: ErrorBody})


class DocumentPath(BaseModel):
    document_id: str = Field(max_length=26)


class RecordPath(BaseModel):
    record_id: RowId


class RecordOut(BaseModel):
    id: int
    form_id: str
    document_id: str | None
    beneficiary_id: int | None
    status: str
    source: str
    created_at: str
    record: dict


#: The download's documented answer: the file as issued (PDF or DOCX).
DOCUMENT_FILE = {"description": "Le fichier tel qu'il a été produit",
                 "content": {m: {"schema": {"type": "string", "format": "binary"}}
                             for m in ("application/pdf", "application/vnd.openxmlformats-"
                                       "officedocument.wordprocessingml.document")}}


@bp.get("/documents/<document_id>", summary="Télécharger un document produit",
        description="Le fichier tel qu'il a été produit ; 404 s'il n'existe pas ou si "
                    "l'appelant n'y a pas accès.",
        responses={200: DOCUMENT_FILE})
def download_document(path: DocumentPath):
    from forms_service.render.service import download_name

    principal = current_principal()
    doc = access.get_document(principal, path.document_id)
    file = Path(doc.file_path)
    if not file.is_file():
        raise NotFound(access.MSG_DOCUMENT, path="document")
    record_event(principal, "document.telecharge", form_id=doc.form_id,
                 document_id=doc.document_id, object_type="document", object_id=doc.document_id)
    mimetype = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    response = Response(file.read_bytes(), mimetype=mimetype)
    response.headers.set("Content-Disposition", "attachment",
                         filename=download_name(doc.form_id, doc.document_id, doc.format,
                                                        doc.created_at.date()))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/records/<int:record_id>", summary="Un enregistrement lu",
        responses={200: RecordOut})
def get_record(path: RecordPath):
    principal = current_principal()
    row = access.get_record(principal, path.record_id)
    record_event(principal, "enregistrement.consulte", form_id=row.form_id,
                 document_id=row.document_id, object_type="enregistrement", object_id=row.id)
    return {"id": row.id, "form_id": row.form_id, "document_id": row.document_id,
            "beneficiary_id": row.beneficiary_id, "status": row.status, "source": row.source,
            "created_at": row.created_at.isoformat(), "record": row.record}


__all__ = ["bp"]

"""``POST /api/v1/parse``: returned forms in, records out (multipart, one or more files)."""

from __future__ import annotations

from flask import current_app, g, request
from flask_openapi3 import APIBlueprint, FileStorage, Tag
from pydantic import BaseModel, Field, RootModel

from forms_service.api.errors import ErrorBody
from forms_service.errors import BadRequest

from .record import FileError, PageStatus, Record

tag = Tag(name="lecture", description="Lecture des formulaires retournés (PDF remplis, scans)")
bp = APIBlueprint("parse", __name__, abp_tags=[tag],
                  abp_responses={400: ErrorBody, 401: ErrorBody, 413: ErrorBody, 500: ErrorBody,
                                 503: ErrorBody})

MAX_FILES = 100


class ParseForm(BaseModel):
    # not required in the schema, so that a request without a file gets this endpoint's own
    # 400 ``fichier_manquant`` rather than a generic validation error
    files: list[FileStorage] = Field(default_factory=list,
                                     description="Un ou plusieurs fichiers (au moins un) : PDF, TIFF, JPEG, PNG")


class ParseResult(RootModel[list[Record | FileError | PageStatus]]):
    """One record per form found, one error entry per file that could not be read, and
    one status entry per page that is no form (blank, unknown, duplicate)."""


SANDBOX_KEY = "parsers.sandbox"


def _sandbox():
    """The app's sandbox (``app.extensions["parsers.sandbox"]``), made at the first parse
    if the app did not make one: the app's settings, the app's converter pool."""
    from forms_service.render.service import POOL_KEY

    from .sandbox import Sandbox
    box = current_app.extensions.get(SANDBOX_KEY)
    if box is None:
        box = current_app.extensions[SANDBOX_KEY] = Sandbox(
            current_app.extensions["forms_service.settings"], pool=current_app.extensions.get(POOL_KEY),
            workers=2)
    return box


@bp.post("/parse", summary="Lire des formulaires retournés",
         description="Répond un tableau : un enregistrement par formulaire trouvé, et "
                     "{\"file\", \"error\": {\"rule\", \"message\"}} par fichier illisible.",
         responses={200: ParseResult})
def parse(form: ParseForm):
    from forms_service.audit import record_event
    uploads = request.files.getlist("files")
    if not uploads:
        raise BadRequest("Aucun fichier reçu (champ « files »)", path="files", rule="fichier_manquant")
    if len(uploads) > MAX_FILES:
        raise BadRequest(f"Trop de fichiers ({len(uploads)} ; {MAX_FILES} au plus)", path="files",
                         rule="trop_de_fichiers")
    files = [(u.filename or f"fichier-{i + 1}", u.read()) for i, u in enumerate(uploads)]
    from forms_service.principal import current_principal

    from .parse import Limits
    # reconciliation only uses the issued documents the caller may see (access policy)
    result = _sandbox().parse(files, Limits(principal=current_principal()))
    # every record read is kept, with its pages, crops and source file (issue 11)
    from forms_service.desk.batches import Upload
    from forms_service.desk.reading import keep_parsed
    batch_id = keep_parsed(current_app.extensions["forms_service.settings"], current_principal(),
                           [Upload(n, d) for n, d in files], result)
    actor = getattr(g, "actor", "anonyme")
    for item in result:
        if "fields" in item:   # a record (not a file's error entry, not a page's status)
            record_event(actor, "parse", form_id=item["form"], document_id=item["document_id"],
                         status=item["status"], source=item["source"])
    return result, 200, {"X-Batch-Id": str(batch_id)}

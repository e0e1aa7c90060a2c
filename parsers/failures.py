"""A file that cannot be read becomes an error entry: a French message and a stable rule.

``{"file", "error": {"rule", "message"}}``: a :class:`FormsError` gives its own rule and
message; a memory ceiling gives ``document_trop_gros``; anything else (a reader's bug,
a hostile file that trips a library) gives ``document_illisible`` — never a Python
exception's name or text, which are logged instead (type and frames only: an
exception's text may quote the file's content).
"""

from __future__ import annotations

import traceback

from forms_service.errors import FormsError
from forms_service.logging_setup import get_logger

log = get_logger(__name__)

UNREADABLE = {"rule": "document_illisible",
              "message": "Document illisible : sa lecture a échoué (fichier endommagé ou non pris en charge)"}
TOO_BIG = {"rule": "document_trop_gros", "message": "Document trop gros pour être lu"}


def log_failure(event: str, exc: BaseException, **ids) -> None:
    """Log a reader's failure: ids (form, document, file index), type and frames, no text."""
    frames = [f"{f.filename}:{f.lineno} in {f.name}" for f in traceback.extract_tb(exc.__traceback__)]
    log.error(event, exc_type=type(exc).__name__, frames=frames[-15:], **ids)


def error_of(exc: BaseException) -> dict:
    """The ``{"rule", "message"}`` a user is shown for ``exc``."""
    if isinstance(exc, FormsError):
        return {"rule": exc.problems[0].rule, "message": exc.message}
    if isinstance(exc, MemoryError):
        return dict(TOO_BIG)
    return dict(UNREADABLE)

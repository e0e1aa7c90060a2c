"""The audit trail: who did what to which form or document.

    from forms_service.audit import record_event, current_actor
    record_event(current_actor(), "document.rendu", form_id="cer", document_id=doc_id, format="pdf")

``form_id`` and ``document_id`` get their own columns; every other keyword goes
to ``detail`` after ``logging_setup.redact``: pass identifiers, counts and codes,
never what a person wrote. ``actor`` is the API key's name, a web user's login or
``"anonyme"``.
"""

from __future__ import annotations

from typing import Any

from forms_service import db
from forms_service.logging_setup import get_logger, redact

ANONYMOUS = "anonyme"
log = get_logger(__name__)


def current_actor() -> str:
    """The actor of the current request (set by the API key check), else ``"anonyme"``."""
    from flask import g, has_request_context

    if has_request_context():
        return getattr(g, "actor", None) or ANONYMOUS
    return ANONYMOUS


def record_event(actor: str | None, action: str, *, form_id: str | None = None,
                 document_id: str | None = None, session=None, **detail: Any) -> db.AuditEvent:
    """Store one audit event and log it (without personal data). With ``session``, the
    event joins that transaction (a document and its event commit together); without,
    it has its own."""
    event = db.AuditEvent(actor=actor or ANONYMOUS, action=action, form_id=form_id,
                          document_id=document_id, detail=redact(detail))
    if session is not None:
        session.add(event)
    else:
        with db.session() as s:
            s.add(event)
    log.info("audit", actor=event.actor, action=action, form_id=form_id, document_id=document_id)
    return event

"""The audit trail: who did what to which form or document.

    from forms_service.audit import record_event, current_actor
    record_event(current_actor(), "document.rendu", form_id="cer", document_id=doc_id, format="pdf")

    record_event(principal, "beneficiaire.consulte", object_type="beneficiaire", object_id=42)

``form_id`` and ``document_id`` get their own columns, and so does the object an
event is about (``object_type`` + ``object_id``: ``beneficiaire``,
``enregistrement``, ``annuaire``...; no foreign key, so the event outlives the
object); every other keyword goes to ``detail`` after ``logging_setup.redact``:
pass identifiers, counts and codes, never what a person wrote. ``actor`` is a
:class:`~forms_service.principal.Principal` (its ``actor``: ``user:<id>``,
``key:<name>``) or that string itself, else ``"anonyme"``.

Actions (verb in the past participle): ``document.rendu``, ``document.telecharge``,
``parse``, ``beneficiaire.consulte``, ``beneficiaires.liste``,
``beneficiaires.importes``, ``enregistrement.consulte``, ``annuaire.importe``,
``annuaire.exporte``, ``journal.consulte``. ``forms_service.api.audit`` and the
page ``/administration/journal`` read them back.
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


def record_event(actor: Any, action: str, *, form_id: str | None = None,
                 document_id: str | None = None, object_type: str | None = None,
                 object_id: Any = None, session=None, **detail: Any) -> db.AuditEvent:
    """Store one audit event and log it (without personal data). ``actor`` is a
    Principal or an actor string. With ``session``, the event joins that transaction
    (a document and its event commit together); without, it has its own."""
    name = getattr(actor, "actor", actor) or ANONYMOUS
    event = db.AuditEvent(actor=name, action=action, form_id=form_id, document_id=document_id,
                          object_type=object_type,
                          object_id=None if object_id is None else str(object_id),
                          detail=redact(detail))
    if session is not None:
        session.add(event)
    else:
        with db.session() as s:
            s.add(event)
    log.info("audit", actor=event.actor, action=action, form_id=form_id, document_id=document_id,
             object_type=object_type, object_id=event.object_id)
    return event

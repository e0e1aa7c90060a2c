"""A page of a fiche de liaison sent back alone (the structure's page 3, returned without
pages 1–2) adds to its request from what it carries.

The scan reader marks every field whose boxes are on a page it did not get « Page(s)
manquante(s) » and sends it to review (``parsers.scan.pipeline``): right for a new fiche,
whose pages 1–2 are its content, but not for a fiche whose document already has a request
(``service.request_of_document``): those fields are the request's, already known, and a
structure returns only its part. ``settle`` (the circuit's hook on a stored record, before
the record becomes an avis) takes them out of the review; what the carried page itself
leaves uncertain (a box, handwriting) stays to review. A record left with nothing to
review goes on to its request at once.
"""

from __future__ import annotations

import copy

from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified

from forms_service.circuit import service
from forms_service.logging_setup import get_logger

log = get_logger(__name__)

#: The reader's reason for a field on a page it did not get (``parsers.scan.pipeline``).
MISSING_PAGE = "Page(s) manquante(s)"
NOT_CARRIED = "Page non renvoyée : la demande a déjà cette partie de la fiche"


def settle(session: Session, row) -> bool:
    """See the module docstring. True when the record's review changed."""
    from forms_service.desk.records import needs_review

    if row.form_id != service.FORM_ID or getattr(row, "review", None) != "pending":
        return False
    if not row.document_id or service.request_of_document(session, row.document_id) is None:
        return False
    record = copy.deepcopy(row.record or {})
    fields = record.get("fields") or {}
    left = [path for path, f in fields.items()
            if f.get("needs_review") and str(f.get("reason") or "").startswith(MISSING_PAGE)]
    if not left:
        return False
    for path in left:
        fields[path].update(needs_review=False, not_carried=True, reason=NOT_CARRIED)
    if not any(f.get("needs_review") for f in fields.values()):
        record["status"] = "valid" if (record.get("validation") or {}).get("valid") else "invalid"
    row.record, row.status = record, record["status"]
    flag_modified(row, "record")
    row.review = "pending" if needs_review(row, record) else "none"
    log.info("fiche_pages_not_carried", record_id=row.id, fields=len(left), review=row.review)
    return True


__all__ = ["settle", "NOT_CARRIED"]

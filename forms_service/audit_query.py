"""Reading the audit trail back (administrators): filters, paging, one row shape.

    page = audit_page(principal, actor="user:3", action="beneficiaire.consulte",
                      object_type="beneficiaire", object_id="42", since=date, until=date,
                      page=1, per_page=50)

Used by ``GET /api/v1/audit`` and the page ``/administration/journal``. The events
hold ids and codes only (see ``forms_service.audit``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, or_, select

from forms_service import db
from forms_service.errors import FormsError
from forms_service.principal import Principal

MAX_PER_PAGE = 500


def may_read_audit(p: Principal) -> bool:
    """Administrators, and a machine key (no person) holding the ``admin`` scope."""
    return p.is_admin or (p.scopes is not None and p.user_id is None and "admin" in p.scopes)


def require_audit_reader(p: Principal) -> None:
    if not may_read_audit(p):
        from forms_service.errors import Forbidden

        raise Forbidden("Journal réservé aux administrateurs", rule="administrateur_requis")


def event_dict(e: db.AuditEvent) -> dict[str, Any]:
    return {"id": e.id, "at": e.at.isoformat(), "actor": e.actor, "action": e.action,
            "object_type": e.object_type or ("document" if e.document_id else None),
            "object_id": e.object_id or e.document_id, "form_id": e.form_id,
            "document_id": e.document_id, "detail": e.detail or {}}


def audit_page(p: Principal, *, actor: str | None = None, action: str | None = None,
               object_type: str | None = None, object_id: str | None = None,
               since: dt.date | None = None, until: dt.date | None = None,
               page: int = 1, per_page: int = 50) -> dict[str, Any]:
    require_audit_reader(p)
    if page < 1 or not 1 <= per_page <= MAX_PER_PAGE:
        raise FormsError(f"Pagination invalide (page ≥ 1, 1 ≤ per_page ≤ {MAX_PER_PAGE})",
                         rule="pagination_invalide")
    stmt = select(db.AuditEvent)
    if actor:
        stmt = stmt.where(db.AuditEvent.actor == actor)
    if action:
        stmt = stmt.where(db.AuditEvent.action.startswith(action))
    if object_type == "document":
        stmt = stmt.where(or_(db.AuditEvent.object_type == "document",
                              db.AuditEvent.document_id.is_not(None)))
    elif object_type:
        stmt = stmt.where(db.AuditEvent.object_type == object_type)
    if object_id:
        stmt = stmt.where(or_(db.AuditEvent.object_id == str(object_id),
                              db.AuditEvent.document_id == str(object_id)))
    if since:
        stmt = stmt.where(db.AuditEvent.at >= dt.datetime.combine(since, dt.time(), dt.timezone.utc))
    if until:
        end = dt.datetime.combine(until + dt.timedelta(days=1), dt.time(), dt.timezone.utc)
        stmt = stmt.where(db.AuditEvent.at < end)
    with db.session() as s:
        total = s.scalar(select(func.count()).select_from(stmt.subquery()))
        rows = s.scalars(stmt.order_by(db.AuditEvent.id.desc())
                         .offset((page - 1) * per_page).limit(per_page)).all()
        items = [event_dict(e) for e in rows]
    return {"items": items, "page": page, "per_page": per_page, "total": total}

"""``GET /api/v1/audit``: the audit trail, for administrators (scope ``admin``), paginated,
filtered by actor, action (prefix), object (type and id) and dates."""

from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field

from forms_service.api.errors import ErrorBody
from forms_service.api.params import PageNumber
from forms_service.audit_query import MAX_PER_PAGE, audit_page
from forms_service.principal import current_principal

tag = Tag(name="journal", description="Journal d'audit (administrateurs)")
bp = APIBlueprint("audit", __name__, abp_tags=[tag],
                  abp_responses={400: ErrorBody, 401: ErrorBody, 403: ErrorBody})


class AuditQuery(BaseModel):
    actor: Optional[str] = Field(None, description="« user:<id> », « key:<nom> », « console »…")
    action: Optional[str] = Field(None, description="Action ou son préfixe (« beneficiaire. »)")
    object_type: Optional[str] = Field(None, description="beneficiaire, document, enregistrement, annuaire")
    object_id: Optional[str] = None
    since: Optional[dt.date] = Field(None, description="Depuis ce jour (inclus)")
    until: Optional[dt.date] = Field(None, description="Jusqu'à ce jour (inclus)")
    page: PageNumber = 1
    per_page: int = Field(50, ge=1, le=MAX_PER_PAGE)


class AuditEventOut(BaseModel):
    id: int
    at: str
    actor: str
    action: str
    object_type: Optional[str]
    object_id: Optional[str]
    form_id: Optional[str]
    document_id: Optional[str]
    detail: dict[str, Any]


class AuditPage(BaseModel):
    items: list[AuditEventOut]
    page: int
    per_page: int
    total: int


@bp.get("/audit", summary="Journal d'audit", responses={200: AuditPage})
def list_audit(query: AuditQuery):
    return audit_page(current_principal(), **query.model_dump())


__all__ = ["bp"]

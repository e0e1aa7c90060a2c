"""« Mes demandes »: the référent's requests (``/mes-demandes``) with their state and the avis
they received, and one request (``/mes-demandes/<id>``): its history and, when it came back
for correction, the broken rules in plain French. The référent pages issue builds around it.

A référent sees the requests they are the référent of; administrators see every request.
"""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, request
from sqlalchemy import func, select

from forms_service import access, db
from forms_service.circuit import notify, queries
from forms_service.circuit.machine import machine
from forms_service.circuit.models import Demande
from forms_service.errors import NotFound
from forms_service.principal import current_principal
from forms_service.web.circuit_view import fiche_sections, filters_from_args

bp = Blueprint("mes_demandes", __name__, url_prefix="/mes-demandes", template_folder="templates")


def _principal():
    return current_principal()  # the role: accounts.authn.PAGE_ROLES


def mine(p):
    """The requests ``p`` is the référent of (administrators: every request)."""
    stmt = access.visible_requests(p)
    return stmt if p.is_admin else stmt.where(Demande.referent_id == p.user_id)


@bp.get("/")
def liste():
    p = _principal()
    filters, raw = filters_from_args()
    page_number = max(1, request.args.get("page", 1, type=int) or 1)
    with db.session() as s:
        stmt = queries.statement(p, filters)
        if not p.is_admin:
            stmt = stmt.where(Demande.referent_id == p.user_id)
        total = s.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        rows = s.scalars(stmt.order_by(Demande.updated_at.desc(), Demande.id.desc())
                         .offset((page_number - 1) * queries.PER_PAGE).limit(queries.PER_PAGE)).all()
        items = []
        for d in rows:
            item = queries.as_dict(d, with_avis=True)
            given = [a for a in item["avis"] if a["etape"] not in ("routage", "correction")]
            item["dernier_avis"] = given[-1] if given else None
            items.append(item)
    pages = max(1, -(-total // queries.PER_PAGE))
    return render_template("mes_demandes.html", items=items, total=total, page=page_number,
                           pages=pages, raw=raw, m=machine(),
                           outbox=notify.outbox_mode(current_app.extensions["forms_service.settings"]))


@bp.get("/<int:request_id>")
def demande(request_id: int):
    p = _principal()
    with db.session() as s:
        d = s.scalars(mine(p).where(Demande.id == request_id)).first()
        if d is None:
            raise NotFound(access.MSG_REQUEST, path="demande")
        detail = queries.as_dict(d, with_avis=True)
        sections = fiche_sections(d.data)
    return render_template("mes_demande.html", d=detail, sections=sections, m=machine())


__all__ = ["bp"]

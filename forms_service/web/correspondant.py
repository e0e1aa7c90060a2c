"""The correspondant's inbox: ``/correspondant/`` (the requests of their territory, filtered
by type, state, date, référent, deadline) and ``/correspondant/demandes/<id>`` (the fiche's
fields, its page images and its rule problems side by side, and the avis in one form).

Needs the ``requests`` scope and the ``correspondant`` role (administrators too); what the
access policy does not let one see is 404.
"""

from __future__ import annotations

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from sqlalchemy import select

from forms_service import access, db
from forms_service.accounts.models import User
from forms_service.beneficiaries.models import Beneficiary
from forms_service.circuit import mailing, notify, queries, service
from forms_service.circuit.machine import machine
from forms_service.errors import FormsError
from forms_service.principal import current_principal
from forms_service.web.circuit_view import fiche_sections, filters_from_args

bp = Blueprint("correspondant", __name__, url_prefix="/correspondant", template_folder="templates")

STEP = "correspondant"


class AvisForm(FlaskForm):
    """The CSRF token of the avis form (its fields are the step's, from states.yaml)."""


def _principal():
    return current_principal()  # the role: accounts.authn.PAGE_ROLES


def _settings():
    return current_app.extensions["forms_service.settings"]


@bp.get("/")
def boite():
    p = _principal()
    filters, raw = filters_from_args(default_etat="avis_correspondant")
    page_number = max(1, request.args.get("page", 1, type=int) or 1)
    with db.session() as s:
        rows, total, pages = queries.page(s, p, filters, page_number)
        items = [_item(s, d) for d in rows]
        referents = _referents(s, p)
    return render_template("correspondant_boite.html", items=items, total=total, pages=pages,
                           page=page_number, raw=raw, m=machine(), referents=referents,
                           outbox=notify.outbox_mode(_settings()))


def _item(s, d) -> dict:
    item = queries.as_dict(d)
    b = s.get(Beneficiary, d.beneficiary_id)
    item["beneficiaire"] = f"{b.nom} {b.prenom}" if b else ""
    ref = s.get(User, d.referent_id) if d.referent_id else None
    item["referent"] = (ref.display_name or ref.email) if ref else ""
    return item


def _referents(s, p) -> list[tuple[int, str]]:
    ids = select(queries.Demande.referent_id).where(access.request_condition(p)).distinct()
    users = s.scalars(select(User).where(User.id.in_(ids)).order_by(User.email)).all()
    return [(u.id, u.display_name or u.email) for u in users]


@bp.route("/demandes/<int:request_id>", methods=["GET", "POST"])
def demande(request_id: int):
    p = _principal()
    step = machine().step(STEP)
    form = AvisForm()
    error = None
    if request.method == "POST":
        if not form.validate_on_submit():
            error = "Le formulaire a expiré : rechargez la page et recommencez."
        else:
            try:
                with db.session() as s:
                    outcome = service.record_avis(s, p, request_id, STEP,
                                                  request.form.get("choix", ""),
                                                  request.form.get("commentaire", ""), source="web")
                    mailing.stage(s, _settings(), outcome.mails)
                return redirect(url_for(".demande", request_id=request_id, enregistre=1))
            except FormsError as exc:
                if exc.http_status == 404:
                    raise
                error = exc.problems[0].message
    with db.session() as s:
        d = access.get_request(p, request_id, session=s)
        item = _item(s, d)
        detail = queries.as_dict(d, with_avis=True)
        sections = fiche_sections(d.data)
        pages = _pages(s, d)
    return render_template("correspondant_demande.html", d=item, detail=detail, sections=sections,
                           pages=pages, step=step, can_avis=d.etat in step.sources,
                           limit=service.comment_limit(step), form=form, error=error,
                           saved=request.args.get("enregistre") == "1", m=machine(),
                           outbox=notify.outbox_mode(_settings()))


def _pages(s, d) -> list[dict]:
    """The record's page images, when the fiche came from paper (desk)."""
    if d.record_id is None:
        return []
    from forms_service.desk.models import RecordPage

    rows = s.scalars(select(RecordPage).where(RecordPage.record_id == d.record_id)
                     .order_by(RecordPage.position)).all()
    return [{"position": r.position, "number": r.number,
             "url": url_for(".page_image", request_id=d.id, position=r.position)} for r in rows]


@bp.get("/demandes/<int:request_id>/pages/<int:position>.png")
def page_image(request_id: int, position: int):
    """One page of the paper the request was read from, as PNG (the desk's page images)."""
    from flask import Response

    from forms_service.desk import page_images
    from forms_service.desk.models import BatchFile, RecordPage

    p = _principal()
    with db.session() as s:
        d = access.get_request(p, request_id, session=s)
        row = s.scalars(select(RecordPage).where(RecordPage.record_id == d.record_id,
                                                 RecordPage.position == position)).first()
        file = s.get(BatchFile, row.file_id) if row is not None and row.file_id else None
        if file is None:
            abort(404)
        png = page_images.page_png(_settings(), file, row.file_page, rotation=row.rotation)
    return Response(png, mimetype="image/png")


__all__ = ["bp"]

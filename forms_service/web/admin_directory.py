"""Administration pages of the directory and the audit trail (administrators only).

- ``/administration/annuaire``: territories, MDS, SLAI, organismes; the whole directory
  edited as its YAML file (the same format as ``forms-service directory import``), its
  export, and the history of changes;
- ``/administration/journal``: the audit trail, filtered (actor, action, object, dates).
"""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, Flask, Response, render_template, request
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import TextAreaField
from wtforms.validators import DataRequired

from forms_service import db
from forms_service.audit import record_event
from forms_service.audit_query import audit_page, require_audit_reader
from forms_service.errors import FormsError
from forms_service.principal import current_principal

bp = Blueprint("admin_directory", __name__, url_prefix="/administration",
               template_folder="templates")


class DirectoryForm(FlaskForm):
    contenu = TextAreaField("Annuaire (YAML)", validators=[DataRequired("Le fichier est vide.")])


def _admin():
    principal = current_principal()
    require_audit_reader(principal)
    return principal


def _sections():
    from forms_service.web.admin import ADMIN_SECTIONS
    return ADMIN_SECTIONS


@bp.route("/annuaire", methods=["GET", "POST"])
def annuaire():
    from forms_service.directory.file import export_directory, import_directory, parse_directory
    from forms_service.directory.models import DirectoryChange, Organisme, Territory

    principal = _admin()
    form = DirectoryForm()
    problems, summary = [], None
    if form.validate_on_submit():
        try:
            data = parse_directory(form.contenu.data)
            with db.session() as s:
                summary = import_directory(s, data, principal.actor).as_dict()
            record_event(principal, "annuaire.importe", object_type="annuaire", **summary)
        except FormsError as err:
            problems = err.problems
    with db.session() as s:
        territories = s.scalars(select(Territory).order_by(Territory.code)).all()
        organismes = s.scalars(select(Organisme).order_by(Organisme.code)).all()
        history = s.scalars(select(DirectoryChange).order_by(DirectoryChange.id.desc()).limit(30)).all()
        if not form.is_submitted() or summary is not None:
            form.contenu.data = export_directory(s)
        return render_template("admin_annuaire.html", sections=_sections(), form=form,
                               territories=territories, organismes=organismes, history=history,
                               problems=problems, summary=summary)


@bp.get("/annuaire/export")
def annuaire_export():
    from forms_service.directory.file import export_directory

    principal = _admin()
    with db.session() as s:
        text = export_directory(s)
    record_event(principal, "annuaire.exporte", object_type="annuaire")
    response = Response(text, mimetype="application/yaml")
    response.headers.set("Content-Disposition", "attachment", filename="annuaire.yaml")
    return response


def _date(name: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(request.args.get(name, ""))
    except ValueError:
        return None


@bp.get("/journal")
def journal():
    principal = _admin()
    filters = {k: (request.args.get(k) or None) for k in ("actor", "action", "object_type", "object_id")}
    page = max(1, request.args.get("page", 1, type=int) or 1)
    result = audit_page(principal, **filters, since=_date("since"), until=_date("until"),
                        page=page, per_page=50)
    return render_template("admin_journal.html", sections=_sections(), result=result,
                           filters=filters, since=request.args.get("since", ""),
                           until=request.args.get("until", ""))


def init_app(app: Flask) -> None:
    from forms_service.web.admin import ADMIN_SECTIONS

    for section in (("Annuaire", "admin_directory.annuaire"), ("Journal", "admin_directory.journal")):
        if section not in ADMIN_SECTIONS:
            ADMIN_SECTIONS.append(section)
    app.register_blueprint(bp)

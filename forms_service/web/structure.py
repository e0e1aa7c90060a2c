"""The structure's pages: ``/structure/`` (the actions CG the Président sent to it, to
handle, and those it returned) and ``/structure/demandes/<id>`` (the fiche as far as a
structure may see it, and its return in one form: ``circuit.structure.record_return``).

Needs the ``requests`` scope and the ``structure`` role (administrators too); only the
requests sent to the account's organisme are found, any other answers 404 (the access
policy).
"""

from __future__ import annotations

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from flask_wtf import FlaskForm

from forms_service import db
from forms_service.beneficiaries.models import Beneficiary
from forms_service.catalogue.paths import get_path
from forms_service.circuit import mailing, queries, service, structure
from forms_service.circuit.machine import machine
from forms_service.errors import FormsError
from forms_service.principal import current_principal
from forms_service.web.circuit_view import fiche_sections

bp = Blueprint("structure", __name__, url_prefix="/structure", template_folder="templates")


class RetourForm(FlaskForm):
    """The CSRF token of the return form (its fields are the fiche's structure part)."""


def _item(s, d) -> dict:
    item = queries.as_dict(d)
    b = s.get(Beneficiary, d.beneficiary_id)
    item["beneficiaire"] = f"{b.nom} {b.prenom}" if b else ""
    f = service.form().field("actions_cg")
    item["actions"] = [f.option(code).label for code in get_path(d.data, "actions_cg") or []
                       if f.option(code)]
    return item


@bp.get("/")
def boite():
    p = current_principal()
    with db.session() as s:
        todo = [_item(s, d) for d in structure.inbox(s, p)]
        done = [_item(s, d) for d in structure.inbox(s, p, etat="traitee")]
    return render_template("structure_boite.html", todo=todo, done=done, m=machine())


@bp.route("/demandes/<int:request_id>", methods=["GET", "POST"])
def demande(request_id: int):
    p = current_principal()
    step = machine().step(structure.STEP)
    form = RetourForm()
    error = None
    if request.method == "POST":
        if not form.validate_on_submit():
            error = "Le formulaire a expiré : rechargez la page et recommencez."
        else:
            f = request.form
            fields = {fd.path: f.get(fd.path, "") for fd in service.section_fields(step)}
            try:
                with db.session() as s:
                    outcome = structure.record_return(s, p, request_id, f.get("choix", ""),
                                                      synthese=f.get("synthese", ""),
                                                      fields=fields, source="web")
                    mailing.stage(s, current_app.extensions["forms_service.settings"],
                                  outcome.mails)
                return redirect(url_for(".demande", request_id=request_id, enregistre=1))
            except FormsError as exc:
                if exc.http_status == 404:
                    raise
                error = exc.problems[0].message
    with db.session() as s:
        d = structure.get_sent(s, p, request_id)
        item = _item(s, d)
        visible = structure.visible_data(d.data)
        sections = fiche_sections(visible)
        history = [a for a in queries.as_dict(d, with_avis=True)["avis"]
                   if a["etape"] in (structure.STEP,)]
        can_return = d.etat in step.sources
    values = request.form if error else {}
    inputs = [{"field": fd, "value": values.get(fd.path) or get_path(visible, fd.path) or
               _default(visible, fd.path)} for fd in service.section_fields(step)]
    return render_template("structure_demande.html", d=item, sections=sections, step=step,
                           inputs=inputs, history=history, can_return=can_return, form=form,
                           error=error, values=values, limit=service.comment_limit(step),
                           saved=request.args.get("enregistre") == "1", m=machine())


#: The structure part's identity fields, pre-filled from what the Président's part printed.
_FROM_PRESIDENT = {"structure.nom": "president.structure", "structure.adresse": "president.structure_adresse",
                   "structure.intervenant": "president.structure_animateur",
                   "structure.tel": "president.structure_tel", "structure.fax": "president.structure_fax",
                   "structure.email": "president.structure_email"}


def _default(visible: dict, path: str) -> str:
    source = _FROM_PRESIDENT.get(path)
    return (get_path(visible, source) or "") if source else ""


__all__ = ["bp"]

"""The référent's pages: the list of forms and one page per form."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, render_template, send_file

from forms_service.catalogue import catalogue

bp = Blueprint("referent", __name__, template_folder="templates", static_folder="static",
               static_url_path="/static")


@bp.get("/")
def accueil():
    forms = catalogue.forms()
    return render_template("accueil.html",
                           formulaires=[fd for fd in forms if fd.kind == "form"],
                           references=[fd for fd in forms if fd.kind != "form"])


@bp.get("/formulaires/<form_id>")
def formulaire(form_id: str):
    fd = catalogue.get(form_id)
    entries = [e.as_dict() for e in fd.entries()] if fd.kind != "form" else []
    return render_template("formulaire.html", fd=fd, rules=fd.rules() if fd.kind == "form" else [],
                           entries=entries)


@bp.get("/logo")
def logo():
    """The département's logo (``DEPARTEMENT_LOGO``), shown in the page header."""
    path = current_app.extensions["forms_service.settings"].departement_logo
    if path is None or not path.is_file():
        abort(404)
    return send_file(path, max_age=3600)

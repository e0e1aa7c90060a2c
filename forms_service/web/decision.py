"""The decideur's page ``/decision/``: the requests of their territory awaiting the
Président's decision (by delegation), each with what the earlier steps said and one form:
favorable / défavorable, the avenant yes/no, the structure of an action CG (from the
directory, or entered) and a comment (``circuit.decision.decide``).

Needs the ``requests`` scope and the ``decideur`` role (administrators too); a request the
access policy does not let one see is 404.
"""

from __future__ import annotations

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from flask_wtf import FlaskForm

from forms_service import access, db
from forms_service.circuit import decision, mailing, notify, queries, service, structure
from forms_service.circuit.machine import machine
from forms_service.circuit.structure_models import StructureEnvoi
from forms_service.errors import FormsError
from forms_service.principal import current_principal
from forms_service.web.circuit_view import fiche_sections
from forms_service.web.correspondant import _item

bp = Blueprint("decision", __name__, url_prefix="/decision", template_folder="templates")


class DecisionForm(FlaskForm):
    """The CSRF token of the decision forms (their fields come from states.yaml and the
    fiche's definition)."""


def _settings():
    return current_app.extensions["forms_service.settings"]


@bp.get("/")
def liste():
    return _page()


@bp.post("/<int:request_id>")
def decider(request_id: int):
    p = current_principal()
    form = DecisionForm()
    if not form.validate_on_submit():
        return _page(errors={request_id: "Le formulaire a expiré : rechargez la page et recommencez."})
    f = request.form
    d = decision.Decision(
        choix=f.get("choix", ""), avenant=f.get("avenant") or None,
        organisme=f.get("organisme") or None, commentaire=f.get("commentaire", ""),
        structure={path: f.get(path, "") for path in decision.STRUCTURE_FIELDS})
    try:
        with db.session() as s:
            outcome = decision.decide(s, p, request_id, d, source="web")
            # (a structure's copy is printed once this commits: structure.py)
            mailing.stage(s, _settings(), outcome.mails)
    except FormsError as exc:
        if exc.http_status == 404:
            raise
        return _page(errors={request_id: exc.problems[0].message}, values={request_id: f})
    return redirect(url_for(".liste", enregistre=request_id))


@bp.get("/envois")
def envois():
    return _copies_page()


@bp.post("/envois/<int:request_id>")
def renvoyer(request_id: int):
    """« Renvoyer » a structure's copy that failed or waits (audited), to the address kept
    or one entered (a structure that had none)."""
    p = current_principal()
    if not DecisionForm().validate_on_submit():
        return _copies_page(error="Le formulaire a expiré : rechargez la page et recommencez.")
    try:
        sent = structure.resend(current_app._get_current_object(), p, request_id,
                                request.form.get("email"))
    except FormsError as exc:
        if exc.http_status == 404:
            raise
        return _copies_page(error=exc.problems[0].message, status=exc.http_status)
    if not sent:
        return _copies_page(error=f"La fiche n° {request_id} n'a pas pu être imprimée : "
                                  "réessayez plus tard.", status=503)
    return redirect(url_for(".envois", renvoye=request_id))


def _copies_page(error: str | None = None, status: int = 200):
    p = current_principal()
    with db.session() as s:
        rows = [{"id": d.id, "types": d.types, "territoire": d.territoire, "mode": e.mode,
                 "statut": e.statut, "email": e.email or "", "since": e.created_at,
                 "structure": (d.data.get("president") or {}).get("structure") or "—"}
                for d, e in structure.copies_to_watch(s, p)]
    return render_template("decision_envois.html", rows=rows, form=DecisionForm(), m=machine(),
                           error=error, resent=request.args.get("renvoye", type=int),
                           outbox=notify.outbox_mode(_settings())), status


def _page(errors: dict | None = None, values: dict | None = None):
    p = current_principal()
    step = machine().step(decision.STEP)
    fd = service.form()
    with db.session() as s:
        items = []
        for d in decision.awaiting(s, p):
            item = _item(s, d)
            item["detail"] = queries.as_dict(d, with_avis=True)
            item["sections"] = fiche_sections(d.data)
            item["structures"] = ([(o.code, o.name) for o in decision.structures_for(s, d)]
                                  if decision.CG_TYPE in d.types else [])
            items.append(item)
        done = _done(s, request.args.get("enregistre", type=int))
    return render_template(
        "decision.html", items=items, step=step, m=machine(), form=DecisionForm(),
        errors=errors or {}, values=values or {}, done=done,
        limit=service.comment_limit(step), avenant_field=fd.field("avenant"),
        structure_fields=[fd.field(path) for path in decision.STRUCTURE_FIELDS],
        outbox=notify.outbox_mode(_settings()))


def _done(s, request_id: int | None) -> dict | None:
    """What the decision just recorded did (the confirmation shown after it)."""
    if not request_id:
        return None
    d = access.get_request(current_principal(), request_id, session=s)
    envoi = s.get(StructureEnvoi, d.id)
    return {"id": d.id, "etat": machine().states[d.etat],
            "envoi": {"mode": envoi.mode, "statut": envoi.statut} if envoi else None}


__all__ = ["bp"]

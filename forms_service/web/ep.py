"""The équipe pluridisciplinaire's secretariat: ``/ep/`` (the agenda: the territory's requests
waiting for the EP with their one-month deadline, late or due within 7 days shown first, and
its sessions; a new session), ``/ep/seances/<id>`` (a session: its agenda, requests added or
taken off, the EP's avis per request, closing it, its agenda and minutes as PDF) and
``/ep/demandes/<id>`` (a request's fiche and history, what the EP examines).

Needs the ``requests`` scope and the ``secretariat_ep`` role (administrators too); what the
access policy does not let one see is 404. The work is ``circuit.ep_service``'s.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, current_app, redirect, render_template, request, url_for
from flask_wtf import FlaskForm

from forms_service import access, clock, db
from forms_service.beneficiaries.models import Beneficiary
from forms_service.circuit import ep_deadlines, ep_documents, ep_service, mailing, notify, queries
from forms_service.circuit.ep_models import EpSession
from forms_service.circuit.machine import machine
from forms_service.errors import BadRequest, FormsError
from forms_service.principal import current_principal
from forms_service.web.circuit_view import fiche_sections

bp = Blueprint("ep", __name__, url_prefix="/ep", template_folder="templates")

#: Sessions' dates and hours are the département's (shown and typed in Paris time).
LOCAL = ZoneInfo("Europe/Paris")
#: How many held or cancelled sessions the agenda lists.
PAST_SESSIONS = 10


class EpForm(FlaskForm):
    """The CSRF token of the secretariat's forms (their fields are read from the request)."""


def _principal():
    return current_principal()  # the role: accounts.authn.PAGE_ROLES


def _settings():
    return current_app.extensions["forms_service.settings"]


def _today() -> dt.date:
    return clock.current().today()


def _item(s, d, today) -> dict:
    item = queries.as_dict(d)
    b = s.get(Beneficiary, d.beneficiary_id)
    item["beneficiaire"] = f"{b.nom} {b.prenom}" if b else ""
    item["delai"] = ep_deadlines.deadline(d, today)
    avis = ep_service.ep_avis_of(d)
    item["avis_ep"] = queries.avis_dict(avis) if avis is not None else None
    return item


def _session_view(row: EpSession) -> dict:
    local = row.date_seance.astimezone(LOCAL)
    return {"id": row.id, "territoire": row.territoire, "lieu": row.lieu, "statut": row.statut,
            "statut_libelle": row.statut_libelle, "ouverte": row.ouverte,
            "date": local.strftime("%d/%m/%Y"), "heure": local.strftime("%H:%M"),
            "inscrites": len(row.passages),
            "avis": sum(1 for x in row.passages if x.avis_id is not None)}


def _fail(exc: FormsError):
    if exc.http_status in (401, 403, 404):
        raise exc
    return exc.problems[0].message, exc.http_status


# --------------------------------------------------------------------------- the agenda

@bp.get("/")
def agenda():
    return _agenda_page(None, 200)


def _agenda_page(error: str | None, status: int):
    p = _principal()
    today = _today()
    with db.session() as s:
        waiting = [_item(s, d, today) for d in ep_service.waiting(s, p)]
        waiting.sort(key=lambda i: (i["delai"].deadline, i["id"]))
        watch = []
        for e in ep_deadlines.deadlines(s, p, today):
            if e.status == "a_venir":
                continue
            d = access.get_request(p, e.demande_id, session=s)
            item = _item(s, d, today)
            passage = ep_service.open_passage(s, d.id)
            item["seance"] = passage.session_id if passage is not None else None
            watch.append(item)
        rows = ep_service.sessions(s, p)
        open_sessions = [_session_view(r) for r in rows if r.ouverte]
        past = sorted((r for r in rows if not r.ouverte), key=lambda r: r.date_seance,
                      reverse=True)[:PAST_SESSIONS]
        past = [_session_view(r) for r in past]
        territories = _territories(s) if p.is_admin else []
    counts = {k: sum(1 for i in watch if i["delai"].status == k) for k in ("en_retard", "proche")}
    return render_template("ep_agenda.html", waiting=waiting, watch=watch, open_sessions=open_sessions,
                           past=past, counts=counts, today=today, m=machine(), form=EpForm(),
                           error=error, territories=territories,
                           default_territory=p.territoire or "",
                           created=request.args.get("cree")), status


def _territories(s) -> list[tuple[str, str]]:
    from sqlalchemy import select

    from forms_service.directory.models import Territory
    return [(t.code, t.name) for t in s.scalars(select(Territory).order_by(Territory.name))]


@bp.post("/seances")
def creer_seance():
    p = _principal()
    if not EpForm().validate_on_submit():
        return _agenda_page("Le formulaire a expiré : rechargez la page et recommencez.", 400)
    try:
        when = _local_datetime(request.form.get("date", ""), request.form.get("heure", ""))
        with db.session() as s:
            row = ep_service.create_session(s, p, territoire=request.form.get("territoire") or None,
                                            date_seance=when, lieu=request.form.get("lieu", ""))
            new_id = row.id
    except FormsError as exc:
        return _agenda_page(*_fail(exc))
    return redirect(url_for(".seance", session_id=new_id, cree=1))


def _local_datetime(day: str, hour: str) -> dt.datetime:
    try:
        d = dt.date.fromisoformat(day)
    except ValueError:
        raise BadRequest("Indiquez la date de la séance (jj/mm/aaaa)", path="date",
                         rule="date_invalide") from None
    try:
        t = dt.time.fromisoformat(hour) if hour else dt.time(9, 0)
    except ValueError:
        raise BadRequest("Heure illisible (hh:mm)", path="heure", rule="heure_invalide") from None
    return dt.datetime.combine(d, t, tzinfo=LOCAL).astimezone(dt.timezone.utc)


# --------------------------------------------------------------------------- a session

@bp.get("/seances/<int:session_id>")
def seance(session_id: int):
    return _session_page(session_id, None, 200)


def _session_page(session_id: int, error: str | None, status: int):
    p = _principal()
    today = _today()
    step = machine().step(ep_service.STEP)
    with db.session() as s:
        row = access.get_ep_session(p, session_id, session=s)
        view = _session_view(row)
        agenda = [_item(s, access.get_request(p, x.demande_id, session=s), today)
                  for x in row.passages]
        waiting = ([_item(s, d, today) for d in ep_service.waiting(s, p, territoire=row.territoire)]
                   if row.ouverte else [])
    choices = {c: label for c, label in step.choices.items() if c not in step.system_choices}
    return render_template("ep_seance.html", seance=view, agenda=agenda, waiting=waiting,
                           choices=choices, limit=ep_documents.comment_limit(), form=EpForm(),
                           error=error, m=machine(), today=today,
                           saved=request.args.get("enregistre"), created=request.args.get("cree"),
                           outbox=notify.outbox_mode(_settings())), status


def _session_action(session_id: int, action):
    """Run ``action(session, principal)`` for a POST of the session page, then back to it."""
    p = _principal()
    if not EpForm().validate_on_submit():
        return _session_page(session_id, "Le formulaire a expiré : rechargez la page et recommencez.", 400)
    try:
        with db.session() as s:
            mails, anchor = action(s, p)
            mailing.stage(s, _settings(), mails)
    except FormsError as exc:
        return _session_page(session_id, *_fail(exc))
    return redirect(url_for(".seance", session_id=session_id, enregistre=anchor)
                    + (f"#demande-{anchor}" if anchor.isdigit() else ""))


@bp.post("/seances/<int:session_id>/inscrire")
def inscrire(session_id: int):
    ids = [i for i in request.form.getlist("demandes") if i.isdigit()]

    def act(s, p):
        ep_service.schedule(s, p, session_id, ids)
        return [], "inscrites"
    return _session_action(session_id, act)


@bp.post("/seances/<int:session_id>/demandes/<int:demande_id>/retirer")
def retirer(session_id: int, demande_id: int):
    def act(s, p):
        ep_service.unschedule(s, p, session_id, demande_id)
        return [], "retiree"
    return _session_action(session_id, act)


@bp.post("/seances/<int:session_id>/demandes/<int:demande_id>/avis")
def avis(session_id: int, demande_id: int):
    def act(s, p):
        outcome = ep_service.record_ep_avis(s, p, session_id, demande_id,
                                            request.form.get("choix", ""),
                                            request.form.get("commentaire", ""), source="web")
        return outcome.mails, str(demande_id)
    return _session_action(session_id, act)


@bp.post("/seances/<int:session_id>/cloture")
def cloturer(session_id: int):
    def act(s, p):
        ep_service.close_session(s, p, session_id, statut=request.form.get("statut", "tenue"))
        return [], "cloturee"
    return _session_action(session_id, act)


@bp.get("/seances/<int:session_id>/<any('ordre-du-jour', 'proces-verbal'):kind>.pdf")
def document(session_id: int, kind: str):
    """The session's agenda or minutes, printed through the render service (LibreOffice)."""
    p = _principal()
    with db.session() as s:
        row = access.get_ep_session(p, session_id, session=s)
        pdf, name = ep_documents.render_pdf(current_app, s, p, row, kind)
    return Response(pdf, mimetype="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="{name}"'})


# --------------------------------------------------------------------------- a request

@bp.get("/demandes/<int:demande_id>")
def demande(demande_id: int):
    p = _principal()
    today = _today()
    with db.session() as s:
        d = access.get_request(p, demande_id, session=s)
        item = _item(s, d, today)
        detail = queries.as_dict(d, with_avis=True)
        sections = fiche_sections(d.data)
        passage = ep_service.open_passage(s, d.id)
        seance_id = passage.session_id if passage is not None else None
    return render_template("ep_demande.html", d=item, detail=detail, sections=sections,
                           m=machine(), seance_id=seance_id)


__all__ = ["bp"]

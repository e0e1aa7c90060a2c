"""The référent's pages (issue 14).

    /                                         home: the échéances, then the forms' list
    /beneficiaires                            my beneficiaries (search POSTed, never in the URL)
    /beneficiaires/<id>                       one person: documents issued, drafts, forms to fill
    /beneficiaires/<id>/formulaires/<form>    fill a form (?brouillon=<id>: a draft;
                                              ?renouveler=<document id>: a CER renewed, « Cas 2 »;
                                              fiche-liaison?demande=<id>: a request sent back
                                              for correction, sent again by ``envoyer``)
    /beneficiaires/documents/<document id>    an issued document's file
    /rome?q=…  (JSON) and /rome/recherche     the ROME codes (Annexe 4) by code or words
    /formulaires/<form>                       a form's rules, or a reference list

Every beneficiary, document and draft is read through ``forms_service.access`` (404
when not visible). A form page's fields come from the form definition through
``web/forms_wtf.py``; what is posted is checked by ``validation.validate`` with the
app's ``Programme``. One submit button name, ``action``, says what to do:
``verifier``, ``brouillon`` (save a draft), ``docx`` / ``pdf`` (download, refused while an
error-level rule is broken), ``envoyer`` (a fiche de liaison into the circuit, or
a corrected one back to it), ``ajouter:<list>`` / ``supprimer:<list>:<row>`` (PAP rows,
without JavaScript; ``web/static/referent.js`` does the same in place).
"""

from __future__ import annotations

import datetime as dt
import io
import unicodedata

from flask import (Blueprint, abort, current_app, jsonify, redirect, render_template, request,
                   send_file, url_for)
from flask_wtf import FlaskForm
from sqlalchemy import func, or_
from wtforms import BooleanField, StringField

from forms_service import access, db, echeances, preferences
from forms_service.accounts.models import User
from forms_service.beneficiaries.models import Beneficiary
from forms_service.catalogue import catalogue, references
from forms_service.circuit import mailing
from forms_service.circuit import service as circuit
from forms_service.circuit.machine import machine
from forms_service.circuit.models import Demande
from forms_service.circuit.queries import as_dict as request_dict
from forms_service.drafts import drafts_of, get_draft, save_draft
from forms_service.errors import Forbidden, NotFound
from forms_service.principal import current_principal
from forms_service.rules.cer import contract_months
from forms_service.rules.programme import Programme
from forms_service.security import content_disposition
from forms_service.validation import validate
from forms_service.web import forms_wtf

bp = Blueprint("referent", __name__, template_folder="templates", static_folder="static",
               static_url_path="/static")

#: The forms a référent fills for a person, in the order shown.
FILLED_FORMS = ("cerp", "cers", "fiche-liaison", "annexe-3", "annexe-2")
SPHERE_LABELS = {"solidarite": "Solidarité", "professionnelle": "Professionnelle"}
FORMAT_MIMETYPES = {
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "pdf": "application/pdf",
}
ROME_LIMIT = 20
#: Requests that wait for nobody any more.
CLOSED_STATES = ("traitee", "annulee")
#: The request types a fiche de liaison may be sent as without paper (the seed: the
#: demande d'appui « peut être dématérialisée »; the others need signatures on paper).
PAPERLESS_TYPES = {"demande_appui"}


class SearchForm(FlaskForm):
    recherche = StringField("Nom, prénom ou numéro CAF",
                            render_kw={"autocomplete": "off", "maxlength": 80})


def _settings():
    return current_app.extensions["forms_service.settings"]


def _programme() -> Programme:
    return Programme.from_settings(_settings())


def _definition(form_id: str):
    if form_id not in FILLED_FORMS:
        raise NotFound("Formulaire introuvable", path="formulaire")
    return _programme().catalogue.get(form_id)


# -- home and the forms' descriptions -------------------------------------------------

class DigestForm(FlaskForm):
    actif = BooleanField("Recevoir chaque matin mes échéances par e-mail")


@bp.get("/")
def accueil():
    p = current_principal()
    due, digest_form = [], None
    if p.has_role("referent") and p.user_id is not None:
        due = _echeances(p, dt.date.today())
        with db.session() as s:
            digest_form = DigestForm(formdata=None, actif=preferences.wants_digest(s, p.user_id))
    forms = catalogue.forms()
    return render_template("accueil.html", echeances=due, digest_form=digest_form,
                           formulaires=[fd for fd in forms if fd.kind == "form"],
                           references=[fd for fd in forms if fd.kind != "form"])


@bp.post("/echeances/courriel")
def courriel_echeances():
    """Switches the daily e-mail of échéances on or off (the home page's box)."""
    p = current_principal()
    form = DigestForm()
    if not form.validate() or p.user_id is None:
        raise Forbidden("Formulaire expiré : rechargez la page", rule="csrf")
    with db.session() as s:
        preferences.set_digest(s, p.user_id, bool(form.actif.data))
    return redirect(url_for("referent.accueil"))


def _echeances(p, today: dt.date) -> list[dict]:
    with db.session() as s:
        items = echeances.for_referent(s, p, today=today, params=_programme().params())
    return [{"e": e, "nom": nom} for e, nom in items]


@bp.get("/formulaires/<form_id>")
def formulaire(form_id: str):
    fd = catalogue.get(form_id)
    entries = [e.as_dict() for e in fd.entries()] if fd.kind != "form" else []
    return render_template("formulaire.html", fd=fd, rules=fd.rules() if fd.kind == "form" else [],
                           entries=entries)


@bp.get("/logo")
def logo():
    """The département's logo (``DEPARTEMENT_LOGO``), shown in the page header."""
    path = _settings().departement_logo
    if path is None or not path.is_file():
        abort(404)
    return send_file(path, max_age=3600)


# -- my beneficiaries ---------------------------------------------------------------------

@bp.route("/beneficiaires", methods=["GET", "POST"])
def beneficiaires():
    p = current_principal()
    form = SearchForm()
    stmt = access.visible_beneficiaries(p)
    if p.has_role("referent") and not p.is_admin:
        stmt = stmt.where(Beneficiary.referent_id == p.user_id)
    searched = form.validate_on_submit() and (form.recherche.data or "").strip()
    if searched:
        words = searched.split()
        for w in words:
            like = f"%{w.lower()}%"
            stmt = stmt.where(or_(func.lower(Beneficiary.nom).like(like),
                                  func.lower(Beneficiary.prenom).like(like),
                                  Beneficiary.num_caf.like(f"%{w}%")))
    with db.session() as s:
        people = list(s.scalars(stmt.order_by(Beneficiary.nom, Beneficiary.prenom).limit(200)))
        requests: dict[int, list[str]] = {}
        rows = s.scalars(access.visible_requests(p).where(
            Demande.beneficiary_id.in_([b.id for b in people]),
            Demande.etat.not_in(CLOSED_STATES)).order_by(Demande.created_at))
        for d in rows:
            requests.setdefault(d.beneficiary_id, []).append(f"n° {d.id} : {machine().states[d.etat]}")
    return render_template("beneficiaires.html", form=form, people=people, searched=searched,
                           spheres=SPHERE_LABELS, requests=requests)


@bp.get("/beneficiaires/<int:beneficiary_id>")
def beneficiaire(beneficiary_id: int):
    p = current_principal()
    with db.session() as s:
        b = access.get_beneficiary(p, beneficiary_id, s)
        docs = list(s.scalars(access.visible_documents(p)
                              .where(db.IssuedDocument.beneficiary_id == b.id)
                              .order_by(db.IssuedDocument.created_at.desc())))
        drafts = drafts_of(s, author_id=p.user_id, beneficiary_id=b.id) if p.user_id else []
        requests = [request_dict(d, with_avis=True) for d in s.scalars(
            access.visible_requests(p).where(Demande.beneficiary_id == b.id)
            .order_by(Demande.created_at.desc()))]
        for r in requests:
            r["types_libelles"] = [machine().types.get(t, t) for t in r["types"]]
        s.expunge_all()
    cer_docs = [d for d in docs if d.form_id in ("cers", "cerp")]
    titles = {fid: catalogue.get(fid).title for fid in FILLED_FORMS}
    return render_template("beneficiaire.html", b=b, docs=docs, drafts=drafts, titles=titles,
                           requests=requests,
                           forms=FILLED_FORMS, spheres=SPHERE_LABELS,
                           last_cer=cer_docs[0] if cer_docs else None)


@bp.get("/beneficiaires/documents/<document_id>")
def document(document_id: str):
    """An issued document's file, as ``GET /api/v1/documents/<id>`` gives it."""
    from pathlib import Path

    from forms_service.audit import record_event
    from forms_service.render.service import download_name

    p = current_principal()
    doc = access.get_document(p, document_id)
    file = Path(doc.file_path)
    if not file.is_file():
        raise NotFound(access.MSG_DOCUMENT, path="document")
    record_event(p, "document.telecharge", form_id=doc.form_id, document_id=doc.document_id,
                 object_type="document", object_id=doc.document_id)
    response = send_file(io.BytesIO(file.read_bytes()),
                         mimetype=FORMAT_MIMETYPES.get(doc.format, "application/octet-stream"))
    response.headers["Content-Disposition"] = content_disposition(
        download_name(doc.form_id, doc.document_id, doc.format, doc.created_at.date()))
    return response


# -- filling a form -------------------------------------------------------------------------

def _prefill(fd, b: Beneficiary, p) -> dict:
    """What the page knows before the référent types: the person, the référent, the CER."""
    from forms_service.catalogue.paths import set_path
    from forms_service.directory.models import Mds, Organisme

    with db.session() as s:
        user = s.get(User, p.user_id) if p.user_id else None
        organisme = s.get(Organisme, user.organisme) if user and user.organisme else None
        mds = s.get(Mds, b.mds) if b.mds else None
        facts = {
            "beneficiaire.num_caf": b.num_caf, "beneficiaire.nom": b.nom,
            "beneficiaire.prenom": b.prenom, "beneficiaire.date_naissance": b.date_naissance,
            "beneficiaire.adresse": b.adresse, "orientation.date_decision": b.orientation_date,
            "mds": mds.name if mds else None,
            "referent.nom": (user.display_name or None) if user else None,
            "referent.mail": user.email if user else None,
            "referent.organisme": organisme.name if organisme else None,
            "referent.structure": organisme.name if organisme else None,
            "referent.type": {"solidarite": "solidarite", "professionnelle": "professionnel"}
            .get(b.orientation_sphere or ""),
            "date_evaluation": dt.date.today(),
        }
        if fd.id not in ("cers", "cerp"):     # the current CER, as other forms cite it
            facts.update({"cer.date_debut": b.cer_date_debut, "cer.date_fin": b.cer_date_fin})
    data: dict = {}
    for path, value in facts.items():
        f = fd.field(path)
        if value is None or f is None:
            continue
        if f.type == "choice" and value not in f.codes:
            continue
        if isinstance(value, dt.date):
            value = value.isoformat()
        if f.max_length and isinstance(value, str):
            value = value[: f.max_length]
        set_path(data, path, value)
    return data


def renewed(previous: dict, today: dt.date | None = None) -> dict:
    """A new CER from the current one (« Cas 2 »): the same person and référent, the old
    actions with their bilan kept, starting the day after the old one ends, renewal + 1."""
    from forms_service.rules.cer import add_months

    data = {k: v for k, v in previous.items()
            if k in ("beneficiaire", "referent", "orientation", "situation_professionnelle",
                     "situation_emploi", "experiences", "metiers", "pap")}
    old = previous.get("cer") or {}
    cer: dict = {}
    try:
        start = dt.date.fromisoformat(old["date_fin"]) + dt.timedelta(days=1)
        months = contract_months(dt.date.fromisoformat(old["date_debut"]),
                                 dt.date.fromisoformat(old["date_fin"])) or 0
        cer["date_debut"] = start.isoformat()
        if months:
            cer["date_fin"] = (add_months(start, months) - dt.timedelta(days=1)).isoformat()
        cer["mois_precedents"] = int(old.get("mois_precedents") or 0) + months
    except (KeyError, TypeError, ValueError):
        months = 0
    cer["renouvellement"] = int(old.get("renouvellement") or 0) + 1
    data["cer"] = cer
    return data


def _edit_rows(fd, data: dict, action: str) -> None:
    """``ajouter:pap`` appends an empty row; ``supprimer:pap:2`` removes row 2."""
    lists = forms_wtf.list_fields(fd)
    parts = action.split(":")
    if len(parts) >= 2 and parts[1] in lists:
        rows = list(data.get(parts[1]) or [])
        f = lists[parts[1]]
        if parts[0] == "ajouter" and (f.max_items is None or len(rows) < f.max_items):
            rows.append({})
        elif parts[0] == "supprimer" and len(parts) == 3 and parts[2].isdigit():
            if int(parts[2]) < len(rows):
                rows.pop(int(parts[2]))
        data[parts[1]] = rows


def _posted_rows(fd, form) -> dict:
    """The posted lists with their empty rows kept (a row just added is empty)."""
    out = {}
    for path, f in forms_wtf.list_fields(fd).items():
        out[path] = [forms_wtf.row_data(f, entry) for entry in form[forms_wtf.field_id(path)].data or []]
    return out


@bp.route("/beneficiaires/<int:beneficiary_id>/formulaires/<form_id>", methods=["GET", "POST"])
def saisie(beneficiary_id: int, form_id: str):
    p = current_principal()
    fd = _definition(form_id)
    with db.session() as s:
        b = access.get_beneficiary(p, beneficiary_id, s)
        s.expunge(b)
    sphere = forms_wtf.FORM_SPHERES.get(fd.id)
    Form = forms_wtf.form_class(fd, sphere)
    programme = _programme()
    report = None
    draft_id = request.values.get("brouillon", type=int)
    correction = _request_to_correct(p, b, fd) if "demande" in request.values else None
    status = 200
    notice = None

    if request.method == "GET":
        data = _initial_data(fd, b, p, draft_id, correction)
        form = Form(formdata=None, data=forms_wtf.form_values(fd, data))
        if correction is not None:      # the broken rules beside their fields, at once
            report = validate(fd, data, programme=programme)
    else:
        posted = Form()
        if not posted.validate():     # only the CSRF token is checked by WTForms
            raise Forbidden("Formulaire expiré : rechargez la page", rule="csrf")
        data = forms_wtf.form_data(fd, posted)
        action = request.form.get("action", "verifier")
        if action.startswith(("ajouter:", "supprimer:")):
            data.update(_posted_rows(fd, posted))      # empty rows kept: one may just have been added
            _edit_rows(fd, data, action)
            form = Form(formdata=None, data=forms_wtf.form_values(fd, data))
            notice = "Ligne ajoutée." if action.startswith("ajouter:") else "Ligne supprimée."
        else:
            report = validate(fd, data, programme=programme)
            form = Form(formdata=None, data=forms_wtf.form_values(fd, data))
            if action == "brouillon":
                with db.session() as s:
                    draft = save_draft(s, author_id=p.user_id, beneficiary_id=b.id, form_id=fd.id,
                                       data=data, draft_id=draft_id)
                    draft_id = draft.id
                notice = "Brouillon enregistré."
            elif action == "envoyer" and correction is not None:
                if report.valid:
                    return _send_corrected(correction, data, p)
                status = 422
                notice = "La fiche n'a pas été renvoyée : corrigez les erreurs signalées."
            elif action == "envoyer" and fd.id == circuit.FORM_ID:
                refused = _paperless_refusal(data) if report.valid else \
                    "La demande n'a pas été transmise : corrigez les erreurs signalées."
                if refused is None:
                    return _send(b, data, p)
                status = 422
                notice = refused
            elif action in FORMAT_MIMETYPES:
                if report.valid:
                    return _download(fd, b, data, action, p)
                status = 422
                notice = "Le document n'a pas été produit : corrigez les erreurs signalées."
    problems = _problems(fd, report) if report else []
    by_anchor: dict[str, list] = {}
    for pr in problems:
        by_anchor.setdefault(pr["anchor"] or "", []).append(pr)
    low, high = programme.bounds
    return render_template(
        "saisie.html", fd=fd, b=b, form=form, sections=forms_wtf.sections(fd),
        field_name=forms_wtf.input_name, problems=problems, by_anchor=by_anchor, report=report,
        notice=notice, draft_id=draft_id, lists=forms_wtf.list_fields(fd),
        can_send=fd.id == circuit.FORM_ID, correction=correction,
        ede_bounds=(low, high), orientations=programme.params()["ede"]["orientations"],
        couleurs=programme.params()["ede"]["couleurs"]), status


def _initial_data(fd, b, p, draft_id: int | None, correction: dict | None = None) -> dict:
    if correction is not None:
        return correction["data"]
    if draft_id:
        with db.session() as s:
            draft = get_draft(s, author_id=p.user_id, draft_id=draft_id) if p.user_id else None
            if draft is None or draft.beneficiary_id != b.id or draft.form_id != fd.id:
                raise NotFound("Brouillon introuvable", path="brouillon")
            return dict(draft.data)
    renew = request.args.get("renouveler")
    if renew and fd.id in ("cers", "cerp"):
        doc = access.get_document(p, renew)
        if doc.beneficiary_id != b.id or doc.form_id not in ("cers", "cerp"):
            raise NotFound(access.MSG_DOCUMENT, path="document")
        data = renewed(doc.data or {})
        data.update({k: v for k, v in _prefill(fd, b, p).items() if k not in data})
        return data
    return _prefill(fd, b, p)


def _problems(fd, report) -> list[dict]:
    out = []
    for n, pr in enumerate(report.problems):
        out.append({"n": n, "path": pr.path, "rule": pr.rule, "severity": pr.severity,
                    "message": pr.message, "anchor": forms_wtf.problem_anchor(fd, pr.path or "")})
    return out


def _paperless_refusal(data: dict) -> str | None:
    """Why this fiche cannot go without paper (None: it can)."""
    types = set(machine().types_of(data))
    if types and types <= PAPERLESS_TYPES:
        return None
    return ("Seule une demande d'appui peut être transmise sans papier : pour cette demande, "
            "téléchargez la fiche, faites-la signer et remettez-la au SLAI.")


def _send(b, data: dict, p):
    """The fiche de liaison straight into the circuit; then its page in « Mes demandes »."""
    with db.session() as s:
        outcome = circuit.submit(s, p, data, beneficiary_id=b.id, source="web",
                                 referent_id=p.user_id)
        request_id = outcome.demande.id
        mailing.stage(s, _settings(), outcome.mails)
    return redirect(url_for("mes_demandes.demande", request_id=request_id))


def _request_to_correct(p, b, fd) -> dict:
    """``?demande=<id>``: the référent's own request of this person, sent back to them
    (``a_corriger``): its id and the fiche's data as last sent (404 when not theirs,
    409 when it is not to correct)."""
    from forms_service.web.mes_demandes import mine

    demande_id = request.values.get("demande", type=int)
    if fd.id != circuit.FORM_ID or demande_id is None:
        raise NotFound(access.MSG_REQUEST, path="demande")
    with db.session() as s:
        d = s.scalars(mine(p).where(Demande.id == demande_id)).first()
        if d is None or d.beneficiary_id != b.id:
            raise NotFound(access.MSG_REQUEST, path="demande")
        machine().check(machine().step("correction"), d.etat, p.roles, is_admin=p.is_admin)
        return {"id": d.id, "data": dict(d.data or {}), "problems": list(d.problems or [])}


def _send_corrected(correction: dict, data: dict, p):
    """The corrected fiche back into the circuit (``circuit.service.correct``: the same
    request, a ``correction`` step, routed anew); then its page in « Mes demandes »."""
    with db.session() as s:
        outcome = circuit.correct(s, p, correction["id"], data, source="web")
        mailing.stage(s, _settings(), outcome.mails)
    return redirect(url_for("mes_demandes.demande", request_id=correction["id"]))


def _download(fd, b, data: dict, fmt: str, p):
    from forms_service.render.service import get_service

    doc = get_service().render(fd.id, data, fmt=fmt, actor=p.actor)
    access.link_document(doc.document_id, b.id)
    response = send_file(io.BytesIO(doc.content), mimetype=doc.mimetype)
    response.headers["Content-Disposition"] = content_disposition(doc.filename)
    response.headers["X-Document-Id"] = doc.document_id
    return response


# -- ROME codes (Annexe 4) ---------------------------------------------------------------------

def _fold(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text.lower())
                   if unicodedata.category(c) != "Mn")


def rome_search(q: str, limit: int = ROME_LIMIT) -> list[dict]:
    """ROME codes whose code starts with ``q`` or whose label holds every word of ``q``."""
    q = (q or "").strip()
    if not q:
        return []
    words = _fold(q).split()
    out = []
    for e in references.entries("annexe-4"):
        if e.code.lower().startswith(q.lower()) or all(w in _fold(e.label) for w in words):
            out.append({"code": e.code, "label": e.label})
            if len(out) >= limit:
                break
    return out


@bp.get("/rome")
def rome():
    """JSON: ``[{"code","label"}]`` (at most 20) for ``q`` (a code's start or words)."""
    return jsonify(rome_search(request.args.get("q", "")))


@bp.get("/rome/recherche")
def rome_recherche():
    """The same search without JavaScript: a page listing the codes found."""
    q = request.args.get("q", "")
    return render_template("rome.html", q=q, results=rome_search(q, limit=100))

"""Actions CG and their structures (step ``structure`` of ``states.yaml``).

A favourable action CG (``circuit.decision``) is sent to the structure the Président
designated (``designate``, in the decision's transaction):

- the structure has an account (role ``structure``, linked to the directory's organisme):
  the request is in its inbox (``/structure/``; the access policy lets it see the requests
  sent to its organisme and nothing else) and its accounts get an e-mail with the link;
- it has none: the fiche de liaison, printed by the render service with only what a
  structure may see (``visible_data``), is e-mailed to its address once the decision is
  committed (``send_pending``), as a fillable PDF: its page 3, filled on a computer or
  printed, filled and scanned, comes back to the desk under the copy's document id, which
  leads to this request (``service.request_of_document``).

The structure's return (``record_return``, or page 3 read back from paper through the
circuit's hooks) is an avis of step ``structure``: commence; absente (with the other
date); n'intègre pas / ne poursuit pas (with the motif); réorientation vers le référent
solidarité (with the date); and the synthèse. It goes back to the référent.
"""

from __future__ import annotations

import copy
import unicodedata
from datetime import timedelta
from functools import partial

from sqlalchemy import select
from sqlalchemy.orm import Session

from forms_service import access, db
from forms_service.accounts.models import User, UserRole
from forms_service.audit import record_event
from forms_service.catalogue.paths import get_path, set_path
from forms_service.circuit import service
from forms_service.circuit.machine import machine
from forms_service.circuit.models import Demande
from forms_service.circuit.notify import Attachment, Mail
from forms_service.circuit.structure_models import StructureEnvoi
from forms_service.db.models import utcnow
from forms_service.db.on_commit import on_commit
from forms_service.directory.models import Organisme
from forms_service.errors import BadRequest
from forms_service.logging_setup import get_logger
from forms_service.principal import Principal

log = get_logger(__name__)

STEP = "structure"
ACTOR = "systeme:circuit"

#: The fiche's sections a structure may see: who the person and the référent are, the
#: action CG asked for, the Président's part and its own. Not the EP, suspension,
#: réorientation or correspondant's parts.
VISIBLE_SECTIONS = ("administratif", "beneficiaire", "actions_cg", "president", "structure")

#: What each return needs besides its choice (the fiche's field, and the French message).
RETURN_NEEDS = {
    "absente": ("structure.autre_date_rdv", "Indiquez l'autre date de rendez-vous"),
    "n_integre_pas": ("structure.motif", "Indiquez le motif"),
    "ne_poursuit_pas": ("structure.motif", "Indiquez le motif"),
    "reorientation_referent_solidarite": ("structure.date_reorientation",
                                          "Indiquez la date de la réorientation"),
}


def visible_data(data: dict) -> dict:
    """The fiche's data a structure may see (``VISIBLE_SECTIONS``; of the objects asked for,
    the action CG only)."""
    out: dict = {}
    for section in service.form().sections:
        if section.id not in VISIBLE_SECTIONS:
            continue
        for f in section.fields:
            value = get_path(data, f.path)
            if value is not None:
                set_path(out, f.path, copy.deepcopy(value))
    if "actions_cg" in (data.get("objet") or []):
        out["objet"] = ["actions_cg"]
    return out


# --------------------------------------------------------------------------- designation

def _plain(text: str) -> str:
    return unicodedata.normalize("NFKD", text or "").encode("ascii", "ignore").decode().lower().strip()


def match_organisme(s: Session, demande: Demande, name: str) -> Organisme | None:
    """The directory organisme of the request's territory printed as ``name`` on the fiche
    (cut to the printed field, accents and case aside), if any."""
    limit = service.form().field("president.structure").max_length or 0
    wanted = _plain(name)
    for o in s.scalars(select(Organisme)):
        if demande.territoire in o.territoires and wanted in (_plain(o.name), _plain(o.name[:limit])):
            return o
    return None


def accounts_of(s: Session, organisme: Organisme | None) -> list[User]:
    """The active ``structure`` accounts of the organisme."""
    if organisme is None:
        return []
    stmt = (select(User).join(UserRole, UserRole.user_id == User.id)
            .where(UserRole.role == "structure", User.active.is_(True),
                   User.organisme == organisme.code).order_by(User.id))
    return list(s.scalars(stmt))


def designate(s: Session, demande: Demande, outcome: service.Outcome) -> StructureEnvoi:
    """Send a decided action CG to its structure (see the module docstring)."""
    data = demande.data
    organisme = match_organisme(s, demande, get_path(data, "president.structure") or "")
    accounts = accounts_of(s, organisme)
    email = (get_path(data, "president.structure_email") or
             (organisme.email if organisme is not None else "") or "").strip() or None
    mode = "compte" if accounts else ("email" if email else "aucun")
    envoi = s.get(StructureEnvoi, demande.id) or StructureEnvoi(demande_id=demande.id)
    envoi.organisme = organisme.code if organisme is not None else None
    envoi.mode, envoi.email = mode, email
    envoi.statut = {"compte": "envoye", "email": "a_envoyer", "aucun": "echec"}[mode]
    envoi.sent_at = utcnow() if mode == "compte" else None
    s.add(envoi)
    s.flush()
    if mode == "compte":
        outcome.mails.append(Mail(
            to=tuple(u.email for u in accounts), about=f"demande:{demande.id}", kind="structure",
            link=f"/structure/demandes/{demande.id}",
            subject=f"Fiche de liaison n° {demande.id} : une action CG vous est confiée",
            body=(f"Bonjour,\n\nLe Président du Conseil départemental vous confie une action CG "
                  f"(fiche de liaison n° {demande.id}).\nMerci d'indiquer son retour (début de "
                  "la prestation, absence, réorientation...) sur votre espace structure.")))
    elif mode == "email":
        _send_after_commit(s, demande.id)
    log.info("structure_designee", demande_id=demande.id, organisme=envoi.organisme, mode=mode)
    record_event(ACTOR, "demande.structure_designee", form_id=service.FORM_ID,
                 document_id=demande.document_id, object_type="demande", object_id=demande.id,
                 session=s, organisme=envoi.organisme, mode=mode)
    return envoi


def _send_after_commit(s: Session, demande_id: int) -> None:
    """Print and e-mail the structure's copy once the decision's outermost transaction
    commits (``db.on_commit``: not at a savepoint's release, the desk's hooks run in one)."""
    on_commit(s, partial(_send_now, demande_id))


def _send_now(demande_id: int) -> None:
    """The decision is committed: its copy is printed and e-mailed now. In a web or API
    request, by this app's render service; elsewhere (a decision read from paper by the
    desk's worker), by the task queue's job ``structure_send``, which a worker runs with
    its own render service (and retries)."""
    from flask import current_app, has_app_context

    if has_app_context():
        send_one(current_app._get_current_object(), demande_id)
        return
    from forms_service.circuit.in_force import settings_now
    from forms_service.desk.queue import get_queue

    try:
        get_queue(settings_now()).enqueue(SEND_TASK, demande_id)
        log.info("structure_envoi_queued", demande_id=demande_id)
    except Exception as exc:   # the queue's storage is down: the periodic job sends it
        log.warning("structure_envoi_waits", demande_id=demande_id, exc_type=type(exc).__name__)


class CopyNotSent(Exception):
    """The structure's copy could not be printed (the queue's job tries again)."""


#: The task queue's job that prints and sends one copy (``register`` puts it on the queue).
SEND_TASK = "structure_send"
#: What may be (re)sent: waiting, or failed (« Renvoyer », the queue's retry).
SENDABLE = ("a_envoyer", "echec")


#: A copy taken for sending whose print never got its document after this long was taken
#: by a process that died (``kill -9`` mid-print): the periodic job takes it again.
STALE_CLAIM = timedelta(minutes=10)


def _claim(demande_id: int, states: tuple[str, ...], *, retake_stale: bool = False) -> bool:
    """Take the copy for sending (once, whoever else tries: the web, a worker's job, the
    periodic job): ``statut`` goes to ``envoye`` only from ``states`` — or, with
    ``retake_stale``, from a claim older than :data:`STALE_CLAIM` that never got its
    document (its process died before the copy and its e-mail were written)."""
    from sqlalchemy import and_, or_, update

    now = utcnow()
    takeable = StructureEnvoi.statut.in_(states)
    if retake_stale:
        takeable = or_(takeable, and_(StructureEnvoi.statut == "envoye",
                                      StructureEnvoi.document_id.is_(None),
                                      StructureEnvoi.sent_at < now - STALE_CLAIM))
    with db.session() as s:
        done = s.execute(update(StructureEnvoi)
                         .where(StructureEnvoi.demande_id == demande_id,
                                StructureEnvoi.mode == "email", takeable)
                         .values(statut="envoye", sent_at=now))
        return done.rowcount == 1


def send_one(app, demande_id: int, *, states: tuple[str, ...] = ("a_envoyer",),
             retake_stale: bool = False) -> bool | None:
    """Print (render service, fillable PDF: only what a structure may see) and e-mail the
    copy of one request to its structure without an account. None when it was not to send
    (already sent, or being sent); False when the print failed (``echec``, logged). The
    copy records its document and writes its e-mail in one transaction (``mailing.stage``):
    a process killed before it prints the copy again (the periodic job), one killed after
    has its e-mail sent by the outbox's sweep: sent once, never lost."""
    from forms_service.circuit import mailing
    from forms_service.render.service import get_service

    if not _claim(demande_id, states, retake_stale=retake_stale):
        return None
    settings = app.extensions["forms_service.settings"]
    with db.session() as s:
        envoi = s.get(StructureEnvoi, demande_id)
        demande = s.get(Demande, demande_id)
        data, beneficiary_id, email = visible_data(demande.data), demande.beneficiary_id, envoi.email
    try:
        doc = get_service(app).render(service.FORM_ID, data, fmt="pdf", fillable=True, actor=ACTOR)
    except Exception as exc:   # LibreOffice down...: marked, logged, the desk's page shows it
        log.error("structure_envoi_failed", demande_id=demande_id, exc_type=type(exc).__name__)
        with db.session() as s:
            s.get(StructureEnvoi, demande_id).statut = "echec"
        return False
    access.link_document(doc.document_id, beneficiary_id)
    mail = Mail(
        to=(email,), about=f"demande:{demande_id}", kind="structure_fiche",
        subject=f"Fiche de liaison n° {demande_id} : une action CG vous est confiée",
        body=("Bonjour,\n\nLe Président du Conseil départemental vous confie une action CG. "
              "La fiche de liaison est jointe.\nMerci de remplir la partie réservée à la "
              "structure (page 3) et de la renvoyer au service local (scan, ou le PDF "
              "rempli)."),
        attachments=(Attachment(doc.filename, "application/pdf", doc.content),))
    with db.session() as s:   # the copy's document and its e-mail: one transaction
        s.get(StructureEnvoi, demande_id).document_id = doc.document_id
        mailing.stage(s, settings, [mail])
    log.info("structure_envoi_sent", demande_id=demande_id, document_id=doc.document_id)
    return True


def send_pending(app) -> int:
    """Every copy still waiting (``a_envoyer``: its decision's job never ran; or taken by a
    process that died mid-print), printed and sent; returns how many went. The queue's
    periodic job."""
    with db.session() as s:
        waiting = list(s.scalars(select(StructureEnvoi.demande_id).where(_to_send())))
    return sum(1 for demande_id in waiting if send_one(app, demande_id, retake_stale=True))


def _to_send():
    """The copies the periodic job sends: waiting, or claimed by a process that died."""
    from sqlalchemy import and_, or_

    stale = and_(StructureEnvoi.statut == "envoye", StructureEnvoi.document_id.is_(None),
                 StructureEnvoi.sent_at < utcnow() - STALE_CLAIM)
    return and_(StructureEnvoi.mode == "email", or_(StructureEnvoi.statut == "a_envoyer", stale))


# --------------------------------------------------------------------------- copies to resend

def copies_to_watch(s: Session, p: Principal) -> list[tuple[Demande, StructureEnvoi]]:
    """The structure copies that failed or wait (``echec``, ``a_envoyer``) of the requests
    ``p`` may see, oldest first."""
    stmt = (access.visible_requests(p)
            .join(StructureEnvoi, StructureEnvoi.demande_id == Demande.id)
            .where(StructureEnvoi.statut != "envoye")
            .add_columns(StructureEnvoi)
            .order_by(StructureEnvoi.created_at, Demande.id))
    return [(d, e) for d, e in s.execute(stmt)]


def resend(app, p: Principal, demande_id: int, email: str | None = None) -> bool:
    """« Renvoyer » (audited): the copy printed and sent again, to ``email`` if given (a
    structure without an address gets one). True when it went."""
    from forms_service.errors import Conflict

    with db.session() as s:
        d = access.get_request(p, demande_id, session=s)
        envoi = s.get(StructureEnvoi, d.id)
        if envoi is None or envoi.statut == "envoye":
            raise Conflict("Cette fiche a déjà été envoyée à sa structure", rule="deja_envoyee")
        email = (email or "").strip() or envoi.email
        if not email or "@" not in email:
            raise BadRequest("Indiquez l'adresse e-mail de la structure", path="email",
                             rule="structure_sans_contact")
        before = envoi.statut
        envoi.email, envoi.mode = email, "email"
        if envoi.statut != "echec":
            envoi.statut = "a_envoyer"
        record_event(p, "demande.structure_renvoyee", form_id=service.FORM_ID,
                     document_id=d.document_id, object_type="demande", object_id=d.id,
                     session=s, statut_avant=before)
    return bool(send_one(app, demande_id, states=SENDABLE))


# --------------------------------------------------------------------------- on the queue

def _worker_app(settings):
    from forms_service.worker_apps import worker_app   # the worker's render service
    return worker_app(settings)


def _send_task(queue, demande_id: int) -> None:
    """A worker's job: print and send one copy; a failed print raises (the queue retries)."""
    app = _worker_app(queue.settings)
    with app.app_context():
        if send_one(app, demande_id, states=SENDABLE) is False:
            raise CopyNotSent(demande_id)


def _periodic(queue) -> None:
    """Once a minute (whatever the number of workers): the copies left waiting."""
    with db.session(queue.settings) as s:
        waiting = s.scalar(select(StructureEnvoi.demande_id).where(_to_send()).limit(1))
    if waiting is None:
        return
    app = _worker_app(queue.settings)
    with app.app_context():
        send_pending(app)


def register() -> None:
    """The job and the periodic job on the desk's queue (``circuit.hooks.install``)."""
    from forms_service.desk import queue as desk_queue

    desk_queue.HANDLERS[SEND_TASK] = _send_task
    desk_queue.periodic(_periodic)


# --------------------------------------------------------------------------- the structure's side

def inbox(s: Session, p: Principal, *, etat: str | None = "structure") -> list[Demande]:
    """The requests sent to ``p``'s structure (through the access policy), oldest first."""
    stmt = (access.visible_requests(p)
            .join(StructureEnvoi, StructureEnvoi.demande_id == Demande.id))
    if etat:
        stmt = stmt.where(Demande.etat == etat)
    return list(s.scalars(stmt.order_by(Demande.updated_at, Demande.id)))


def get_sent(s: Session, p: Principal, demande_id: int) -> Demande:
    """One request sent to ``p``'s structure; ``NotFound`` (404) otherwise."""
    from forms_service.errors import NotFound

    d = access.get_request(p, demande_id, session=s)
    if s.get(StructureEnvoi, d.id) is None:
        raise NotFound(access.MSG_REQUEST, path="demande")
    return d


def record_return(s: Session, p: Principal, demande_id: int, choix: str, *,
                  synthese: str = "", fields: dict | None = None,
                  source: str = "web") -> service.Outcome:
    """The structure's return on the web (see the module docstring)."""
    d = get_sent(s, p, demande_id)
    step = machine().step(STEP)
    machine().check(step, d.etat, p.roles, is_admin=p.is_admin)
    fields = {k: v for k, v in (fields or {}).items() if v not in (None, "")}
    need = RETURN_NEEDS.get(choix)
    if need and not fields.get(need[0]):
        raise BadRequest(need[1], path=need[0], rule="retour_incomplet")
    return service.record_avis(s, p, demande_id, STEP, choix, synthese, source=source,
                               fields=fields)


__all__ = ["designate", "send_one", "send_pending", "resend", "copies_to_watch",
           "register", "visible_data", "match_organisme", "accounts_of",
           "inbox", "get_sent", "record_return", "VISIBLE_SECTIONS",
           "RETURN_NEEDS"]

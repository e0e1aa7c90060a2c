"""What happens to a fiche de liaison on its way: it arrives (``submit``, from the API or a
stored record: ``submit_record``), is checked and routed (step ``routage``), corrected by
its référent (``correct``), and receives avis (``record_avis``; from paper: a fiche read
again whose document already has a request adds to it, ``submit`` never opens a second).

Every function works in the caller's session (one transaction) and returns an ``Outcome``:
the request and the e-mails to write in the transaction (``mailing.stage``: sent once it commits).
Every change of state is an ``Avis`` row (who, when, step, choice, comment, before → after)
and an audit event (ids and codes only).
"""

from __future__ import annotations

import copy
import datetime as dt
import re
import unicodedata
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from forms_service import access, characters, clock
from forms_service.audit import record_event
from forms_service.catalogue import catalogue
from forms_service.catalogue.paths import get_path, set_path
from forms_service.circuit import routing
from forms_service.circuit.machine import SYSTEM_ROLE, Step, machine
from forms_service.circuit.models import Avis, Demande
from forms_service.circuit.notify import Mail
from forms_service.errors import BadRequest, Forbidden, TransitionRefused, ValidationFailed
from forms_service.logging_setup import get_logger
from forms_service.principal import Principal
from forms_service.rules.cer import add_months
from forms_service.validation import validate

log = get_logger(__name__)

FORM_ID = "fiche-liaison"
SYSTEM_ACTOR = "systeme"

#: What follows a step, by step code: ``hook(session, demande, outcome)``, run in the
#: step's transaction once the avis is taken (web, API and paper alike), registered by
#: the modules that do it (``circuit.decision``: the structure a CG action goes to).
AFTER_STEP: dict[str, list] = {}


#: Called with ``(session, demande, avis)`` after every avis of a person or of the service
#: (web, API, paper), in the same transaction: the EP links its avis to the request's passage
#: on a session's agenda (``circuit.ep_service``).
on_avis: list = []


@dataclass
class Outcome:
    demande: Demande
    mails: list[Mail] = field(default_factory=list)
    #: True when the fiche added to an existing request (its document had one).
    added_to_existing: bool = False


def form():
    return catalogue.get(FORM_ID)


def comment_limit(step: Step) -> int | None:
    """The printed field's ``max_length``: the avis must fit so that the fiche prints again."""
    if not step.comment_field:
        return None
    f = form().field(step.comment_field)
    return f.max_length if f is not None else None


# --------------------------------------------------------------------------- arriving

def submit(s: Session, principal: Principal, data: dict, *, beneficiary_id: int,
           source: str, document_id: str | None = None, record_id: int | None = None,
           referent_id: int | None = None) -> Outcome:
    """A fiche de liaison arrives for ``beneficiary_id`` (visible to ``principal``, else 404).

    Its document already has a request: the fiche's filled reserved parts add their avis to
    it. Otherwise a new request, checked and routed at once."""
    beneficiary = access.get_beneficiary(principal, beneficiary_id, session=s)
    if document_id:
        existing = request_of_document(s, document_id)
        if existing is not None:
            return add_paper_avis(s, principal, existing, data, record_id=record_id)
    report = validate(form(), data)
    if not report.model_valid:
        raise ValidationFailed(report.problems)
    demande = Demande(etat=machine().initial, beneficiary_id=beneficiary.id,
                      territoire=beneficiary.territoire, mds=beneficiary.mds,
                      referent_id=beneficiary.referent_id or referent_id or principal.user_id,
                      document_id=document_id, record_id=record_id, source=source,
                      data=copy.deepcopy(data), problems=[], created_by=principal.actor)
    demande.set_types(machine().types_of(data))
    s.add(demande)
    s.flush()
    record_event(principal, "demande.recue", form_id=FORM_ID, document_id=document_id,
                 object_type="demande", object_id=demande.id, session=s, source=source)
    outcome = Outcome(demande)
    _route(s, demande, report, outcome)
    return outcome


def request_of_document(s: Session, document_id: str) -> Demande | None:
    """The request a printed fiche belongs to: the one it was issued as, or the one whose
    copy was printed for its structure (``circuit.structure_models.StructureEnvoi``)."""
    from forms_service.circuit.structure_models import StructureEnvoi

    found = s.scalars(select(Demande).where(Demande.document_id == document_id)).first()
    if found is None:
        found = s.scalars(select(Demande).join(StructureEnvoi, StructureEnvoi.demande_id == Demande.id)
                          .where(StructureEnvoi.document_id == document_id)).first()
    return found


def submit_record(s: Session, principal: Principal, record) -> Outcome | None:
    """A stored record (desk, parse) of a fiche de liaison becomes a request, or adds to its
    document's. Waits (None) while it is still to review or its beneficiary is unknown: call
    again once the desk is done with it."""
    if record.form_id != FORM_ID:
        return None
    if getattr(record, "review", "none") == "pending" or record.beneficiary_id is None:
        log.info("demande_waits", record_id=record.id,
                 reason="review" if record.beneficiary_id else "beneficiaire")
        return None
    stored = record.record or {}
    if "fields" in stored:
        from parsers.record import record_data
        data = record_data(stored)
    else:
        data = stored.get("data", stored)
    return submit(s, principal, data, beneficiary_id=record.beneficiary_id,
                  source=record.source or "papier", document_id=record.document_id,
                  record_id=record.id)


def _route(s: Session, demande: Demande, report, outcome: Outcome) -> None:
    """Step ``routage``: complete → the correspondants' inbox; else back to the référent."""
    errors = [p.as_dict() for p in report.errors]
    demande.problems = errors
    choix = "invalide" if errors else "valide"
    step = machine().step("routage")
    _take(s, demande, step, choix, actor=SYSTEM_ACTOR, user_id=None, source="systeme",
          problems=errors)
    if demande.etat == "a_corriger":
        outcome.mails.append(_mail_referent(s, demande, "a_corriger", problems=errors))
    else:
        to = routing.correspondant_addresses(s, demande)
        if not to:
            log.warning("demande_no_correspondant", demande_id=demande.id,
                        territoire=demande.territoire)
        types = ", ".join(machine().types[t] for t in demande.types) or "—"
        outcome.mails.append(Mail(
            to=to, about=f"demande:{demande.id}", kind="nouvelle",
            subject=f"Fiche de liaison n° {demande.id} à examiner",
            link=f"/correspondant/demandes/{demande.id}",
            body=(f"Bonjour,\n\nUne fiche de liaison (demande n° {demande.id}) vous a été transmise "
                  f"pour avis.\nType de demande : {types}\n"
                  + (f"Avis attendu avant le {demande.echeance:%d/%m/%Y}.\n"
                     if demande.echeance else ""))))


def _take(s: Session, demande: Demande, step: Step, choix: str, *, actor: str,
          user_id: int | None, source: str, commentaire: str = "",
          problems: list | None = None) -> Avis:
    before = demande.etat
    after = step.next_state(choix, set(demande.types))
    now = clock.current().now()
    avis = Avis(demande=demande, actor=actor, user_id=user_id, etape=step.code, choix=choix,
                commentaire=commentaire, etat_avant=before, etat_apres=after, source=source,
                problems=problems or [], at=now)
    s.add(avis)
    demande.etat = after
    demande.updated_at = now
    entering = machine().steps_from(after)
    today = now.date()
    delay = next((st.delay_days for st in entering if st.delay_days), None)
    months = next((st.delay_months for st in entering if st.delay_months), None)
    demande.echeance = (add_months(today, months) if months else
                        today + dt.timedelta(days=delay) if delay else None)
    s.flush()
    record_event(actor, "demande.etape", form_id=FORM_ID, document_id=demande.document_id,
                 object_type="demande", object_id=demande.id, session=s, etape=step.code,
                 choix=choix, etat_avant=before, etat_apres=after)
    return avis


# --------------------------------------------------------------------------- correcting

def correct(s: Session, principal: Principal, demande_id: int, data: dict, *,
            source: str = "api") -> Outcome:
    """The référent sends the corrected fiche again: step ``correction``, then routed anew
    (the history keeps both routings)."""
    demande = access.get_request(principal, demande_id, session=s)
    step = machine().step("correction")
    machine().check(step, demande.etat, principal.roles, is_admin=principal.is_admin)
    report = validate(form(), data)
    if not report.model_valid:
        raise ValidationFailed(report.problems)
    kept = {p: get_path(demande.data, p) for p in _reserved_paths()}
    demande.data = copy.deepcopy(data)
    for path, value in kept.items():
        if value is not None:
            set_path(demande.data, path, value)
    demande.set_types(machine().types_of(data))
    _take(s, demande, step, "renvoyee", actor=principal.actor, user_id=principal.user_id,
          source=source)
    outcome = Outcome(demande)
    _route(s, demande, report, outcome)
    return outcome


def _reserved_paths() -> list[str]:
    paths = []
    for st in machine().steps.values():
        paths += [p for p in (st.choice_field, st.comment_field, st.date_field) if p]
        paths += [f.path for f in section_fields(st)]
    return paths


def section_fields(step: Step) -> list:
    """The fields of the step's reserved section it may fill beyond its choice, comment
    and date (``states.yaml`` ``section``; the form definition lists them)."""
    if not step.section:
        return []
    section = next(sec for sec in form().sections if sec.id == step.section)
    own = {step.choice_field, step.comment_field, step.date_field}
    return [f for f in section.fields if f.path not in own and f.type != "signature"]


def _checked_fields(step: Step, fields: dict | None, *, strict: bool) -> dict:
    """``fields`` kept to the step's section, each value fitting its printed field; a
    wrong one is refused (web, API) or, read from paper, left out."""
    allowed = {f.path: f for f in section_fields(step)}
    out = {}
    for path, value in (fields or {}).items():
        f = allowed.get(path)
        problem, rule = None, "champ_invalide"
        if f is None:
            problem = f"Champ « {path} » hors de la partie « {step.label} »"
        elif isinstance(value, str) and characters.first_forbidden(value):
            problem, rule = characters.message(characters.first_forbidden(value)), characters.RULE
        elif value in (None, ""):
            continue
        elif f.type == "date":
            try:
                value = dt.date.fromisoformat(str(value)).isoformat()
            except ValueError:
                problem = f"{f.label.rstrip(' :')} : date invalide (AAAA-MM-JJ)"
        elif f.type == "choice":
            if not f.option(str(value)):
                problem = f"{f.label.rstrip(' :')} : choix impossible"
        else:
            value = str(value).strip()
            if f.max_length and len(value) > f.max_length:
                if strict:
                    problem = (f"{f.label.rstrip(' :')} : {f.max_length} caractères au plus "
                               "(le champ imprimé sur la fiche)")
                value = value[:f.max_length]
        if problem:
            if strict:
                raise BadRequest(problem, path=path, rule=rule)
            continue
        out[path] = value
    return out


# --------------------------------------------------------------------------- avis

def record_avis(s: Session, principal: Principal, demande_id: int, etape: str, choix: str,
                commentaire: str = "", *, source: str = "api", fields: dict | None = None) -> Outcome:
    """An avis on the web or the API: the step must be allowed now (409) for the caller's
    roles (403); it feeds the fiche's reserved part (with ``fields``, the other fields of
    the step's section: ``section_fields``) and goes back to the référent."""
    demande = access.get_request(principal, demande_id, session=s)
    if etape not in machine().steps:
        raise BadRequest(f"Étape inconnue : {etape}", path="etape", rule="etape_inconnue")
    step = machine().step(etape)
    if SYSTEM_ROLE in step.roles:
        raise Forbidden(f"L'étape « {step.label} » est faite par le service", path="etape")
    machine().check(step, demande.etat, principal.roles, is_admin=principal.is_admin)
    if choix in step.system_choices:
        raise Forbidden(f"Le choix « {step.choices[choix]} » est fait par le service",
                        path="choix")
    return _avis(s, demande, step, choix, commentaire, actor=principal.actor,
                 user_id=principal.user_id, source=source,
                 fields=_checked_fields(step, fields, strict=True))


def record_system_avis(s: Session, demande: Demande, etape: str, choix: str,
                       commentaire: str = "") -> Outcome:
    """An avis the service itself records (the EP's « réputé rendu » when its month has
    passed): the same avis row, reserved fields and e-mail to the référent as a person's."""
    step = machine().step(etape)
    if demande.etat not in step.sources:
        raise TransitionRefused(
            f"L'étape « {step.label} » n'est pas possible : la demande est à l'état "
            f"« {machine().states[demande.etat]} »", path="etape")
    return _avis(s, demande, step, choix, commentaire, actor=SYSTEM_ACTOR, user_id=None,
                 source="systeme")


def _avis(s: Session, demande: Demande, step: Step, choix: str, commentaire: str, *,
          actor: str, user_id: int | None, source: str, fields: dict | None = None) -> Outcome:
    if choix not in step.choices:
        allowed = ", ".join(step.choices)
        raise BadRequest(f"Choix impossible pour l'étape « {step.label} » (attendu : {allowed})",
                         path="choix", rule="choix_invalide")
    commentaire = (commentaire or "").strip()
    if characters.first_forbidden(commentaire):
        raise BadRequest(characters.message(characters.first_forbidden(commentaire)),
                         path="commentaire", rule=characters.RULE)
    limit = comment_limit(step)
    if limit is not None and len(commentaire) > limit:
        raise BadRequest(f"Le commentaire ne tient pas sur la fiche : {limit} caractères au plus",
                         path="commentaire", rule="commentaire_trop_long")
    _feed_fiche(demande, step, choix, commentaire, fields or {})
    avis = _take(s, demande, step, choix, actor=actor, user_id=user_id, source=source,
                 commentaire=commentaire)
    for hook in on_avis:
        hook(s, demande, avis)
    outcome = Outcome(demande, [_mail_referent(s, demande, "avis", step=step, choix=choix)])
    for hook in AFTER_STEP.get(step.code, []):
        hook(s, demande, outcome)
    return outcome


def _feed_fiche(demande: Demande, step: Step, choix: str, commentaire: str,
                fields: dict) -> None:
    """The paper's reserved part, as the web avis fills it (the fiche prints again with it)."""
    data = copy.deepcopy(demande.data)
    for path, value in fields.items():
        set_path(data, path, value)
    f = form().field(step.choice_field) if step.choice_field else None
    if f is not None and (not f.options or f.option(choix) is not None):   # a printed box
        set_path(data, step.choice_field, [choix] if f.type == "multi" else choix)
    if step.comment_field:
        set_path(data, step.comment_field, commentaire or step.choices[choix])
    if step.date_field:
        set_path(data, step.date_field, clock.current().today().isoformat())
    demande.data = data


def add_paper_avis(s: Session, principal: Principal, demande: Demande, data: dict, *,
                   record_id: int | None = None) -> Outcome:
    """A fiche read again whose document already has a request: each reserved part filled
    on paper for the step the request is at adds its avis (never a second request)."""
    outcome = Outcome(demande, added_to_existing=True)
    if record_id is not None:
        demande.record_id = record_id
    for step in machine().steps_from(demande.etat):
        if SYSTEM_ROLE in step.roles or not (step.comment_field or step.choice_field):
            continue
        choice = get_path(data, step.choice_field) if step.choice_field else None
        text = (get_path(data, step.comment_field) or "") if step.comment_field else ""
        if not choice and not str(text).strip():
            continue
        if isinstance(choice, list):
            choice = choice[0] if choice else None
        choix = choice if choice in step.choices else _choice_from_text(step, str(text))
        limit = comment_limit(step)
        commentaire = str(text).strip()[:limit] if limit else str(text).strip()
        read = {f.path: get_path(data, f.path) for f in section_fields(step)}
        more = _avis(s, demande, step, choix, commentaire, actor=principal.actor,
                     user_id=principal.user_id, source="papier",
                     fields=_checked_fields(step, read, strict=False))
        outcome.mails += more.mails
        break
    record_event(principal, "demande.fiche_relue", form_id=FORM_ID,
                 document_id=demande.document_id, object_type="demande", object_id=demande.id,
                 session=s, record_id=record_id, avis_ajoute=bool(outcome.mails))
    return outcome


def _choice_from_text(step: Step, text: str) -> str:
    """The correspondant's paper part has only a text: read its choice from the words
    (« défavorable », « à compléter »), favorable otherwise."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    if re.search(r"\bdefavorable\b", plain) and "defavorable" in step.choices:
        return "defavorable"
    if re.search(r"\b(a completer|incomplet)", plain) and "a_completer" in step.choices:
        return "a_completer"
    return "favorable" if "favorable" in step.choices else next(iter(step.choices))


def _mail_referent(s: Session, demande: Demande, kind: str, *, problems=None,
                   step: Step | None = None, choix: str | None = None) -> Mail:
    user = routing.referent(s, demande)
    to = (user.email,) if user is not None else ()
    link = f"/mes-demandes/{demande.id}"
    state = machine().states[demande.etat]
    if kind == "a_corriger":
        lines = "\n".join(f"- {p['message']}" for p in (problems or []))
        return Mail(to=to, about=f"demande:{demande.id}", kind="a_corriger", link=link,
                    subject=f"Fiche de liaison n° {demande.id} à corriger",
                    body=(f"Bonjour,\n\nLa fiche de liaison n° {demande.id} vous revient pour "
                          f"correction :\n{lines}\n\nCorrigez-la puis renvoyez-la."))
    label = step.choices[choix] if step and choix else ""
    return Mail(to=to, about=f"demande:{demande.id}", kind="avis", link=link,
                subject=f"Fiche de liaison n° {demande.id} : {step.label.lower()}",
                body=(f"Bonjour,\n\n{step.label} sur la fiche de liaison n° {demande.id} : "
                      f"{label}.\nLa demande est maintenant : {state}."))


__all__ = ["Outcome", "submit", "submit_record", "correct", "record_avis", "record_system_avis",
           "add_paper_avis", "comment_limit", "section_fields", "request_of_document", "AFTER_STEP",
           "FORM_ID"]

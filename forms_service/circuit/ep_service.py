"""The équipe pluridisciplinaire's agenda: its sessions, the requests scheduled in each, the
EP's avis recorded per request (issue 13).

    sess = create_session(s, principal, territoire="arrageois", date_seance=..., lieu="MDS Arras")
    waiting(s, principal)                     # en_ep requests on no open agenda, oldest deadline first
    schedule(s, principal, sess.id, [12, 14]) # onto its agenda (a request on one open agenda at most)
    outcome = record_ep_avis(s, principal, sess.id, 12, "favorable", "…")   # circuit.service.record_avis
    close_session(s, principal, sess.id)      # held: the requests left without avis wait again

Réorientation and suspension requests the correspondant favoured are at state ``en_ep``
(``states.yaml``). Everything here works in the caller's session (one transaction), reads
through the access policy (``access.get_ep_session`` / ``get_request``: what one may not
see is 404), and writes an audit event (ids and codes only). The avis is the circuit's own
(step ``ep``: the same avis row and reserved fields of the fiche as on paper).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from forms_service import access
from forms_service.audit import record_event
from forms_service.circuit import service
from forms_service.circuit.ep_models import OPEN_STATUS, EpPassage, EpSession
from forms_service.circuit.models import Demande
from forms_service.errors import BadRequest, Conflict, Forbidden
from forms_service.principal import Principal

STEP = "ep"
STATE = "en_ep"
ROLES = ("secretariat_ep", "administrateur")
LIEU_MAX = 200


def check_role(p: Principal) -> None:
    if not (p.is_admin or p.has_role(*ROLES)):
        raise Forbidden("Cette action est réservée au secrétariat de l'équipe pluridisciplinaire")


# --------------------------------------------------------------------------- sessions

def create_session(s: Session, p: Principal, *, territoire: str | None, date_seance: dt.datetime,
                   lieu: str) -> EpSession:
    """A new session of the territory's EP (the caller's territory; an administrator names
    it). Its date is today or later (the service's clock)."""
    from forms_service import clock
    from forms_service.directory.models import Territory

    check_role(p)
    territoire = p.territoire if (p.territoire and not p.is_admin) else territoire
    if not territoire or s.get(Territory, territoire) is None:
        raise BadRequest("Territoire inconnu", path="territoire", rule="territoire_inconnu")
    lieu = (lieu or "").strip()
    if not lieu:
        raise BadRequest("Indiquez le lieu de la séance", path="lieu", rule="obligatoire")
    if len(lieu) > LIEU_MAX:
        raise BadRequest(f"Lieu trop long : {LIEU_MAX} caractères au plus", path="lieu",
                         rule="trop_long")
    if date_seance.tzinfo is None:
        date_seance = date_seance.replace(tzinfo=dt.timezone.utc)
    if date_seance.date() < clock.current().today():
        raise BadRequest("La date de la séance est passée", path="date_seance", rule="date_passee")
    row = EpSession(territoire=territoire, date_seance=date_seance, lieu=lieu,
                    statut=OPEN_STATUS, ouverte=True, created_by=p.actor)
    s.add(row)
    s.flush()
    record_event(p, "ep.seance_creee", object_type="ep_session", object_id=row.id, session=s,
                 territoire=territoire)
    return row


def sessions(s: Session, p: Principal, *, territoire: str | None = None) -> list[EpSession]:
    """The sessions ``p`` may see, the open ones first, then by date."""
    stmt = select(EpSession).where(access.ep_session_condition(p))
    if territoire:
        stmt = stmt.where(EpSession.territoire == territoire)
    return list(s.scalars(stmt.order_by(EpSession.ouverte.desc(), EpSession.date_seance,
                                        EpSession.id)))


def _open_session(s: Session, p: Principal, session_id: int) -> EpSession:
    row = access.get_ep_session(p, session_id, session=s)
    if not row.ouverte:
        raise Conflict(f"La séance est {row.statut_libelle.lower()} : son ordre du jour ne change plus",
                       path="seance", rule="seance_fermee")
    return row


def close_session(s: Session, p: Principal, session_id: int, *, statut: str = "tenue") -> EpSession:
    """The session was held (``tenue``) or is cancelled (``annulee``): its agenda closes; the
    requests left without the EP's avis wait again (« reportées ») for another session."""
    check_role(p)
    if statut not in ("tenue", "annulee"):
        raise BadRequest("Statut impossible", path="statut", rule="statut_invalide")
    row = _open_session(s, p, session_id)
    row.statut, row.ouverte = statut, False
    s.flush()
    s.expire(row, ["passages"])          # the passages' copy moved with it (ON UPDATE CASCADE)
    record_event(p, "ep.seance_" + ("tenue" if statut == "tenue" else "annulee"),
                 object_type="ep_session", object_id=row.id, session=s,
                 reportees=sum(1 for x in row.passages if x.avis_id is None))
    return row


# --------------------------------------------------------------------------- the agenda

def _no_open_passage():
    return ~exists().where(EpPassage.demande_id == Demande.id, EpPassage.session_ouverte.is_(True))


def waiting(s: Session, p: Principal, *, territoire: str | None = None) -> list[Demande]:
    """The requests at ``en_ep`` ``p`` may see that no open session has on its agenda,
    the nearest deadline first."""
    stmt = access.visible_requests(p).where(Demande.etat == STATE, _no_open_passage())
    if territoire:
        stmt = stmt.where(Demande.territoire == territoire)
    return list(s.scalars(stmt.order_by(Demande.echeance.is_(None), Demande.echeance, Demande.id)))


def open_passage(s: Session, demande_id: int) -> EpPassage | None:
    return s.scalars(select(EpPassage).where(EpPassage.demande_id == demande_id,
                                             EpPassage.session_ouverte.is_(True))).first()


def schedule(s: Session, p: Principal, session_id: int, demande_ids) -> list[EpPassage]:
    """Put requests onto an open session's agenda (after those already there). Each must be
    at ``en_ep``, of the session's territory, and on no other open agenda (409 otherwise;
    the database refuses a second open passage whatever the code path)."""
    check_role(p)
    row = _open_session(s, p, session_id)
    ids = list(dict.fromkeys(int(i) for i in demande_ids))
    if not ids:
        raise BadRequest("Choisissez au moins une demande", path="demandes", rule="obligatoire")
    position = (s.scalar(select(func.max(EpPassage.position))
                         .where(EpPassage.session_id == row.id)) or 0)
    made = []
    for demande_id in ids:
        d = access.get_request(p, demande_id, session=s)
        if d.etat != STATE:
            raise Conflict(f"La demande n° {d.id} n'attend pas l'avis de l'équipe pluridisciplinaire",
                           path="demandes", rule="etat_incompatible")
        if d.territoire != row.territoire:
            raise Conflict(f"La demande n° {d.id} relève d'un autre territoire", path="demandes",
                           rule="territoire_incompatible")
        other = open_passage(s, d.id)
        if other is not None:
            raise Conflict(f"La demande n° {d.id} est déjà à l'ordre du jour de la séance "
                           f"n° {other.session_id}", path="demandes", rule="deja_inscrite")
        position += 1
        passage = EpPassage(session_id=row.id, session_ouverte=True, demande_id=d.id,
                            position=position, added_by=p.actor)
        s.add(passage)
        try:
            with s.begin_nested():
                s.flush()
        except IntegrityError:
            raise Conflict(f"La demande n° {d.id} est déjà à l'ordre du jour d'une séance ouverte",
                           path="demandes", rule="deja_inscrite") from None
        made.append(passage)
        record_event(p, "ep.demande_inscrite", object_type="demande", object_id=d.id, session=s,
                     seance=row.id)
    s.expire(row, ["passages"])
    return made


def unschedule(s: Session, p: Principal, session_id: int, demande_id: int) -> None:
    """Take a request off an open session's agenda (before its avis)."""
    check_role(p)
    row = _open_session(s, p, session_id)
    passage = next((x for x in row.passages if x.demande_id == demande_id), None)
    if passage is None:
        raise Conflict("Cette demande n'est pas à l'ordre du jour de la séance", path="demande",
                       rule="non_inscrite")
    if passage.avis_id is not None:
        raise Conflict("L'avis de l'équipe est déjà enregistré pour cette demande",
                       path="demande", rule="avis_enregistre")
    s.delete(passage)
    s.flush()
    s.expire(row, ["passages"])
    record_event(p, "ep.demande_retiree", object_type="demande", object_id=demande_id, session=s,
                 seance=row.id)


def record_ep_avis(s: Session, p: Principal, session_id: int, demande_id: int, choix: str,
                   commentaire: str = "", *, source: str = "web") -> service.Outcome:
    """The EP's avis on a request of an open session's agenda: through the circuit's
    ``record_avis`` (step ``ep``: favorable / défavorable, the avis motivé within the printed
    field's ``max_length``), linked to its passage for the minutes (``_link_passage``)."""
    row = _open_session(s, p, session_id)
    passage = next((x for x in row.passages if x.demande_id == demande_id), None)
    if passage is None:
        raise Conflict("Cette demande n'est pas à l'ordre du jour de la séance", path="demande",
                       rule="non_inscrite")
    return service.record_avis(s, p, demande_id, STEP, choix, commentaire, source=source)


def _link_passage(s: Session, demande: Demande, avis) -> None:
    """Any avis of step ``ep`` (web, API, paper, « réputé rendu ») goes to the request's
    passage on an open agenda, if it has one: the minutes and the counts show it."""
    if avis.etape != STEP:
        return
    passage = open_passage(s, demande.id)
    if passage is not None:
        passage.avis_id = avis.id
        s.flush()


if _link_passage not in service.on_avis:
    service.on_avis.append(_link_passage)


def ep_avis_of(d: Demande):
    """The request's last avis of step ``ep`` (the EP's, or « réputé rendu »), if any."""
    return next((a for a in reversed(d.avis) if a.etape == STEP), None)


__all__ = ["create_session", "sessions", "close_session", "waiting", "schedule", "unschedule",
           "record_ep_avis", "open_passage", "ep_avis_of", "check_role"]

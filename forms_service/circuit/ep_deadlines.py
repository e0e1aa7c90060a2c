"""The EP's one-month deadline (CASF R262-71: an opinion not given in time is deemed given).

The month runs from the referral: the day the request entered ``en_ep`` (its avis row of
the correspondant's step). The circuit writes the due day on the request when it enters the
state (``Demande.echeance``: ``states.yaml`` ``delay_months: 1``, counted by
``rules.cer.add_months``, the one month rule of the service).

    deadlines(s, principal, today)     # every en_ep request: its deadline and where it stands
    deem_given(settings)               # past the month: « réputé rendu », on to the decision

Where a deadline stands on ``today`` (the service's clock, ``forms_service.clock``):
``en_retard`` (the day after the deadline or later: deemed given at the next run),
``proche`` (within ``DUE_SOON_DAYS`` days), ``a_venir``.

:func:`deem_given` runs on the task queue (a periodic job of the desk's queue, once a minute
whatever the number of workers) and as ``forms-service ep echeances``. For each request still
at ``en_ep`` past its deadline it records the step ``ep`` with the choice ``repute_rendu``
(``states.yaml`` ``system_choices``) by the service: the same avis row, reserved fields and
e-mail to the référent as an avis given, and the request moves on to ``decision``. The rows
are locked while taken (PostgreSQL ``FOR UPDATE SKIP LOCKED``): two runs never both take one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from forms_service import access
from forms_service.circuit import ep_service, mailing, service
from forms_service.circuit.machine import machine
from forms_service.circuit.models import Demande
from forms_service.logging_setup import get_logger
from forms_service.principal import Principal
from forms_service.rules.cer import add_months

log = get_logger(__name__)

DUE_SOON_DAYS = 7
STATUS_LABELS = {"en_retard": "Délai dépassé", "proche": "À rendre sous 7 jours",
                 "a_venir": "Dans les délais"}


@dataclass(frozen=True)
class EpDeadline:
    demande_id: int
    referral: dt.date | None
    deadline: dt.date
    status: str

    @property
    def label(self) -> str:
        return STATUS_LABELS[self.status]


def referral_date(d: Demande) -> dt.date | None:
    """The day the request entered ``en_ep`` (its last avis row leading there)."""
    entered = [a for a in d.avis if a.etat_apres == ep_service.STATE]
    return entered[-1].at.date() if entered else None


def deadline_of(d: Demande) -> dt.date:
    if d.echeance is not None:
        return d.echeance
    months = machine().step(ep_service.STEP).delay_months or 1
    return add_months(referral_date(d) or d.updated_at.date(), months)


def status_on(deadline: dt.date, today: dt.date) -> str:
    if today > deadline:
        return "en_retard"
    if (deadline - today).days <= DUE_SOON_DAYS:
        return "proche"
    return "a_venir"


def deadline(d: Demande, today: dt.date) -> EpDeadline:
    due = deadline_of(d)
    return EpDeadline(d.id, referral_date(d), due, status_on(due, today))


def deadlines(s: Session, p: Principal, today: dt.date) -> list[EpDeadline]:
    """Every request at ``en_ep`` ``p`` may see, the nearest deadline first."""
    rows = s.scalars(access.visible_requests(p).where(Demande.etat == ep_service.STATE))
    return sorted((deadline(d, today) for d in rows), key=lambda e: (e.deadline, e.demande_id))


def _overdue(s: Session, today: dt.date) -> list[Demande]:
    stmt = (select(Demande).where(Demande.etat == ep_service.STATE, Demande.echeance < today)
            .order_by(Demande.id))
    if s.bind is not None and s.bind.dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True, of=Demande)
    return list(s.scalars(stmt))


def deem_given_in(s: Session, today: dt.date) -> tuple[list[int], list]:
    """In the caller's transaction: « réputé rendu » for every request past its month.
    Returns the request ids and the e-mails to send once it commits."""
    ids, mails = [], []
    step = machine().step(ep_service.STEP)
    choix = next(iter(step.system_choices))
    for d in _overdue(s, today):
        outcome = service.record_system_avis(s, d, ep_service.STEP, choix,
                                             commentaire=_comment(step, choix))
        ids.append(d.id)
        mails += outcome.mails
        log.info("ep_avis_repute_rendu", demande_id=d.id)
    s.flush()
    return ids, mails


def _comment(step, choix: str) -> str:
    text = step.choices[choix]
    limit = service.comment_limit(step)
    return text[:limit] if limit else text


def deem_given(settings, today: dt.date | None = None) -> list[int]:
    """One run (the queue's periodic job, the CLI): commit, then send the e-mails."""
    from forms_service import clock, db

    today = today or clock.from_settings(settings).today()
    with db.session(settings) as s:
        ids, mails = deem_given_in(s, today)
        mailing.stage(s, settings, mails)
    log.info("ep_echeances", today=today.isoformat(), reputes_rendus=len(ids))
    return ids


def _periodic(queue) -> None:
    deem_given(queue.settings)


def register() -> None:
    """Onto the desk queue's periodic jobs (a worker imports this module)."""
    from forms_service.desk import queue as desk_queue

    desk_queue.periodic(_periodic)


register()

__all__ = ["EpDeadline", "deadline", "deadlines", "deadline_of", "referral_date", "status_on",
           "deem_given", "deem_given_in", "DUE_SOON_DAYS"]

"""The référents' daily e-mail of échéances (issue 14), on the task queue.

    mails = build_digests(settings, today)     # one Mail per référent with something due
    send_digests(settings, today)              # built, then sent (the circuit's outbox)

The queue (``desk/queue.py``) runs :func:`send_digests` once a day (its ``DAILY_HOUR``,
6 h UTC, once however many consumers run: :func:`register`). A référent switches it off on the home page
(``preferences.DigestPreference``; on by default). The message holds no name: the échéances'
wording, the person's number (``bénéficiaire n° 12``) and a link to the home page, where the
référent sees the rest.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from forms_service.logging_setup import get_logger
from forms_service.preferences import wants_digest

log = get_logger(__name__)

def build_digests(settings, today: dt.date) -> list:
    from forms_service import db, echeances
    from forms_service.accounts import authn
    from forms_service.accounts.models import User, UserRole
    from forms_service.circuit.notify import Mail
    from forms_service.rules.programme import Programme

    params = Programme.from_settings(settings).params()
    mails = []
    with db.session(settings) as s:
        referents = s.scalars(select(User).join(UserRole).where(
            UserRole.role == "referent", User.active.is_(True)).order_by(User.id)).unique()
        for user in referents:
            if not wants_digest(s, user.id):
                continue
            p = authn.principal_for_user(user)
            items = echeances.for_referent(s, p, today=today, params=params)
            if not items:
                continue
            lines = [f"- {e.date.strftime('%d/%m/%Y')} : bénéficiaire n° {e.beneficiary_id} — {e.message}"
                     for e, _name in items]
            body = (f"Bonjour,\n\nVos prochaines échéances ({len(items)}) :\n\n" + "\n".join(lines) +
                    "\n\nPour ne plus recevoir ce message : page d'accueil, « Recevoir chaque matin "
                    "mes échéances par e-mail ».")
            mails.append(Mail(to=(user.email,), subject=f"Vos échéances du {today.strftime('%d/%m/%Y')}",
                              body=body, about=f"echeances:user:{user.id}", link="/", kind="echeances"))
    return mails


def send_digests(settings, today: dt.date | None = None) -> int:
    """Builds the day's digests and writes them in the outbox in one transaction (sent
    once it commits: ``circuit.mailing``); returns how many."""
    from forms_service import db
    from forms_service.circuit import mailing

    mails = build_digests(settings, today or dt.date.today())
    with db.session(settings) as s:
        mailing.stage(s, settings, mails)
    log.info("echeances_envoyees", count=len(mails))
    return len(mails)


def _daily(queue) -> None:
    send_digests(queue.settings)


def register() -> None:
    """Onto the desk queue's daily jobs (``circuit.hooks.install`` calls it)."""
    from forms_service.desk import queue as desk_queue

    desk_queue.daily(_daily)

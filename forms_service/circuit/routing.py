"""Who receives a request: the correspondant(s) of its beneficiary's territory (the
directory's territory code; accounts holding the ``correspondant`` role there), and, for
what comes back, its référent (the beneficiary's, else the account that sent it)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from forms_service.accounts.models import User, UserRole
from forms_service.circuit.models import Demande


def correspondants(s: Session, demande: Demande) -> list[User]:
    """The active accounts with the ``correspondant`` role on the request's territory."""
    stmt = (select(User).join(UserRole, UserRole.user_id == User.id)
            .where(UserRole.role == "correspondant", User.active.is_(True),
                   User.territoire == demande.territoire)
            .order_by(User.id))
    return list(s.scalars(stmt))


def correspondant_addresses(s: Session, demande: Demande) -> tuple[str, ...]:
    """Whom to tell of a request routed to its territory: the correspondants' accounts, and
    the correspondant addresses the directory lists for the territory (without an account
    yet, they are told to ask for one to open the inbox)."""
    from forms_service.directory.models import Territory

    emails = [u.email for u in correspondants(s, demande)]
    territory = s.get(Territory, demande.territoire)
    if territory is not None:
        emails += [e.strip().lower() for e in (territory.contacts or {}).get("correspondant", [])
                   if isinstance(e, str) and e.strip()]
    return tuple(dict.fromkeys(emails))


def referent(s: Session, demande: Demande) -> User | None:
    if demande.referent_id is None:
        return None
    user = s.get(User, demande.referent_id)
    return user if user is not None and user.active else None


__all__ = ["correspondants", "correspondant_addresses", "referent"]

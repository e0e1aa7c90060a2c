"""Managing accounts: create or update, list, disable, password resets.

Used by the CLI (``forms-service user ...``) and the administration page alike;
each function takes an open session (``with db.session() as s``).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime, timedelta, timezone

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from forms_service.accounts.models import ApiKey, PasswordReset, User, normalize_email
from forms_service.accounts.passwords import hash_password
from forms_service.errors import BadRequest, Conflict, NotFound
from forms_service.principal import ROLES

#: Roles that belong to one territory: their accounts need a territory code.
TERRITORY_ROLES = ("agent_slai", "correspondant", "secretariat_ep", "decideur")
RESET_LIFETIME = timedelta(hours=48)
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def get_user(s: Session, email: str) -> User | None:
    return s.scalar(select(User).where(User.email == normalize_email(email)))


def require_user(s: Session, email: str) -> User:
    user = get_user(s, email)
    if user is None:
        raise NotFound("Aucun compte pour cette adresse e-mail", path="email")
    return user


def save_user(s: Session, email: str, roles: list[str] | tuple[str, ...], *,
              password: str | None = None, display_name: str | None = None,
              territoire: str | None = None, organisme: str | None = None,
              update: bool = False) -> User:
    """Create an account, or with ``update=True`` change an existing one (its roles
    are replaced by ``roles``; the other fields change only when given)."""
    email = normalize_email(email)
    if not EMAIL_RE.match(email):
        raise BadRequest("Adresse e-mail invalide", path="email")
    roles = list(dict.fromkeys(roles))
    unknown = [r for r in roles if r not in ROLES]
    if unknown or not roles:
        raise BadRequest(f"Rôle inconnu ou absent : {', '.join(unknown) or '(aucun)'} "
                         f"(possibles : {', '.join(ROLES)})", path="role", rule="role_inconnu")
    user = get_user(s, email)
    if user is not None and not update:
        raise Conflict("Un compte existe déjà pour cette adresse e-mail (--update pour le modifier)",
                       path="email")
    if user is None:
        user = User(email=email, display_name="", active=True)
        s.add(user)
    if display_name is not None:
        user.display_name = display_name.strip()[:128]
    if territoire is not None:
        user.territoire = territoire.strip() or None
    if organisme is not None:
        user.organisme = organisme.strip() or None
    bound = [r for r in roles if r in TERRITORY_ROLES]
    if bound and not user.territoire:
        raise BadRequest(f"Le rôle {bound[0]} demande un territoire (--territoire)",
                         path="territoire", rule="territoire_requis")
    user.set_roles(roles)
    if password is not None:
        user.password_hash = hash_password(password)
    s.flush()
    return user


def disable_user(s: Session, email: str) -> User:
    user = require_user(s, email)
    user.active = False
    return user


def list_users(s: Session) -> list[User]:
    return list(s.scalars(select(User).order_by(User.email)))


def user_summary(user: User) -> dict:
    return {"id": user.id, "email": user.email, "display_name": user.display_name,
            "roles": sorted(user.roles), "territoire": user.territoire,
            "organisme": user.organisme, "active": user.active,
            "created_at": user.created_at.isoformat() if user.created_at else None,
            "last_login": user.last_login.isoformat() if user.last_login else None}


def any_account(s: Session) -> bool:
    """True once the service has a user or an API key (it is then closed)."""
    return bool(s.scalar(select(exists().where(User.id.isnot(None)))) or
                s.scalar(select(exists().where(ApiKey.id.isnot(None)))))


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_password_reset(s: Session, user: User) -> str:
    """A one-time token (for ``/reinitialisation/<token>``); earlier unused ones lapse."""
    for old in s.scalars(select(PasswordReset).where(PasswordReset.user_id == user.id,
                                                     PasswordReset.used_at.is_(None))):
        old.used_at = _now()
    token = secrets.token_urlsafe(32)
    s.add(PasswordReset(user=user, token_hash=_token_digest(token), expires_at=_now() + RESET_LIFETIME))
    s.flush()
    return token


def find_reset(s: Session, token: str) -> PasswordReset | None:
    """The live reset for ``token`` (unused, not expired, its account active)."""
    row = s.scalar(select(PasswordReset).where(PasswordReset.token_hash == _token_digest(token or "")))
    if row is None or row.used_at is not None or _aware(row.expires_at) <= _now():
        return None
    return row if row.user.active else None


def complete_password_reset(s: Session, token: str, password: str) -> User:
    row = find_reset(s, token)
    if row is None:
        raise NotFound("Ce lien de réinitialisation n'est pas valable (déjà utilisé ou expiré)",
                       path="token", rule="lien_invalide")
    row.user.password_hash = hash_password(password)
    row.used_at = _now()
    return row.user

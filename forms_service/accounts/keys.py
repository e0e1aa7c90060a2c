"""API keys: ``fs_<prefix>_<secret>``, the secret being 32 random bytes.

Only the sha256 of the whole key is stored; the key is found by its prefix and
compared in constant time (``hmac.compare_digest``). The key itself is shown
once, when it is created.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime, timedelta, timezone

from sqlalchemy import Engine, or_, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from forms_service.accounts.models import ApiKey, User, normalize_email
from forms_service.db import SQLITE_BUSY_TIMEOUT_MS
from forms_service.errors import BadRequest, Conflict, NotFound
from forms_service.principal import SCOPES

KEY_RE = re.compile(r"^fs_([0-9a-f]{8})_([A-Za-z0-9_-]{43})$")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
#: ``last_used`` is written at most this often per key (not on every request).
LAST_USED_RESOLUTION = timedelta(minutes=1)
#: How long noting ``last_used`` may wait for a lock before it is skipped (milliseconds).
TOUCH_LOCK_WAIT_MS = 200


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_scopes(raw: str | list[str]) -> list[str]:
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    scopes = [s.strip() for s in items if s and s.strip()]
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise BadRequest(f"Portées inconnues ou absentes : {', '.join(unknown) or '(aucune)'} "
                         f"(possibles : {', '.join(SCOPES)})", path="scopes", rule="portee_inconnue")
    return list(dict.fromkeys(scopes))


def create_key(s: Session, name: str, scopes: str | list[str], *, user_email: str | None = None,
               territoire: str | None = None) -> tuple[ApiKey, str]:
    """A new key row and the key itself (to show once)."""
    name = (name or "").strip().lower()
    if not NAME_RE.match(name):
        raise BadRequest("Nom de clé invalide : lettres minuscules, chiffres, « . », « _ », « - »",
                         path="name")
    if s.scalar(select(ApiKey.id).where(ApiKey.name == name)) is not None:
        raise Conflict(f"Une clé nommée « {name} » existe déjà", path="name")
    user = None
    if user_email:
        user = s.scalar(select(User).where(User.email == normalize_email(user_email)))
        if user is None:
            raise NotFound("Aucun compte pour cette adresse e-mail", path="user")
    prefix = secrets.token_hex(4)
    while s.scalar(select(ApiKey.id).where(ApiKey.prefix == prefix)) is not None:
        prefix = secrets.token_hex(4)
    key = f"fs_{prefix}_{secrets.token_urlsafe(32)}"
    row = ApiKey(name=name, prefix=prefix, secret_hash=_digest(key), scopes=parse_scopes(scopes),
                 user=user, territoire=territoire or None)
    s.add(row)
    s.flush()
    return row, key


def find_key(s: Session, given: str) -> ApiKey | None:
    """The live key matching ``given`` (not revoked, its user active), else ``None``."""
    match = KEY_RE.match(given or "")
    row = s.scalar(select(ApiKey).where(ApiKey.prefix == match.group(1))) if match else None
    expected = row.secret_hash if row is not None else _digest("absente")
    if not hmac.compare_digest(expected, _digest(given or "")) or row is None:
        return None
    if row.revoked_at is not None or (row.user is not None and not row.user.active):
        return None
    return row


def needs_touch(row: ApiKey, now: datetime) -> bool:
    """Whether ``row.last_used`` is older than :data:`LAST_USED_RESOLUTION`."""
    last = row.last_used
    if last is not None and last.tzinfo is None:
        last = last.replace(tzinfo=timezone.utc)
    return last is None or now - last > LAST_USED_RESOLUTION


def touch(engine: Engine, key_id: int, now: datetime) -> bool:
    """Note that the key was used, in a transaction of its own, best effort.

    The request a key authenticates must neither wait for nor fail on this bookkeeping:
    while another transaction holds the database's write lock (a desk worker storing a
    batch on SQLite) it waits :data:`TOUCH_LOCK_WAIT_MS` at most, then skips; a later
    request notes it. Returns whether it was written.
    """
    cutoff = now - LAST_USED_RESOLUTION
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        try:
            conn.exec_driver_sql(f"PRAGMA busy_timeout={TOUCH_LOCK_WAIT_MS}" if sqlite
                                 else f"SET LOCAL lock_timeout = '{TOUCH_LOCK_WAIT_MS}ms'")
            conn.execute(update(ApiKey).where(ApiKey.id == key_id)
                         .where(or_(ApiKey.last_used.is_(None), ApiKey.last_used < cutoff))
                         .values(last_used=now))
            conn.commit()
            return True
        except OperationalError:
            conn.rollback()
            return False
        finally:
            if sqlite and not conn.invalidated:
                conn.exec_driver_sql(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
                conn.commit()


def revoke_key(s: Session, name: str) -> ApiKey:
    row = s.scalar(select(ApiKey).where(ApiKey.name == (name or "").strip().lower()))
    if row is None:
        raise NotFound(f"Aucune clé nommée « {name} »", path="name")
    if row.revoked_at is None:
        row.revoked_at = datetime.now(timezone.utc)
    return row


def list_keys(s: Session) -> list[ApiKey]:
    return list(s.scalars(select(ApiKey).order_by(ApiKey.name)))


def key_summary(row: ApiKey) -> dict:
    return {"name": row.name, "prefix": row.prefix, "scopes": list(row.scopes),
            "user": row.user.email if row.user else None, "territoire": row.territoire,
            "created_at": row.created_at.isoformat() if row.created_at else None,
            "last_used": row.last_used.isoformat() if row.last_used else None,
            "revoked": row.revoked_at is not None}

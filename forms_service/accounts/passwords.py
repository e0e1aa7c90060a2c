"""Passwords: argon2id hashes (argon2-cffi), verified in constant time.

    h = hash_password("...")
    verify_password(h, "...")     # True / False, never raises on a wrong password
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from forms_service.errors import BadRequest

MIN_LENGTH = 10

_hasher = PasswordHasher()
#: Verified against when the e-mail is unknown, so both cases take the same time.
_DUMMY_HASH = _hasher.hash("pas-un-vrai-mot-de-passe")


def check_strength(password: str) -> None:
    if len(password or "") < MIN_LENGTH:
        raise BadRequest(f"Le mot de passe doit compter au moins {MIN_LENGTH} caractères",
                         path="mot_de_passe", rule="mot_de_passe_trop_court")


def hash_password(password: str) -> str:
    check_strength(password)
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; a missing hash still costs one verification."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password or "") and bool(password_hash)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)

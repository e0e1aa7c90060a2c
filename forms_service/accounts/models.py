"""The service's people, as rows: accounts, their roles, API keys, password resets.

They live on the shared ``forms_service.db.models.Base`` (so Alembic and the
metadata see them); the schema is migration ``0002_accounts``.

- ``User``: one person (e-mail, lower-cased and unique; argon2 password hash;
  the territory or organisme their roles are bound to); ``UserRole`` rows give
  their roles (``principal.ROLES``, several per person).
- ``ApiKey``: a machine caller. Its secret is 32 random bytes, so a sha256 of the
  whole key (looked up by its public ``prefix``, compared in constant time) is
  enough. A key made for a user acts as that user.
- ``PasswordReset``: a one-time link an administrator hands over (token hashed).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (Boolean, CheckConstraint, DateTime, ForeignKey, Integer, String,
                        UniqueConstraint)
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from forms_service.db.models import Base, JSONType, utcnow
from forms_service.principal import ROLES, SCOPES

ROLES_SQL = ", ".join(f"'{r}'" for r in ROLES)


class User(Base):
    __tablename__ = "user_account"
    __table_args__ = (CheckConstraint("email = lower(email)", name="ck_user_account_email_lower"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    display_name: Mapped[str] = mapped_column(String(128), default="")
    #: argon2 hash; ``None`` until the person sets a password (reset link).
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    territoire: Mapped[str | None] = mapped_column(String(64), nullable=True)
    organisme: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_login: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    role_rows: Mapped[list[UserRole]] = relationship(
        back_populates="user", cascade="all, delete-orphan", lazy="selectin",
        order_by="UserRole.role")

    @validates("email")
    def _lower_email(self, _key: str, value: str) -> str:
        return normalize_email(value)

    @property
    def roles(self) -> frozenset[str]:
        return frozenset(r.role for r in self.role_rows)

    def set_roles(self, roles) -> None:
        wanted = list(dict.fromkeys(roles))
        unknown = [r for r in wanted if r not in ROLES]
        if unknown:
            raise ValueError(f"unknown roles: {unknown}")
        self.role_rows[:] = [r for r in self.role_rows if r.role in wanted]
        have = {r.role for r in self.role_rows}
        self.role_rows.extend(UserRole(role=r) for r in wanted if r not in have)


class UserRole(Base):
    __tablename__ = "user_role"
    __table_args__ = (CheckConstraint(f"role IN ({ROLES_SQL})", name="ck_user_role_role"),)

    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("user_account.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(String(32), primary_key=True)

    user: Mapped[User] = relationship(back_populates="role_rows")


class ApiKey(Base):
    __tablename__ = "api_key"
    __table_args__ = (UniqueConstraint("prefix", name="uq_api_key_prefix"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    #: The key's public part (``fs_<prefix>_<secret>``), used to find the row.
    prefix: Mapped[str] = mapped_column(String(16))
    #: sha256 (hex) of the whole key.
    secret_hash: Mapped[str] = mapped_column(String(64))
    #: A list of ``principal.SCOPES``.
    scopes: Mapped[list[str]] = mapped_column(JSONType, default=list)
    user_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("user_account.id", ondelete="CASCADE"), nullable=True, index=True)
    territoire: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    user: Mapped[User | None] = relationship(lazy="joined")

    @validates("scopes")
    def _check_scopes(self, _key: str, value: Any) -> list[str]:
        scopes = list(dict.fromkeys(value or []))
        unknown = [s for s in scopes if s not in SCOPES]
        if unknown:
            raise ValueError(f"unknown scopes: {unknown}")
        return scopes


class PasswordReset(Base):
    __tablename__ = "password_reset"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: sha256 (hex) of the token in the link.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    user: Mapped[User] = relationship(lazy="joined")


def normalize_email(value: str) -> str:
    return (value or "").strip().lower()

"""A person's preferences (issue 14): whether a référent receives the daily e-mail of
échéances (``forms_service.digest``). Tables only: imported by ``db.schema``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer
from sqlalchemy.orm import Mapped, Session, mapped_column

from forms_service.db.models import Base, utcnow


class DigestPreference(Base):
    """Whether a référent receives the daily digest (no row: yes)."""

    __tablename__ = "digest_preference"

    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("user_account.id", ondelete="CASCADE"), primary_key=True)
    actif: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


def wants_digest(s: Session, user_id: int) -> bool:
    row = s.get(DigestPreference, user_id)
    return row is None or row.actif


def set_digest(s: Session, user_id: int, actif: bool) -> None:
    row = s.get(DigestPreference, user_id)
    if row is None:
        s.add(DigestPreference(user_id=user_id, actif=actif))
    else:
        row.actif, row.updated_at = actif, utcnow()

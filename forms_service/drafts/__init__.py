"""Drafts: a form being filled for a beneficiary, saved to come back to (issue 14).

    draft = save_draft(s, author_id=7, beneficiary_id=42, form_id="cerp", data={...})
    draft = save_draft(s, ..., draft_id=draft.id)      # saves over the same draft
    get_draft(s, author_id=7, draft_id=3)              # None when not the author's
    drafts_of(s, author_id=7, beneficiary_id=42)

A draft holds the form's data as posted (checked or not: a draft may be half
filled and even hold values the model refuses). Only its author sees it; the
beneficiary must stay visible to them (the pages check it through ``access.py``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from forms_service.db.models import Base, JSONType, utcnow


class Draft(Base):
    __tablename__ = "draft"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    author_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    beneficiary_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("beneficiary.id", ondelete="CASCADE"), index=True)
    form_id: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


def save_draft(s: Session, *, author_id: int, beneficiary_id: int, form_id: str, data: dict,
               draft_id: int | None = None) -> Draft:
    draft = get_draft(s, author_id=author_id, draft_id=draft_id) if draft_id else None
    if draft is None or draft.beneficiary_id != beneficiary_id or draft.form_id != form_id:
        draft = Draft(author_id=author_id, beneficiary_id=beneficiary_id, form_id=form_id, data=data)
        s.add(draft)
    else:
        draft.data = data
        draft.updated_at = utcnow()
    s.flush()
    return draft


def get_draft(s: Session, *, author_id: int, draft_id: int) -> Draft | None:
    return s.scalars(select(Draft).where(Draft.id == draft_id, Draft.author_id == author_id)).first()


def drafts_of(s: Session, *, author_id: int, beneficiary_id: int) -> list[Draft]:
    return list(s.scalars(select(Draft).where(Draft.author_id == author_id,
                                              Draft.beneficiary_id == beneficiary_id)
                          .order_by(Draft.updated_at.desc())))


def delete_draft(s: Session, *, author_id: int, draft_id: int) -> None:
    draft = get_draft(s, author_id=author_id, draft_id=draft_id)
    if draft is not None:
        s.delete(draft)

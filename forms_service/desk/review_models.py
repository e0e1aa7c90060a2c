"""What agents decided at the review queue (issue 11): one row per item settled.

An item is one thing a person had to look at in a record (``champ:<path>``,
``beneficiaire``, ``doublon``, ``identification``, ``echantillon``) or one page
that was not recognised (``page``). The row says who settled it, when, and whether
the machine's proposal was kept (``confirme``) or changed (``corrige``); the values
themselves are in the record and, as codes or « modifié », in the audit trail.

The sampled records' rows give the observed error rate (``review.error_rate``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from forms_service.db.models import Base, utcnow

OUTCOMES = ("confirme", "corrige")


class ReviewDecision(Base):
    __tablename__ = "review_decision"
    __table_args__ = (
        CheckConstraint("outcome IN ('confirme', 'corrige')", name="ck_review_decision_outcome"),
        CheckConstraint("(record_id IS NULL) <> (batch_page_id IS NULL)",
                        name="ck_review_decision_subject"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    record_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("record.id", ondelete="CASCADE"), nullable=True, index=True)
    batch_page_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("batch_page.id", ondelete="CASCADE"), nullable=True, index=True)
    #: ``champ:<path>``, ``beneficiaire``, ``doublon``, ``identification``, ``echantillon``, ``page``
    item: Mapped[str] = mapped_column(String(255))
    outcome: Mapped[str] = mapped_column(String(16))
    #: The record was in the random sample of automatically accepted ones.
    sampled: Mapped[bool] = mapped_column(Boolean, default=False)
    actor: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

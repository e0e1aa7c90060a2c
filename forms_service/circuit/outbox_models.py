"""The circuit's outgoing e-mails (migration 0016): one ``OutgoingMail`` per message,
written in the transaction that made it (an avis, a routed request, a structure's copy),
so that a message exists exactly when what it tells does (``circuit.mailing``).

- ``payload``: the message as the queue's task sends it (JSON: addressees, subject, body,
  link, attachments in base64). Once sent, the attachments' content is dropped (a
  structure's printed fiche holds personal data): their names stay.
- ``queued_at``: when it was handed to the task queue; never, or long ago without being
  sent (the queue's storage was down, a worker died with the job), the queue's periodic
  sweep hands it over again.
- ``claimed_at``: a delivery in progress (one at a time, whoever else tries);
  ``sent_at``: delivered (the SMTP server took it, or the .eml file is written): never
  sent again.
- ``attempts`` / ``last_error``: the failed deliveries (the error's type, no address).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from forms_service.db.models import Base, utcnow


class OutgoingMail(Base):
    __tablename__ = "outgoing_mail"
    __table_args__ = (
        CheckConstraint("attempts >= 0", name="ck_outgoing_mail_attempts"),
        CheckConstraint("sent_at IS NULL OR claimed_at IS NULL", name="ck_outgoing_mail_sent"),
        Index("ix_outgoing_mail_unsent", "created_at",
              postgresql_where=text("sent_at IS NULL"), sqlite_where=text("sent_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: What it is about, for the log and the audit: ``demande:<id>``.
    about: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    queued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(255), nullable=True)


__all__ = ["OutgoingMail"]

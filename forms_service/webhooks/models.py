"""The webhooks' rows (migration 0010).

- ``WebhookEvent``: one transition of a request to tell other systems; ``body`` is the
  exact JSON sent (ids, codes, states, step, choice, timestamps: no personal data), made
  once in the transaction that changed the state, so every attempt and replay sends the
  same bytes.
  ``queued_at``: when it was handed to the task queue (the sweep queues again an event
  that never was: ``forms_service.webhooks.sweep``).
- ``WebhookDelivery``: the delivery log, one row per HTTP attempt: which delivery (the
  first sending, or a replay: its own ``delivery`` id), its attempt number, the status
  code or the error, when it started and ended, and who asked for a replay.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (CheckConstraint, DateTime, ForeignKey, Index, Integer, String, Text,
                        UniqueConstraint, text)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from forms_service.db.models import Base, utcnow


class WebhookEvent(Base):
    __tablename__ = "webhook_event"
    __table_args__ = (Index("ix_webhook_event_unqueued", "created_at",
                            postgresql_where=text("queued_at IS NULL"),
                            sqlite_where=text("queued_at IS NULL")),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: The request it is about (kept when the request is deleted: the log outlives it).
    demande_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("demande.id", ondelete="SET NULL"), nullable=True, index=True)
    #: ``demande.transition``
    event: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    #: When it was handed to the task queue (migration 0014); never: the sweep queues it.
    queued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    deliveries: Mapped[list[WebhookDelivery]] = relationship(
        back_populates="webhook_event", order_by="WebhookDelivery.id", lazy="selectin",
        cascade="all, delete-orphan")


class WebhookDelivery(Base):
    __tablename__ = "webhook_delivery"
    __table_args__ = (
        UniqueConstraint("delivery", "attempt", name="uq_webhook_delivery_attempt"),
        CheckConstraint("attempt >= 1", name="ck_webhook_delivery_attempt"),
        CheckConstraint("status_code IS NULL OR (status_code >= 100 AND status_code <= 599)",
                        name="ck_webhook_delivery_status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("webhook_event.id", ondelete="CASCADE"), index=True)
    #: One id per delivery (the first sending, each replay); its attempts share it.
    delivery: Mapped[str] = mapped_column(String(36), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    #: ``None`` until answered (or when no answer came: see ``error``).
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: Why it failed, without the body: ``HTTP 500``, ``ConnectionRefusedError``…
    error: Mapped[str | None] = mapped_column(String(255), nullable=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: Who asked for this delivery: ``systeme`` (the transition), or the replaying actor.
    requested_by: Mapped[str] = mapped_column(String(128), default="systeme")

    webhook_event: Mapped[WebhookEvent] = relationship(back_populates="deliveries")

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


__all__ = ["WebhookEvent", "WebhookDelivery"]

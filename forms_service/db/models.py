"""Database models (SQLAlchemy 2, typed). The schema itself is owned by the Alembic
migrations in ``forms_service/migrations``: change a model, then add a revision
(``forms-service db revision -m "..." --autogenerate``) and read it before committing.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (JSON, Boolean, CheckConstraint, DateTime, ForeignKey, Index, Integer, String,
                        Text, UniqueConstraint, false)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: JSON everywhere, JSONB on PostgreSQL.
JSONType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
DOCUMENT_ID_LENGTH = 26


def new_document_id() -> str:
    """A ULID: 26 characters (Crockford base 32), 48-bit millisecond time then 80
    random bits. Sorts by creation time, short enough for a QR code, unguessable."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


class Base(DeclarativeBase):
    pass


class TemplateVersion(Base):
    """One version of a form's DOCX template, and the field layout it produced."""

    __tablename__ = "template_version"

    form_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: 12 hex characters identifying the template content.
    version: Mapped[str] = mapped_column(String(12), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    layout: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    #: sha256 of the template file.
    template_sha: Mapped[str] = mapped_column(String(64))


class IssuedDocument(Base):
    """A document the service rendered: what, from which template, for whom (by id)."""

    __tablename__ = "issued_document"

    document_id: Mapped[str] = mapped_column(String(DOCUMENT_ID_LENGTH), primary_key=True, default=new_document_id)
    form_id: Mapped[str] = mapped_column(String(64), index=True)
    template_version: Mapped[str] = mapped_column(String(12))
    data: Mapped[dict[str, Any]] = mapped_column(JSONType)
    file_path: Mapped[str] = mapped_column(Text)
    layout: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    #: "docx" or "pdf"
    format: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128))
    #: The beneficiary the document concerns, when the caller named one (access policy).
    beneficiary_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("beneficiary.id", ondelete="SET NULL"), nullable=True, index=True)


class Record(Base):
    """Data read back from a filled or scanned form, or entered at the SLAI desk."""

    __tablename__ = "record"
    __table_args__ = (
        Index("ix_record_form_status", "form_id", "status"),
        Index("ix_record_territoire_review", "territoire", "review"),
        # a batch's records by state from the index alone (its progress, polled: 0015)
        Index("ix_record_batch_state", "batch_id", "id", "status", "review"),
        UniqueConstraint("file_id", "ordinal", name="uq_record_file_ordinal"),
        CheckConstraint("status IN ('valid', 'invalid', 'needs_review')", name="ck_record_status"),
        CheckConstraint("review IN ('none', 'pending', 'done')", name="ck_record_review"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    form_id: Mapped[str] = mapped_column(String(64))
    document_id: Mapped[str | None] = mapped_column(
        String(DOCUMENT_ID_LENGTH), ForeignKey("issued_document.document_id"), nullable=True, index=True)
    status: Mapped[str] = mapped_column(String(32))
    record: Mapped[dict[str, Any]] = mapped_column(JSONType)
    #: e.g. "docx", "pdf-acroform", "scan", "saisie"
    source: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    correspondant: Mapped[str | None] = mapped_column(String(128), nullable=True)
    #: The beneficiary the record concerns (else its issued document's), for the access policy.
    #: None: « bénéficiaire à identifier » (an agent picks it at the desk).
    beneficiary_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("beneficiary.id", ondelete="SET NULL"), nullable=True, index=True)

    # -- where it was read (issue 11: every record read is kept, with its source file)
    batch_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("batch.id", ondelete="SET NULL"), nullable=True, index=True)
    #: The received file it was read from (its first page's file).
    file_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("batch_file.id", ondelete="SET NULL"), nullable=True)
    #: Its place among the records read from that file: (file_id, ordinal) is unique, so a
    #: file read twice (a worker killed after writing) can never store its records twice.
    ordinal: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: Its beneficiary's territory, else its batch's (the desk's queues are per territory).
    territoire: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("territory.code"), nullable=True, index=True)
    #: none | pending (waits at the desk) | done (an agent confirmed or corrected it)
    review: Mapped[str] = mapped_column(String(16), default="none", server_default="none")
    #: Sampled for review although accepted automatically (REVIEW_SAMPLE_RATE).
    sampled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: A photocopy of one printed form: the first record of the same issued document in the
    #: same file (every copy is a record of its own).
    copy_of_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("record.id", ondelete="SET NULL"), nullable=True)
    #: A rescan whose readings all match an earlier record of the same document: shown to an
    #: agent to confirm, never dropped.
    probable_duplicate_of_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("record.id", ondelete="SET NULL"), nullable=True)
    #: sha256 of the values read (document id, form and every field's value), to find rescans.
    readings_sha: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    #: A review lease (two agents never review one record at once).
    review_lease_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    review_lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    reviewed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)


class AuditEvent(Base):
    """Who did what to which form/document. ``detail`` never holds personal data."""

    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    form_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    document_id: Mapped[str | None] = mapped_column(String(DOCUMENT_ID_LENGTH), nullable=True, index=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    #: What the event is about, by id, when not a document: ``beneficiaire``, ``enregistrement``,
    #: ``annuaire``... No foreign key: the event outlives its object.
    object_type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    object_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class IdempotencyKey(Base):
    """An ``Idempotency-Key`` a caller sent with a render: the request it named (hash)
    and the documents it issued, so that a retry returns them instead of new ones.
    Written in the same transaction as those documents."""

    __tablename__ = "idempotency_key"

    actor: Mapped[str] = mapped_column(String(128), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    #: sha256 (hex) of the request: form, format, options and data.
    request_hash: Mapped[str] = mapped_column(String(64))
    #: {"form_id", "format", "documents": [{"document_id", "filename", "findings"}]}
    response: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

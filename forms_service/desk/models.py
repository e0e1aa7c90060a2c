"""The SLAI desk's tables (issue 11): batches of received files, their pages, and what a
record keeps of where it was read (pages, crops).

- :class:`Batch`: files received together (desk page, API, command line, watched folder,
  ``POST /parse``), for one territory; read in the background by the queue's workers.
- :class:`BatchFile`: one received file, stored first, content-addressed
  (``<storage>/desk/<sha256[:2]>/<sha256>``); ``duplicate_of`` names the earlier copy of
  the same bytes (then it is not read again: no second record).
- :class:`BatchPage`: every page of every file, accounted for: ``pending`` until read, then
  ``record`` (in ``record_id``), ``blank``, ``unknown``, ``duplicate`` or ``error``.
- :class:`RecordPage`, :class:`RecordCrop`: a stored record's pages and review crops.

The record itself is :class:`forms_service.db.models.Record` (extended by migration 0005:
batch, source file, territory, review state, copies and probable duplicates).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (CheckConstraint, DateTime, ForeignKey, Index, Integer, String, Text,
                        UniqueConstraint)
from sqlalchemy.orm import Mapped, mapped_column

from forms_service.db.models import JSONType, Base, utcnow

BATCH_STATUSES = ("queued", "running", "done")
FILE_STATUSES = ("pending", "read", "duplicate", "error")
PAGE_STATUSES = ("pending", "record", "blank", "unknown", "duplicate", "error")
BATCH_SOURCES = ("desk", "api", "cli", "folder", "parse")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Batch(Base):
    """Files received together, for one territory."""

    __tablename__ = "batch"
    __table_args__ = (CheckConstraint(_in("status", BATCH_STATUSES), name="ck_batch_status"),
                      CheckConstraint(_in("source", BATCH_SOURCES), name="ck_batch_source"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    #: desk | api | cli | folder | parse
    source: Mapped[str] = mapped_column(String(16))
    #: The territory the batch was received for (a record without beneficiary belongs to it).
    territoire: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("territory.code"), nullable=True, index=True)
    #: The audit actor who submitted it (``user:<id>``, ``key:<name>``, ``dossier:<T>``...).
    created_by: Mapped[str] = mapped_column(String(128))
    #: The submitter's user id, when a person (the desk lists "my batches").
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    pages_total: Mapped[int] = mapped_column(Integer, default=0)
    #: When its last file was received. A batch received over HTTP is stored and queued
    #: file by file during its upload (``desk/receiving.py``: None until the upload ends);
    #: it is not ``done`` before (migration 0017).
    received_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: The submitter as the access policy sees them, taken on receipt (:func:`submitter_of`):
    #: a worker looks for an earlier identical page only among the batches they may see.
    submitter: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)


class BatchFile(Base):
    """One received file: stored before any reading, by its SHA-256."""

    __tablename__ = "batch_file"
    __table_args__ = (UniqueConstraint("batch_id", "position", name="uq_batch_file_position"),
                      CheckConstraint(_in("status", FILE_STATUSES), name="ck_batch_file_status"),
                      Index("ix_batch_file_sha256", "sha256"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    batch_id: Mapped[int] = mapped_column(Integer, ForeignKey("batch.id", ondelete="CASCADE"), index=True)
    #: Order in the batch (0-based).
    position: Mapped[int] = mapped_column(Integer)
    #: The name it was sent under (shown to agents; never logged).
    name: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    #: pdf | tiff | jpeg | png, or None when not a supported kind (then status ``error``).
    kind: Mapped[str | None] = mapped_column(String(8), nullable=True)
    #: Where the bytes are, under the storage root (content-addressed: shared by copies).
    stored_path: Mapped[str] = mapped_column(Text)
    page_count: Mapped[int] = mapped_column(Integer, default=0)
    #: pending | read | duplicate (same bytes as ``duplicate_of``: not read again) | error
    status: Mapped[str] = mapped_column(String(16), default="pending")
    #: {"rule", "message"} when the file could not be read at all.
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    duplicate_of_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("batch_file.id", ondelete="SET NULL"), nullable=True)
    #: The worker reading it now (``host:pid:start``) and until when (a lease, so that a
    #: killed worker's files are read again after restart).
    claimed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class BatchPage(Base):
    """One page of one received file, and what became of it."""

    __tablename__ = "batch_page"
    __table_args__ = (UniqueConstraint("file_id", "file_page", name="uq_batch_page_file_page"),
                      CheckConstraint(_in("status", PAGE_STATUSES), name="ck_batch_page_status"),
                      CheckConstraint("(status = 'record') = (record_id IS NOT NULL)",
                                      name="ck_batch_page_record"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    batch_id: Mapped[int] = mapped_column(Integer, ForeignKey("batch.id", ondelete="CASCADE"), index=True)
    file_id: Mapped[int] = mapped_column(Integer, ForeignKey("batch_file.id", ondelete="CASCADE"))
    #: 1-based page number in the file.
    file_page: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    record_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("record.id", ondelete="SET NULL"), nullable=True, index=True)
    #: Why (French, shown to agents): « Page 2 déjà lue pour ce document », best guesses...
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: SHA-256 of a scanned page's image (grey pixels; None for a digital PDF's page): an
    #: identical page image received again, in any file or batch, is a duplicate of it.
    image_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    #: The earlier page this one is identical to (no foreign key: the earlier batch may be
    #: deleted, then the link reads as unknown).
    duplicate_of_page_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


class RecordPage(Base):
    """A page of a stored record: which page of the form, from which received page."""

    __tablename__ = "record_page"
    __table_args__ = (UniqueConstraint("record_id", "position", name="uq_record_page_position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    record_id: Mapped[int] = mapped_column(Integer, ForeignKey("record.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    #: The form's page number (None when not known).
    number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    batch_page_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("batch_page.id", ondelete="SET NULL"), nullable=True)
    file_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("batch_file.id", ondelete="SET NULL"), nullable=True)
    file_page: Mapped[int] = mapped_column(Integer)
    rotation: Mapped[int] = mapped_column(Integer, default=0)
    #: qr | content | metadata | text
    identified_by: Mapped[str] = mapped_column(String(16))


class RecordCrop(Base):
    """A crop of the page a person must look at, for one field of a stored record."""

    __tablename__ = "record_crop"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    record_id: Mapped[int] = mapped_column(Integer, ForeignKey("record.id", ondelete="CASCADE"), index=True)
    #: The field's path in the record (``signature.referent``), or ``administratif`` for
    #: the administrative part (identifying the beneficiary).
    path: Mapped[str] = mapped_column(String(255))
    page: Mapped[int] = mapped_column(Integer)
    bbox: Mapped[list[float]] = mapped_column(JSONType)
    #: The PNG, under the storage root.
    stored_path: Mapped[str] = mapped_column(Text)

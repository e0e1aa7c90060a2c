"""Records read back, kept: one record with its pages and crops, written in the caller's
transaction, and the hooks other parts of the service hang on it.

- :func:`store_record`: the record (its beneficiary: its issued document's; its
  territory: its beneficiary's, else its batch's; copies of one issued document point at
  its first record; a rescan whose readings all match is a probable duplicate; the review
  it waits for), its :class:`RecordPage` rows (the received pages it came from) and its
  :class:`RecordCrop` rows, then the :data:`on_record_stored` hooks;
- :func:`record_reviewed`: an agent confirmed or corrected it, the :data:`on_record_reviewed`
  hooks go on;
- :func:`finish_if_done`: a batch is ``done`` once no page is pending.

``forms_service.desk.batches`` re-exports them (the desk's one service API).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from forms_service import db
from forms_service.audit import record_event
from forms_service.beneficiaries.models import Beneficiary
from forms_service.config import Settings
from forms_service.desk.models import Batch, BatchFile, BatchPage, RecordCrop, RecordPage
from forms_service.logging_setup import get_logger

log = get_logger(__name__)

#: The kept crops, under the storage root: ``crops/records/<record id>/p<page>-<path>.png``.
CROPS_ROOT = "crops/records"

#: Called with (session, record) inside the transaction that stores a record (each in a
#: savepoint: a hook that fails is logged and undone, the record stays). The circuit
#: registers here to turn a stored fiche de liaison into a request.
on_record_stored: list[Callable[[Session, db.Record], None]] = []
#: Called with (session, record) when an agent has confirmed or corrected a record.
on_record_reviewed: list[Callable[[Session, db.Record], None]] = []

def finish_if_done(session: Session, batch: Batch) -> None:
    """``done`` once its upload has ended and no page is pending (in the caller's
    transaction); a worker's claim makes it ``running``.

    The batch's row is locked first: the receiver closing an upload and a worker writing
    the last files' pages each see what the other committed (on PostgreSQL the second
    waits, then counts again; on SQLite the write lock does it), so a batch never stays
    ``running`` with nothing pending."""
    received = session.scalar(select(Batch.received_at).where(Batch.id == batch.id)
                              .with_for_update(key_share=True))
    if received is None:
        return
    pending = session.scalar(select(func.count()).select_from(BatchPage)
                             .where(BatchPage.batch_id == batch.id, BatchPage.status == "pending"))
    if not pending:
        batch.status = "done"
        batch.finished_at = db.models.utcnow()


# -- records --------------------------------------------------------------------------

def readings_sha(record: dict) -> str:
    """What a record read, as a hash: two records with the same are a rescan of one sheet."""
    values = {"form": record.get("form"), "document_id": record.get("document_id"),
              "fields": {p: f.get("value") for p, f in sorted(record.get("fields", {}).items())}}
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()


def needs_review(row: db.Record, record: dict) -> bool:
    """Whether a record waits at the desk: a field to look at, a page identified by its
    content, an unknown beneficiary, a probable duplicate, or a sampled accepted record."""
    return (record.get("status") == "needs_review"
            or any(p.get("identified_by") == "content" for p in record.get("pages", []))
            or row.beneficiary_id is None
            or row.probable_duplicate_of_id is not None
            or row.sampled)


def sampled(record_id: int, rate: float) -> bool:
    """Deterministic from the record id: the same record is always (not) sampled."""
    if rate <= 0:
        return False
    h = int.from_bytes(hashlib.sha256(f"record:{record_id}".encode()).digest()[:4], "big")
    return h < rate * 2 ** 32


def _beneficiary_of(session: Session, record: dict) -> Beneficiary | None:
    doc_id = record.get("document_id")
    if not doc_id:
        return None
    doc = session.get(db.IssuedDocument, doc_id)
    if doc is None or doc.beneficiary_id is None:
        return None
    return session.get(Beneficiary, doc.beneficiary_id)


def store_record(session: Session, record: dict, *, settings: Settings, batch: Batch,
                 file: BatchFile | None, ordinal: int | None,
                 pages: list[tuple[dict, BatchPage | None, BatchFile | None]]) -> db.Record:
    """Write one record read back with its pages and crops, in the caller's transaction.

    ``pages`` pairs each of the record's pages with the received page and file it came
    from. Copies of one issued document point at its first record (``copy_of``); a record
    whose readings all match an earlier one of the same document is a probable duplicate.
    """
    beneficiary = _beneficiary_of(session, record)
    sha = readings_sha(record)
    doc_id = record.get("document_id")
    first = probable = None
    if doc_id:
        first = session.scalars(select(db.Record).where(db.Record.document_id == doc_id)
                                .order_by(db.Record.id).limit(1)).first()
        probable = session.scalars(select(db.Record).where(db.Record.document_id == doc_id,
                                                           db.Record.readings_sha == sha)
                                   .order_by(db.Record.id).limit(1)).first()
    if doc_id and session.get(db.IssuedDocument, doc_id) is None:
        doc_id = None   # an id printed on no document of ours: read as without one
    # inserted without its readings first: its id names the crops' folder, then the
    # readings are written once, naming the kept crops (not inserted, then rewritten)
    row = db.Record(form_id=record["form"], document_id=doc_id, status=record["status"],
                    record={}, source=record.get("source", "scan"),
                    beneficiary_id=beneficiary.id if beneficiary else None,
                    territoire=beneficiary.territoire if beneficiary else batch.territoire,
                    batch_id=batch.id, file_id=file.id if file else None, ordinal=ordinal,
                    copy_of_id=first.id if first else None,
                    probable_duplicate_of_id=probable.id if probable else None,
                    readings_sha=sha)
    session.add(row)
    session.flush()
    row.sampled = sampled(row.id, float(getattr(settings, "review_sample_rate", 0.02)))
    row.review = "pending" if needs_review(row, record) else "none"
    keep_crops(settings, row.id, record)   # its evidence then names the kept crops (in place)
    row.record = record
    # its pages and crops: one multi-row INSERT each (no ORM object per row)
    page_rows = []
    for position, (page, batch_page, page_file) in enumerate(pages):
        page_rows.append({"record_id": row.id, "position": position, "number": page.get("number"),
                          "batch_page_id": batch_page.id if batch_page else None,
                          "file_id": page_file.id if page_file else None,
                          "file_page": int(page.get("file_page") or 1),
                          "rotation": int(page.get("rotation") or 0),
                          "identified_by": page.get("identified_by") or "qr"})
        if batch_page is not None:
            batch_page.status, batch_page.record_id, batch_page.message = "record", row.id, None
    crop_rows = [{"record_id": row.id, "path": path, "page": int(ev.get("page") or 1),
                  "bbox": list(ev.get("bbox") or []), "stored_path": str(ev["crop"])}
                 for path, field in record.get("fields", {}).items()
                 for ev in field.get("evidence") or [] if ev.get("crop")]
    if page_rows:
        session.execute(insert(RecordPage), page_rows)
    if crop_rows:
        session.execute(insert(RecordCrop), crop_rows)
    record_event(batch.created_by, "enregistrement.stocke", form_id=row.form_id, document_id=row.document_id,
                 object_type="enregistrement", object_id=row.id, session=session, lot=batch.id,
                 status=row.status, review=row.review)
    _call(on_record_stored, session, row)
    return row


def crop_name(record_id: int, page: int, path: str) -> str:
    """Where a record's crop is kept, relative to the storage root: by record and page,
    so that every copy of one document keeps its own."""
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in path)[:150]
    return f"{CROPS_ROOT}/{record_id}/p{page}-{safe}.png"


def keep_crops(settings: Settings, record_id: int, record: dict) -> bool:
    """Move the reader's crops of ``record`` (written under the reading's own key) to the
    record's folder (:func:`crop_name`), its evidence then naming them (in place); True
    when one moved. A crop that cannot be moved keeps its reader's path (logged)."""
    root = Path(settings.storage_dir)
    moved = False
    kept: dict[str, str] = {}   # one crop may be the evidence of several fields
    for path, field in record.get("fields", {}).items():
        for ev in field.get("evidence") or []:
            src = ev.get("crop")
            if not src:
                continue
            if src in kept:
                ev["crop"], moved = kept[src], True
                continue
            source = Path(src) if Path(src).is_absolute() else root / src
            rel = crop_name(record_id, int(ev.get("page") or 1), path + _suffix(source, path))
            target = root / rel
            if source == target:
                continue
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(source, target)
            except OSError as exc:
                log.warning("crop_not_kept", record=record_id, error=type(exc).__name__)
                continue
            ev["crop"], moved = rel, True
            kept[src] = rel
            try:
                source.parent.rmdir()   # the reader's folder, once empty
            except OSError:
                pass
    return moved


def _suffix(source: Path, path: str) -> str:
    """What the reader's crop name adds after the field's path (a box's value: ``.oui``)."""
    stem = source.stem.split("-", 1)[-1]
    return stem[len(path):] if stem.startswith(path) else ""


def record_reviewed(session: Session, record: db.Record) -> None:
    """An agent confirmed or corrected ``record`` (its review is done): the hooks go on."""
    _call(on_record_reviewed, session, record)


def _call(hooks: list, session: Session, row: db.Record) -> None:
    for hook in list(hooks):
        try:
            with session.begin_nested():
                hook(session, row)
        except Exception as exc:   # a hook's failure never loses the record
            log.error("record_hook_failed", hook=getattr(hook, "__name__", "?"), record=row.id,
                      error=type(exc).__name__)

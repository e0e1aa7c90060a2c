"""Batches: received files stored first, every page accounted for, records kept.

The one code path of every entry (the desk page, ``POST /api/v1/batches``, ``forms-service
batch submit``, the watched folders, and ``POST /api/v1/parse``)::

    batch = receive(settings, principal, files, territoire, source="api")   # stored, committed, queued
    view = batch_view(session, principal, batch.id)                          # the API's JSON

Underneath, for callers that hold their own transaction:

- :func:`submit_batch` stores each file (content-addressed, :mod:`forms_service.desk.storage`),
  recognises a file received before (``duplicate_of``: the earlier copy the caller may see;
  then it is not read again), and creates one :class:`BatchPage` per page, ``pending``;
- :func:`store_record` writes one record read back, with its pages and crops, in the
  caller's transaction (the reading job writes a file's records and pages together:
  :mod:`forms_service.desk.reading`), then calls the :data:`on_record_stored` hooks;
- :func:`record_reviewed` is called by the review (an agent confirmed or corrected a
  record) and calls the :data:`on_record_reviewed` hooks.

A record belongs to its beneficiary's territory, else to its batch's. Its beneficiary is
its issued document's; unknown, it waits at the desk (« bénéficiaire à identifier »).
"""

from __future__ import annotations

import hashlib
import json

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from forms_service import access, db
from forms_service.audit import record_event
from forms_service.config import Settings
from forms_service.desk import storage, twins
from forms_service.desk.storage import Upload, page_count  # noqa: F401
from forms_service.desk.records import (finish_if_done, on_record_reviewed, on_record_stored,  # noqa: F401
                                        record_reviewed, store_record)
from forms_service.desk.models import Batch, BatchFile, BatchPage, RecordCrop, RecordPage
from forms_service.directory.models import Territory
from forms_service.errors import BadRequest, Forbidden, FormsError, PayloadTooLarge
from forms_service.logging_setup import get_logger
from forms_service.principal import Principal

log = get_logger(__name__)

MAX_FILES = 1000
MSG_BATCH = "Lot introuvable"
BENEFICIARY_TO_IDENTIFY = "bénéficiaire à identifier"


def batch_territory(session: Session, principal: Principal, territoire: str | None) -> str | None:
    """The territory a batch is received for: the caller's own, else the one named
    (required when the caller has none; administrators and machine keys may name any)."""
    own = principal.territoire
    if territoire and own and territoire != own and not principal.is_admin:
        raise Forbidden("Ce territoire n'est pas le vôtre", path="territoire", rule="territoire_refuse")
    chosen = territoire or own
    if not chosen:
        raise BadRequest("Territoire manquant (champ « territoire »)", path="territoire",
                         rule="territoire_manquant")
    if session.get(Territory, chosen) is None:
        raise BadRequest(f"Territoire inconnu : {chosen}", path="territoire", rule="territoire_inconnu")
    return chosen


def check_size(files: list[Upload], settings: Settings) -> int | None:
    """Refuse a batch over ``MAX_BATCH_BYTES`` (from the files' sizes, before storing
    any); returns the limit (storing checks it again, by chunks)."""
    limit = getattr(settings, "max_batch_bytes", None)
    total = sum(f.size() for f in files)
    if limit and total > limit:
        raise PayloadTooLarge(storage.too_large_message(total, limit), path="files")
    return limit or None


def submit_batch(session: Session, principal: Principal, files: list[Upload], territoire: str | None,
                 *, settings: Settings, source: str) -> Batch:
    """Store the files and create the batch, its files and pending pages (not committed,
    not queued: :func:`receive` does both)."""
    if not files:
        raise BadRequest("Aucun fichier reçu (champ « files »)", path="files", rule="fichier_manquant")
    check_count(len(files))
    limit = check_size(files, settings)
    batch = open_batch(session, principal, territoire, source=source)
    seen: dict[str, BatchFile] = {}
    stored = 0
    for position, upload in enumerate(files):
        # stored before anything else, by chunks while hashing (never whole in memory)
        kept = storage.put_upload(settings, upload, limit=None if limit is None else limit - stored)
        stored += kept[2]
        add_file(session, settings, principal, batch, position, upload.name, kept, seen)
    close_batch(session, principal, batch, files=len(files), source=source)
    return batch


def check_count(n: int) -> None:
    if n > MAX_FILES:
        raise BadRequest(f"Trop de fichiers ({n} ; {MAX_FILES} au plus)", path="files",
                         rule="trop_de_fichiers")


def open_batch(session: Session, principal: Principal, territoire: str | None, *, source: str,
               receiving: bool = False) -> Batch:
    """A new batch (flushed); ``receiving``: its files are still arriving (not ``done``
    before :func:`close_batch`)."""
    batch = Batch(source=source, territoire=batch_territory(session, principal, territoire),
                  created_by=principal.actor, user_id=principal.user_id, status="queued",
                  submitter=twins.submitter_of(principal),
                  received_at=None if receiving else db.models.utcnow())
    session.add(batch)
    session.flush()
    return batch


def add_file(session: Session, settings: Settings, principal: Principal, batch: Batch, position: int,
             name: str | None, kept: tuple[str, str, int], seen: dict[str, BatchFile]) -> BatchFile:
    """A stored file's row (its kind, its pages counted, or the earlier copy it repeats)
    and one page per page, ``pending`` (flushed, in the caller's transaction)."""
    from parsers.parse import kind_of

    digest, rel, size = kept
    row = BatchFile(batch_id=batch.id, position=position, name=(name or f"fichier-{position + 1}")[:255],
                    sha256=digest, size=size, stored_path=rel, status="pending")
    earlier = seen.get(digest) or earlier_copy(session, principal, digest, batch.id)
    try:
        row.kind = kind_of(storage.head(settings, rel))
        row.page_count = page_count(storage.path(settings, rel), row.kind)
    except Exception as exc:   # unreadable: one page, in error, never lost
        row.kind = row.kind if isinstance(exc, FormsError) or row.kind else None
        row.status, row.page_count = "error", 1
        row.error = _error_of(exc)
    if earlier is not None:
        row.duplicate_of_id = earlier.id
        if row.status != "error":
            row.status = "duplicate"
    session.add(row)
    session.flush()
    seen.setdefault(digest, row)
    for n in range(1, max(row.page_count, 1) + 1):
        status, message = "pending", None
        if row.status == "duplicate":
            status, message = "duplicate", f"Fichier déjà reçu (lot {earlier.batch_id})"
        elif row.status == "error":
            status, message = "error", row.error["message"]
        session.add(BatchPage(batch_id=batch.id, file_id=row.id, file_page=n, status=status,
                              message=message))
    session.flush()
    return row


def close_batch(session: Session, principal: Principal, batch: Batch, *, files: int, source: str,
                interrupted: bool = False) -> None:
    """Every file received (or the upload broke, ``interrupted``: the files received
    whole stay): its page count, ``done`` if nothing is left to read, the audit event."""
    if batch.received_at is None:
        session.execute(update(Batch).where(Batch.id == batch.id).values(received_at=db.models.utcnow()))
        session.refresh(batch)
    total = session.scalar(select(func.count()).select_from(BatchPage).where(BatchPage.batch_id == batch.id))
    batch.pages_total = total
    session.flush()
    finish_if_done(session, batch)
    extra = {"interrompu": True} if interrupted else {}
    record_event(principal, "lot.recu", object_type="lot", object_id=batch.id, session=session,
                 files=files, pages=total, source=source, territoire=batch.territoire, **extra)
    session.flush()


def _error_of(exc: BaseException) -> dict:
    from parsers.failures import error_of
    return error_of(exc)


def earlier_copy(session: Session, principal: Principal, digest: str, batch_id: int | None) -> BatchFile | None:
    """The first stored copy of these bytes, in a batch the caller may see, if any."""
    stmt = (select(BatchFile).join(Batch, Batch.id == BatchFile.batch_id)
            .where(BatchFile.sha256 == digest, BatchFile.duplicate_of_id.is_(None),
                   access.batch_condition(principal))
            .order_by(BatchFile.id).limit(1))
    return session.scalars(stmt).first()


def read_jobs(session: Session, batch_id: int) -> list[list[int]]:
    """The reading jobs of a batch's pending files: its JPEG and PNG files together (one
    photo per page makes one record), every other file alone."""
    rows = session.scalars(select(BatchFile).where(BatchFile.batch_id == batch_id,
                                                   BatchFile.status == "pending")
                           .order_by(BatchFile.position)).all()
    images = [r.id for r in rows if r.kind in ("jpeg", "png")]
    others = [[r.id] for r in rows if r.kind not in ("jpeg", "png")]
    return ([images] if images else []) + others


def receive(settings: Settings, principal: Principal, files: list[Upload], territoire: str | None,
            *, source: str, database: db.Database | None = None, queue=None) -> Batch:
    """Store, commit, then queue the batch's reading: what every entry calls."""
    from forms_service.desk import queue as desk_queue

    database = database or db.get_database(settings if not _in_app() else None)
    with database.session() as s:
        batch = submit_batch(s, principal, files, territoire, settings=settings, source=source)
        jobs = read_jobs(s, batch.id)
        s.expunge(batch)
    q = queue or desk_queue.get_queue(settings)
    for file_ids in jobs:
        q.enqueue_read(batch.id, file_ids)
    log.info("batch_received", batch=batch.id, jobs=len(jobs), pages=batch.pages_total, source=source)
    return batch


def _in_app() -> bool:
    from flask import has_app_context
    return has_app_context()


# -- views ----------------------------------------------------------------------------

def get_batch(session: Session, principal: Principal, batch_id: int) -> Batch:
    return access.get_batch(principal, batch_id, session)


def file_entry(session: Session, principal: Principal, row: BatchFile) -> dict:
    dup = None
    if row.duplicate_of_id is not None:
        earlier = session.get(BatchFile, row.duplicate_of_id)
        if earlier is not None and access.can_see_batch(principal, earlier.batch_id, session):
            dup = {"batch": earlier.batch_id, "file": earlier.position}
    entry = {"name": row.name, "sha256": row.sha256, "duplicate_of": dup}
    return entry


def files_view(session: Session, principal: Principal, batch: Batch) -> list[dict]:
    rows = session.scalars(select(BatchFile).where(BatchFile.batch_id == batch.id)
                           .order_by(BatchFile.position)).all()
    return [file_entry(session, principal, r) for r in rows]


def batch_view(session: Session, principal: Principal, batch_id: int) -> dict:
    """``GET /api/v1/batches/<id>``: status, progress, summary, files, records, pages."""
    batch = get_batch(session, principal, batch_id)
    files = session.scalars(select(BatchFile).where(BatchFile.batch_id == batch.id)
                            .order_by(BatchFile.position)).all()
    position = {f.id: f.position for f in files}
    pages = session.execute(select(BatchPage.id, BatchPage.file_id, BatchPage.file_page, BatchPage.status,
                                   BatchPage.record_id, BatchPage.message, BatchPage.duplicate_of_page_id)
                            .where(BatchPage.batch_id == batch.id)
                            .order_by(BatchPage.file_id, BatchPage.file_page)).all()
    # the records' ids and states only: a poll never loads what they read
    records = session.execute(select(db.Record.id, db.Record.status, db.Record.review)
                              .where(db.Record.batch_id == batch.id).order_by(db.Record.id)).all()
    counts = {s: sum(1 for p in pages if p.status == s) for s in ("blank", "unknown", "duplicate", "error")}
    summary = {"forms": len(records),
               "valid": sum(1 for r in records if r.status == "valid"),
               "needs_review": sum(1 for r in records if r.review == "pending"),
               "invalid": sum(1 for r in records if r.status == "invalid"),
               "blank": counts["blank"], "unknown": counts["unknown"],
               "duplicates": counts["duplicate"], "errors": counts["error"]}
    return {
        "id": batch.id, "status": batch.status, "territoire": batch.territoire,
        "created_at": batch.created_at.isoformat(),
        "progress": {"pages_total": len(pages), "pages_done": sum(1 for p in pages if p.status != "pending")},
        "summary": summary,
        "files": [file_entry(session, principal, f) for f in files],
        "records": [r.id for r in records],
        "pages": [{"file": position[p.file_id], "file_page": p.file_page, "status": p.status,
                   "record": p.record_id, "message": p.message,
                   "duplicate_of": _page_twin(session, principal, p)} for p in pages],
    }


def batch_etag(session: Session, principal: Principal, batch_id: int) -> str:
    """The ETag of ``GET /api/v1/batches/<id>`` for ``principal``: a hash of what its view
    is made of — the batch's state, its files' count, its pages' count by status, its
    records' count by status and review (their highest id) — read with a few aggregate
    queries, not the view itself: a client polling an unchanged batch gets a 304 for
    the cost of these (issue 11's speed). Pages leave ``pending`` once and records are
    only added or reviewed, so any change of the view changes one of these counts.
    Computed before the view: a view newer than its ETag is sent again at the next poll,
    never an older one kept."""
    batch = get_batch(session, principal, batch_id)
    files = session.scalar(select(func.count()).select_from(BatchFile).where(BatchFile.batch_id == batch.id))
    pages = session.execute(select(BatchPage.status, func.count()).where(BatchPage.batch_id == batch.id)
                            .group_by(BatchPage.status).order_by(BatchPage.status)).all()
    records = session.execute(select(db.Record.status, db.Record.review, func.count(), func.max(db.Record.id))
                              .where(db.Record.batch_id == batch.id)
                              .group_by(db.Record.status, db.Record.review)
                              .order_by(db.Record.status, db.Record.review)).all()
    key = [batch.status, batch.received_at, batch.finished_at, files, [list(r) for r in pages],
           [list(r) for r in records], principal.actor, sorted(principal.roles), principal.territoire]
    return hashlib.sha256(json.dumps(key, default=str).encode()).hexdigest()[:32]


def _page_twin(session: Session, principal: Principal, page: BatchPage) -> dict | None:
    """The earlier page an identical page image was received as, when the caller may see it."""
    if page.duplicate_of_page_id is None:
        return None
    earlier = session.get(BatchPage, page.duplicate_of_page_id)
    if earlier is None or not access.can_see_batch(principal, earlier.batch_id, session):
        return None
    return twins.describe(session, earlier)


def record_view(session: Session, principal: Principal, record_id: int) -> dict:
    """``GET /api/v1/records/<id>``: the record, its batch, beneficiary, review and links."""
    row = access.get_record(principal, record_id, session)
    pages = session.scalars(select(RecordPage).where(RecordPage.record_id == row.id)
                            .order_by(RecordPage.position)).all()
    crops = session.scalars(select(RecordCrop).where(RecordCrop.record_id == row.id)
                            .order_by(RecordCrop.id)).all()
    files = {f.id: f for f in session.scalars(select(BatchFile).where(
        BatchFile.id.in_([p.file_id for p in pages if p.file_id]))).all()}
    return {
        "id": row.id, "batch": row.batch_id, "beneficiary": row.beneficiary_id, "review": row.review,
        "status": row.status, "territoire": row.territoire, "form_id": row.form_id,
        "document_id": row.document_id, "copy_of": row.copy_of_id,
        "probable_duplicate_of": row.probable_duplicate_of_id,
        "record": row.record, "beneficiary_id": row.beneficiary_id, "source": row.source,
        "created_at": row.created_at.isoformat(),
        "links": {
            "pages": [{"number": p.number, "file": files[p.file_id].position if p.file_id in files else None,
                       "batch": files[p.file_id].batch_id if p.file_id in files else None,
                       "file_page": p.file_page, "rotation": p.rotation, "identified_by": p.identified_by}
                      for p in pages],
            "crops": [{"path": c.path, "page": c.page, "bbox": c.bbox, "id": c.id} for c in crops],
        },
    }


__all__ = ["BENEFICIARY_TO_IDENTIFY", "Upload", "batch_etag", "batch_view", "on_record_reviewed", "on_record_stored",
           "receive", "record_reviewed", "record_view", "store_record", "submit_batch"]

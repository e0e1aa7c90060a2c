"""Reading a batch's files on a queue worker: claimed, read once, written in one transaction.

A job names files of one batch. The worker claims those still pending (a lease naming
it: ``host:pid:start``), reads their stored bytes with the parsers (in its sandbox), then
writes, in ONE transaction, every record with its pages and crops, every page's status
and the file's; the file's row is updated only while it is still pending, so a job run
twice (a retry, a sweep after a worker was killed) stores nothing twice. A page the
readers say nothing about is an ``error`` (« page non lue »), never left pending.

Photocopies: a file holding several copies of one printed form (same document id) is
read copy after copy — pages the reader calls « déjà lue » are read again as the next
copy, unless the page image is identical to one already read (then a true duplicate).
"""

from __future__ import annotations

import os
import threading
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from sqlalchemy import event, select, update
from sqlalchemy.exc import SQLAlchemyError

from forms_service import db
from forms_service.config import Settings
from forms_service.desk import leases, records, storage, twins
from forms_service.desk.queue import at_start, handler, periodic
from forms_service.desk.storage import Upload, page_count
from forms_service.desk.models import Batch, BatchFile, BatchPage
from forms_service.errors import DatabaseUnavailable
from forms_service.principal import Principal
from forms_service.logging_setup import get_logger

log = get_logger(__name__)

LEASE = timedelta(minutes=10)
#: A pending file never claimed this long after its batch arrived is queued again (its job
#: was lost: the producer died between commit and enqueue).
LOST_AFTER = timedelta(minutes=2)
MAX_COPIES = 50
#: The reader's size limit on the desk is per page, not per file: a scanner's 300-page
#: batch in one TIFF is normal. An A4 page scanned at 300 dpi in grey is 8.7 MB
#: uncompressed, so any grey page fits, compressed or not (a colour page must be
#: compressed, as every scanner does). The file's pages were counted on receipt.
MAX_BYTES_PER_PAGE = 10 * 1024 * 1024


def reading_limits(page_counts: list[int | None]):
    """The reader's limits for a job's files: :data:`MAX_BYTES_PER_PAGE` times the pages
    of its longest file (never less than the reader's own per-file limit)."""
    from parsers.parse import MAX_FILE_BYTES, MAX_PAGES, Limits
    pages = max((n or 1 for n in page_counts), default=1)
    return Limits(max_bytes=max(MAX_FILE_BYTES, pages * MAX_BYTES_PER_PAGE),
                  max_pages=max(MAX_PAGES, pages))


#: How long a worker's SQLite connection waits for another writer (ms).
WORKER_BUSY_TIMEOUT_MS = 120_000


def _worker_busy_timeout(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={WORKER_BUSY_TIMEOUT_MS}")
    cursor.close()


class Worker:
    """A consumer process's reading context: its settings' database and a parse sandbox."""

    _instances: dict[Settings, "Worker"] = {}
    _lock = threading.Lock()

    def __init__(self, settings: Settings, *, sandbox=None):
        self.settings = settings
        self.database = db.Database(settings.database_url)
        if self.database.engine.dialect.name == "sqlite":
            # a job's writing transaction may wait for another job's (SQLite's write lock is
            # also what keeps twin pages once, twins.py): longer than a web request would
            event.listen(self.database.engine, "connect", _worker_busy_timeout)
        self._sandbox = sandbox
        self.me = leases.me()

    @classmethod
    def get(cls, settings: Settings) -> "Worker":
        with cls._lock:
            w = cls._instances.get(settings)
            if w is None:
                w = cls._instances[settings] = Worker(settings)
            return w

    @classmethod
    def forget(cls, settings: Settings) -> None:
        """Drop this process's worker for ``settings`` (after :meth:`close`)."""
        with cls._lock:
            cls._instances.pop(settings, None)

    def sandbox(self):
        with self._lock:
            if self._sandbox is None:
                from parsers.sandbox import Sandbox
                self._sandbox = Sandbox(self.settings, pool=None,
                                        workers=max(1, os.cpu_count() or 1))
            return self._sandbox

    def close(self) -> None:
        if self._sandbox is not None:
            self._sandbox.close()
        self.database.dispose()

    # -- one job
    def read_files(self, batch_id: int, file_ids: list[int]) -> None:
        claimed = self._claim(file_ids)
        if not claimed:
            return
        with self.database.session() as s:
            rows = s.scalars(select(BatchFile).where(BatchFile.id.in_(claimed))
                             .order_by(BatchFile.position)).all()
            inputs = [(r.id, r.kind, r.stored_path) for r in rows]
            limits = replace(reading_limits([r.page_count for r in rows]), page_digests=True)
        # handed by path: each reader process reads its stored file itself (no copy of the
        # bytes pickled through the pipe)
        files = [(str(fid), storage.path(self.settings, rel)) for fid, _, rel in inputs]
        # the page images' hashes (twins across files) are the reader's own digests of the
        # pages it decoded: no page is decoded twice
        items, digests = read_copies(self.sandbox(), files, limits=limits)
        hashes = {int(name): d for name, d in digests.items()}
        try:
            with self.database.session() as s:
                write_results(s, self.settings, batch_id, claimed, items, hashes=hashes)
        except AlreadyWritten:   # another job stored them first: nothing to do
            log.info("batch_files_already_written", batch=batch_id)
            return
        log.info("batch_files_read", batch=batch_id, files=len(claimed), items=len(items))

    def _claim(self, file_ids: list[int]) -> list[int]:
        now = db.models.utcnow()
        with self.database.session() as s:
            rows = s.scalars(select(BatchFile).where(BatchFile.id.in_(file_ids),
                                                     BatchFile.status == "pending")
                             .with_for_update()).all()
            mine = []
            for r in rows:
                if leases.held(r.claimed_by, r.claimed_until, now, by=self.me):
                    continue
                r.claimed_by, r.claimed_until = self.me, now + LEASE
                mine.append(r.id)
            if mine:
                s.execute(update(Batch).where(Batch.id == rows[0].batch_id, Batch.status == "queued")
                          .values(status="running"))
            return mine


def _in_app() -> bool:
    from flask import has_app_context
    return has_app_context()


# -- reading copy after copy ------------------------------------------------------------

def _subfile(data: bytes, pages: list[int]) -> bytes | None:
    """A file holding only ``pages`` (1-based) of ``data`` (PDF or TIFF), else None."""
    import io
    from parsers.parse import kind_of
    kind = kind_of(data)
    if kind == "pdf":
        import pikepdf
        with pikepdf.open(io.BytesIO(data)) as src:
            out = pikepdf.new()
            for n in pages:
                out.pages.append(src.pages[n - 1])
            buf = io.BytesIO()
            out.save(buf)
            return buf.getvalue()
    if kind == "tiff":
        from PIL import Image, ImageSequence
        with Image.open(io.BytesIO(data)) as im:
            frames = [f.copy() for i, f in enumerate(ImageSequence.Iterator(im), 1) if i in pages]
        buf = io.BytesIO()
        frames[0].save(buf, format="TIFF", save_all=True, append_images=frames[1:])
        return buf.getvalue()
    return None


def _again(item: dict) -> bool:
    return item.get("page_status") == "duplicate" and "déjà lue" in (item.get("message") or "")


def read_copies(sandbox, files: list[tuple[str, bytes | Path]], *, limits=None
                ) -> tuple[list[dict], dict[str, dict[int, str]]]:
    """The parsers' entries for ``files``, each file's photocopies read as records of their
    own, and each scanned file's page image digests (name → {file page: sha256}, the
    reader's own: ``Limits.page_digests``), which tell a photocopy from the same image."""
    from parsers.parse import Limits

    limits = replace(limits or Limits(), page_digests=True)
    items, digests = _digests_apart(sandbox.parse(files, limits))
    once = replace(limits, page_digests=False)   # a copy's pages: their file's digests stand
    data = dict(files)
    for name in list(data):
        again = [i for i in items if i.get("file") == name and _again(i)]
        if not again:
            continue
        hashes = digests.get(name, {})
        rounds = 0
        while again and rounds < MAX_COPIES:
            rounds += 1
            read_pages = {p["file_page"] for i in items if "fields" in i for p in i["pages"]
                          if p["file"] == name}
            seen = {hashes.get(n) for n in read_pages}
            twins = [i for i in again if hashes.get(i["file_page"]) in seen and hashes.get(i["file_page"])]
            for i in twins:   # the same page image again: a true duplicate
                i["message"] = "Page identique à une page déjà lue (même image)"
            retry = [i for i in again if i not in twins]
            if not retry:
                break
            numbers = [i["file_page"] for i in retry]
            source = data[name]
            sub = _subfile(source.read_bytes() if isinstance(source, Path) else source, numbers)
            if sub is None:
                break
            # read under a name of its own (the reader's crops of this copy kept apart),
            # then back to the original file's name and page numbers
            more = sandbox.parse([(f"{name}~{rounds}", sub)], once)
            for m in more:
                if "file" in m:
                    m["file"] = name
                if "fields" in m:
                    for p in m["pages"]:
                        p["file"], p["file_page"] = name, numbers[p["file_page"] - 1]
                elif "file_page" in m:
                    m["file_page"] = numbers[m["file_page"] - 1]
            items = [i for i in items if i not in retry] + more
            again = [m for m in more if m.get("file") == name and _again(m)]
    return items, digests


def _digests_apart(items: list[dict]) -> tuple[list[dict], dict[str, dict[int, str]]]:
    """The reader's entries without its page digest entries, and those digests by file."""
    digests = {i["file"]: {int(n): h for n, h in i["page_digests"].items()}
               for i in items if "page_digests" in i}
    return [i for i in items if "page_digests" not in i], digests


# -- writing ----------------------------------------------------------------------------

class AlreadyWritten(Exception):
    """Another job stored this file first (the transaction is rolled back)."""


def write_results(s, settings: Settings, batch_id: int, file_ids: list[int], items: list[dict],
                  *, by_name: bool = False, hashes: dict[int, dict[int, str]] | None = None) -> None:
    """Every record with its pages, every page's status, and the files' status, at once.

    The readers were given each file under its id (``str(file.id)``: names may repeat in
    a batch), put back in the records; ``by_name``: under its own name (``POST /parse``,
    the first file of a name). ``hashes``: each file's page image hashes (file id → page
    → sha256, the reader's own digests, :func:`read_copies`): kept, and a page identical to
    an earlier one received elsewhere is a duplicate (a record all of whose pages are is
    not stored again).
    """
    batch = s.get(Batch, batch_id)
    files = {f.id: f for f in s.scalars(select(BatchFile).where(BatchFile.id.in_(file_ids))
                                        .order_by(BatchFile.position.desc())).all()}
    names = {f.name: f for f in files.values()}
    for fid in files:
        done = s.execute(update(BatchFile).where(BatchFile.id == fid, BatchFile.status == "pending")
                         .values(status="read", read_at=db.models.utcnow(), claimed_by=None,
                                 claimed_until=None))
        if done.rowcount != 1:
            raise AlreadyWritten(fid)
    pages = {(p.file_id, p.file_page): p for p in s.scalars(
        select(BatchPage).where(BatchPage.file_id.in_(list(files)))).all()}

    def file_of(key: str) -> BatchFile | None:
        if by_name:
            return names.get(key)
        return files.get(int(key)) if str(key).isdigit() else None

    for (fid, n), page in pages.items():
        page.image_sha256 = (hashes or {}).get(fid, {}).get(n)
    if hashes:   # a writer of twin pages at the same moment waits for this one (twins.py)
        twins.lock_images(s, [p.image_sha256 for p in pages.values()])
    earlier = twins.earlier_pages(s, batch, {p.id: p.image_sha256 for p in pages.values()},
                                  exclude_files=list(files)) if hashes else {}

    def twin(page: BatchPage | None) -> bool:
        """Mark ``page`` a duplicate when an earlier page had its image."""
        if page is None or page.id not in earlier:
            return False
        first = earlier[page.id]
        page.status, page.duplicate_of_page_id = "duplicate", first.id
        page.message = f"Page identique à une page déjà reçue (lot {first.batch_id})"
        return True

    ordinals: dict[int, int] = {}
    for item in items:
        if "fields" in item:
            record_pages = []
            for p in item["pages"]:
                f = file_of(p["file"])
                record_pages.append((p, pages.get((f.id, int(p["file_page"]))) if f else None, f))
            if record_pages and all(bp is not None and bp.id in earlier for _, bp, _ in record_pages):
                for _, bp, _ in record_pages:   # every page already received: no second record
                    twin(bp)
                continue
            for p, _, f in record_pages:
                if f is not None:
                    p["file"] = f.name   # the contract names the file as it was sent
            first = next((f for _, _, f in record_pages if f is not None), None)
            ordinal = None
            if first is not None:
                ordinal = ordinals[first.id] = ordinals.get(first.id, -1) + 1
            records.store_record(s, item, settings=settings, batch=batch, file=first, ordinal=ordinal,
                                 pages=record_pages)
        elif "error" in item:
            f = file_of(item["file"])
            if f is None:
                continue
            f.status, f.error = "error", item["error"]
            for (fid, _), page in pages.items():
                if fid == f.id and page.status == "pending":
                    page.status, page.message = "error", item["error"].get("message")
        elif "page_status" in item:
            f = file_of(item["file"])
            page = pages.get((f.id, int(item["file_page"]))) if f else None
            if page is not None and page.status == "pending" and not twin(page):
                page.status, page.message = item["page_status"], item.get("message")
    for page in pages.values():
        if page.status == "pending":
            page.status, page.message = "error", "Page non lue"
    s.flush()
    records.finish_if_done(s, batch)


# -- POST /api/v1/parse -----------------------------------------------------------------

def keep_parsed(settings: Settings, principal: Principal, files: list[Upload], items: list[dict],
                *, database: db.Database | None = None) -> int:
    """Keep what ``POST /api/v1/parse`` read: a batch (source ``parse``, the caller's
    territory if any) with its files stored, its pages and records, written at once.
    Returns the batch id."""
    database = database or db.get_database(settings if not _in_app() else None)
    try:
        return _keep_parsed(database, settings, principal, files, items)
    except (SQLAlchemyError, OSError) as exc:   # never a 500: the records could not be kept
        log.warning("parse_keep_failed", error=type(exc).__name__)
        raise DatabaseUnavailable() from exc


def _keep_parsed(database, settings, principal, files, items) -> int:
    from parsers.parse import kind_of

    with database.session() as s:
        batch = Batch(source="parse", territoire=principal.territoire, created_by=principal.actor,
                      user_id=principal.user_id, status="running", received_at=db.models.utcnow())
        s.add(batch)
        s.flush()
        rows = []
        for position, upload in enumerate(files):
            digest, rel = storage.put(settings, upload.data)
            row = BatchFile(batch_id=batch.id, position=position, name=upload.name[:255], sha256=digest,
                            size=len(upload.data), stored_path=rel, status="pending")
            try:
                row.kind = kind_of(upload.data)
                row.page_count = page_count(upload.data, row.kind)
            except Exception:   # the reader's own entry says why
                row.page_count = 1
            s.add(row)
            s.flush()
            rows.append(row)
            for n in range(1, max(row.page_count, 1) + 1):
                s.add(BatchPage(batch_id=batch.id, file_id=row.id, file_page=n, status="pending"))
            batch.pages_total += max(row.page_count, 1)
        s.flush()
        write_results(s, settings, batch.id, [r.id for r in rows], items, by_name=True)
        return batch.id


# -- recovery ---------------------------------------------------------------------------

def sweep(worker: Worker) -> list[tuple[int, list[int]]]:
    """The jobs to queue again: pending files whose worker died or whose lease expired,
    and pending files never claimed long after their batch arrived (a lost job)."""
    now = db.models.utcnow()
    jobs: dict[int, list[int]] = {}
    try:
        with worker.database.session() as s:
            rows = s.execute(select(BatchFile.id, BatchFile.batch_id, BatchFile.claimed_by,
                                    BatchFile.claimed_until, Batch.created_at)
                             .join(Batch, Batch.id == BatchFile.batch_id)
                             .where(BatchFile.status == "pending")).all()
    except Exception as exc:
        log.warning("desk_sweep_failed", error=type(exc).__name__)
        return []
    for fid, bid, holder, until, created in rows:
        if holder:
            lost = leases.lost(holder, until, now)
        else:
            lost = leases.aware(created) + LOST_AFTER < now
        if lost:
            jobs.setdefault(bid, []).append(fid)
    out = []
    with worker.database.session() as s:
        for bid, fids in jobs.items():
            kinds = dict(s.execute(select(BatchFile.id, BatchFile.kind).where(BatchFile.id.in_(fids))).all())
            images = [f for f in fids if kinds.get(f) in ("jpeg", "png")]
            out += ([(bid, images)] if images else []) + [(bid, [f]) for f in fids if f not in images]
    if out:
        log.info("desk_sweep", jobs=len(out))
    return out


# -- the queue's tasks -------------------------------------------------------------------

@handler("read_files")
def _read_task(queue, batch_id: int, file_ids: list[int]) -> None:
    Worker.get(queue.settings).read_files(batch_id, file_ids)


@handler("sweep")
@periodic
def _sweep_task(queue) -> None:
    for batch_id, file_ids in sweep(Worker.get(queue.settings)):
        queue.enqueue_read(batch_id, file_ids)


@at_start
def _sweep_at_start(queue) -> None:
    # a killed worker's dequeued jobs are gone: queue again what it left (once per consumer)
    queue.enqueue_sweep()


__all__ = ["AlreadyWritten", "Worker", "keep_parsed", "read_copies", "sweep", "write_results"]

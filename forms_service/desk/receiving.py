"""A batch received over HTTP, file by file: reading starts while the upload goes on.

    receiver = Receiver(settings, principal, source="api", database=database)
    batch = read_multipart(request.stream, boundary, receiver)   # stored, committed, queued

Each part of the multipart body named ``files`` is written straight under the storage
root while hashed (:class:`~forms_service.desk.storage.Spool`: no second copy, one fsync
per file). As soon as a file is whole, its row and pending pages are committed and its
reading job queued, so the workers read the first files while the last ones arrive.
JPEG and PNG files sent one after the other are read together, in one job queued when
the run of photos ends (the next file that is not a photo, or the end of the upload): one
photo per page still makes one record when a document's photos are sent together. (A
batch received whole, :func:`~forms_service.desk.batches.read_jobs`, reads all its photos
together; here a document's photos sent with another file between them would be read as
two parts: a client sends them together, as a phone or a scanner does.)
The batch is ``queued`` then ``running``, and never ``done`` before the upload ended
(``batch.received_at``, :func:`~forms_service.desk.records.finish_if_done`).

**When the batch is known.** The batch is created at the first file if its territory is
settled by then: a ``territoire`` field sent before the files, or a caller with a
territory of their own who is not an administrator (any other territory is refused to
them: a later ``territoire`` field naming another one is refused, 403, the files received
until then staying in their own territory's batch). Otherwise (an administrator or a
caller without a territory who sends ``territoire`` after the files) the files are
stored as they arrive and the batch is made of them at the end, as before.

**An upload that breaks** (the client goes away, the body ends before its last
boundary, a limit is passed mid-way): every file received whole stays in the batch, read
once like any other, and the batch is closed on them (audit ``lot.recu`` with
``interrompu``); the part being received is dropped, nothing of it kept. The answer is
the error (400 « Envoi interrompu … », 413, 403). Sending the same files again finds the
files already received (``duplicate_of`` names them: not read again, no second record)
and reads the others: nothing accepted is lost or doubled. Before the batch exists (the
end-made case), a broken upload keeps no batch at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import update
from sqlalchemy.orm import Session

from forms_service import db
from forms_service.config import Settings
from forms_service.desk import batches, storage
from forms_service.desk.models import Batch, BatchFile
from forms_service.errors import BadRequest, Forbidden
from forms_service.logging_setup import get_logger
from forms_service.principal import Principal

log = get_logger(__name__)

#: Bytes read from the request at a time.
READ = 1024 * 1024
#: A form field (``territoire``) is small: more is refused.
MAX_FIELD_BYTES = 64 * 1024
IMAGE_KINDS = ("jpeg", "png")
#: How long the receiver's SQLite connection waits for a worker's writing transaction
#: (ms): the upload goes on while workers write, and must not fail on a web request's
#: 5 s (a worker's transaction may hold the write lock longer, ``reading``).
RECEIVER_BUSY_TIMEOUT_MS = 120_000


class Receiver:
    """One batch, received part by part (fed by :func:`read_multipart`)."""

    def __init__(self, settings: Settings, principal: Principal, *, source: str,
                 database: db.Database, queue=None):
        self.settings, self.principal, self.source = settings, principal, source
        self.database = database
        self._queue = queue
        self.territoire: str | None = None
        self.limit = getattr(settings, "max_batch_bytes", None) or None
        self.batch_id: int | None = None     # once created (file by file)
        self.streaming: bool | None = None   # decided at the first file
        self.count = 0                       # files received whole
        self.stored = 0                      # their bytes
        self._seen: dict[str, int] = {}      # sha256 → the first row of these bytes here
        self._images: list[int] = []         # JPEG/PNG rows: one job, at the end
        self._later: list[tuple[str, tuple[str, str, int]]] = []   # the end-made case
        self._spool: storage.Spool | None = None
        self._name = ""
        self._conn = None                    # one connection for the whole upload
        self._busy_before: int | None = None

    # -- the database
    @contextmanager
    def _session(self) -> Iterator[Session]:
        """A transaction of the receiver's, on its one connection for the whole upload
        (on SQLite it waits for the write lock as long as a worker's does: set once)."""
        if self._conn is None:
            conn = self.database.engine.connect()
            if conn.dialect.name == "sqlite":
                self._busy_before = int(conn.exec_driver_sql("PRAGMA busy_timeout").scalar())
                conn.exec_driver_sql(f"PRAGMA busy_timeout={RECEIVER_BUSY_TIMEOUT_MS}")
                conn.commit()
            self._conn = conn
        s = Session(bind=self._conn, expire_on_commit=False)
        try:
            with s.begin():
                yield s
        finally:
            s.close()

    def close(self) -> None:
        """The connection given back to the pool (with the web's timeout on SQLite)."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if self._busy_before is not None:
                conn.exec_driver_sql(f"PRAGMA busy_timeout={self._busy_before}")
                conn.commit()
        finally:
            conn.close()

    @property
    def queue(self):
        if self._queue is None:
            from forms_service.desk import queue as desk_queue
            self._queue = desk_queue.get_queue(self.settings)
        return self._queue

    # -- the parts
    def field(self, name: str, value: str) -> None:
        if name != "territoire":
            return
        value = value.strip() or None
        if self.batch_id is not None and value:
            with self._session() as s:
                own = s.get(Batch, self.batch_id).territoire
            if value != own:
                raise Forbidden("Ce territoire n'est pas le vôtre", path="territoire",
                                rule="territoire_refuse")
        self.territoire = value or self.territoire

    def begin_file(self, filename: str | None) -> None:
        batches.check_count(self.count + 1)
        if self.streaming is None:
            p = self.principal
            self.streaming = bool(self.territoire or (p.territoire and not p.is_admin))
            if self.streaming:
                with self._session() as s:
                    self.batch_id = batches.open_batch(s, p, self.territoire, source=self.source,
                                                       receiving=True).id
        self._name = filename or f"fichier-{self.count + 1}"
        self._spool = storage.Spool(self.settings,
                                    limit=None if self.limit is None else self.limit - self.stored)

    def data(self, chunk: bytes) -> None:
        self._spool.write(chunk)

    def end_file(self) -> None:
        kept = self._spool.keep()
        self._spool = None
        position = self.count
        self.count += 1
        self.stored += kept[2]
        if not self.streaming:
            self._later.append((self._name, kept))
            return
        with self._session() as s:
            batch = s.get(Batch, self.batch_id)
            # the earlier file of these bytes in this upload, if any (not every earlier file)
            digest = kept[0]
            seen = {digest: s.get(BatchFile, self._seen[digest])} if digest in self._seen else {}
            row = batches.add_file(s, self.settings, self.principal, batch, position, self._name, kept, seen)
            self._seen.setdefault(row.sha256, row.id)
            s.execute(update(Batch).where(Batch.id == batch.id)
                      .values(pages_total=Batch.pages_total + max(row.page_count, 1)))
            row_id, kind, pending = row.id, row.kind, row.status == "pending"
        if kind in IMAGE_KINDS:
            if pending:
                self._images.append(row_id)
            return
        self._flush_images()   # a run of photos ends: read together, while the rest arrives
        if pending:
            self.queue.enqueue_read(self.batch_id, [row_id])   # read while the rest arrives

    def _flush_images(self) -> None:
        if self._images:
            self.queue.enqueue_read(self.batch_id, self._images)
            self._images = []

    # -- the end
    def finish(self) -> Batch:
        """Every part received: the batch closed (or, the end-made case, made)."""
        if not self.count:
            raise BadRequest("Aucun fichier reçu (champ « files »)", path="files", rule="fichier_manquant")
        if not self.streaming:
            return self._make_at_end()
        return self._close(interrupted=False)

    def abort(self) -> None:
        """The upload broke: the part under way dropped, the files received whole kept."""
        if self._spool is not None:
            self._spool.discard()
            self._spool = None
        if self.batch_id is None:
            return
        try:
            self._close(interrupted=True)
        except Exception as exc:   # the sweep reads its committed files; the batch waits
            log.error("batch_close_failed", batch=self.batch_id, error=type(exc).__name__)

    def _close(self, *, interrupted: bool) -> Batch:
        with self._session() as s:
            batch = s.get(Batch, self.batch_id)
            batches.close_batch(s, self.principal, batch, files=self.count, source=self.source,
                                interrupted=interrupted)
            s.expunge(batch)
        self._flush_images()
        log.info("batch_received", batch=batch.id, files=self.count, pages=batch.pages_total,
                 source=self.source, streamed=True, interrupted=interrupted)
        return batch

    def _make_at_end(self) -> Batch:
        with self._session() as s:
            batch = batches.open_batch(s, self.principal, self.territoire, source=self.source)
            seen: dict[str, BatchFile] = {}
            for position, (name, kept) in enumerate(self._later):
                batches.add_file(s, self.settings, self.principal, batch, position, name, kept, seen)
            batches.close_batch(s, self.principal, batch, files=self.count, source=self.source)
            jobs = batches.read_jobs(s, batch.id)
            s.expunge(batch)
        for file_ids in jobs:
            self.queue.enqueue_read(batch.id, file_ids)
        log.info("batch_received", batch=batch.id, jobs=len(jobs), pages=batch.pages_total,
                 source=self.source, streamed=False)
        return batch


def read_multipart(stream, boundary: bytes, receiver: Receiver) -> Batch:
    """Feed ``receiver`` the parts of a ``multipart/form-data`` body as they arrive
    (Werkzeug's sans-IO decoder); returns the batch once the body has ended. A body that
    breaks: :meth:`Receiver.abort`, then 400 « Envoi interrompu » (or the limit's error)."""
    try:
        return _read_multipart(stream, boundary, receiver)
    finally:
        receiver.close()


def _read_multipart(stream, boundary: bytes, receiver: Receiver) -> Batch:
    from werkzeug.exceptions import HTTPException
    from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

    decoder = MultipartDecoder(boundary)   # its memory limit counts its buffer: the fields' is below
    part, field, ended = None, bytearray(), False
    try:
        while not ended:
            chunk = stream.read(READ)
            decoder.receive_data(chunk or None)
            event = decoder.next_event()
            while not isinstance(event, NeedData):
                if isinstance(event, Epilogue):
                    ended = True
                    break
                if isinstance(event, File) and event.name == "files":
                    part = "file"
                    receiver.begin_file(event.filename)
                elif isinstance(event, (Field, File)):
                    part = "field" if isinstance(event, Field) else None
                    field.clear()
                    name = event.name
                elif isinstance(event, Data):
                    if part == "file":
                        receiver.data(event.data)
                        if not event.more_data:
                            receiver.end_file()
                    elif part == "field":
                        field.extend(event.data)
                        if len(field) > MAX_FIELD_BYTES:
                            raise BadRequest("Champ de formulaire trop long", path=name, rule="champ_trop_long")
                        if not event.more_data:
                            receiver.field(name, field.decode("utf-8", "replace"))
                event = decoder.next_event()
            if not chunk and not ended:
                raise ValueError("body ended before its last boundary")
    except (ValueError, HTTPException, OSError) as exc:
        receiver.abort()
        if isinstance(exc, HTTPException) and exc.code == 413:
            raise
        log.warning("batch_upload_broken", batch=receiver.batch_id, files=receiver.count,
                    error=type(exc).__name__)
        raise BadRequest(_broken_message(receiver), path="files", rule="envoi_interrompu") from exc
    except BaseException:
        receiver.abort()
        raise
    return receiver.finish()


def _broken_message(receiver: Receiver) -> str:
    if receiver.batch_id is None:
        return "Envoi interrompu : aucun lot n'a été gardé"
    return (f"Envoi interrompu : les {receiver.count} fichier(s) reçu(s) en entier sont gardés "
            f"dans le lot {receiver.batch_id}")


__all__ = ["Receiver", "read_multipart"]

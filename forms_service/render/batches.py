"""Issuing rendered documents: all of a request's documents, or none of them.

``RenderService`` renders every document of a request first (in memory, nothing
recorded), then hands them to :func:`issue`, which

1. writes each file under a temporary name (``<document id>.<fmt>.part``);
2. in ONE database transaction adds every ``IssuedDocument`` row, its audit event
   (``document.rendu``) and, when the caller sent an ``Idempotency-Key``, the key's
   row (the request's hash and the ids issued);
3. after the commit, renames the files to their final names. On any failure before
   the commit the temporary files are removed: nothing is issued.

A process killed between the commit and the renames leaves ``.part`` files whose rows
exist; :func:`recover_storage` (run when the app starts) renames them, and removes the
``.part`` files no row names (a request interrupted before its commit).

Idempotency: a retry with the same key, by the same actor, for the same request
(:func:`request_hash`) returns the documents first issued — same ids, same bytes, read
back from storage — and issues nothing; the same key with another request is refused
(409, :class:`~forms_service.errors.IdempotencyConflict`). Two concurrent requests with
one key: the second's commit fails on the key's primary key, its files are removed and
it answers like a retry.

A key lives :data:`KEY_LIFETIME` (24 hours, as payment APIs keep theirs): a retry comes
within minutes, and a key older than that names a new request. Expired keys are deleted
when a new key is written (no periodic job needed), so the table holds a day of keys.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forms_service.errors import BadRequest, IdempotencyConflict, Problem
from forms_service.logging_setup import get_logger

log = get_logger(__name__)

PART_SUFFIX = ".part"
#: A ``.part`` file no row names is removed at start-up only when older than this
#: (another process sharing the storage may be issuing it right now; a request's files
#: live a few seconds between their writing and its commit).
STALE_PART_SECONDS = 300
_KEY_RE = re.compile(r"^[\x21-\x7e]{1,128}$")
#: How long an ``Idempotency-Key`` names its request.
KEY_LIFETIME = dt.timedelta(hours=24)


def _expired(created_at: dt.datetime | None, now: dt.datetime | None = None) -> bool:
    if created_at is None:
        return False
    if created_at.tzinfo is None:          # SQLite keeps the UTC time without its zone
        created_at = created_at.replace(tzinfo=dt.timezone.utc)
    return created_at < (now or dt.datetime.now(dt.timezone.utc)) - KEY_LIFETIME


@dataclass(frozen=True)
class Idempotency:
    """A caller's ``Idempotency-Key`` and the hash of the request it names."""

    key: str
    actor: str
    request_hash: str


def idempotency(key: str | None, actor: str, **request: Any) -> Idempotency | None:
    """The request's :class:`Idempotency` (``None`` without a key); 400 for a key that
    is not 1 to 128 printable ASCII characters."""
    if key is None:
        return None
    if not _KEY_RE.match(key):
        raise BadRequest("En-tête Idempotency-Key invalide : 1 à 128 caractères ASCII imprimables",
                         path="Idempotency-Key", rule="cle_idempotence_invalide")
    return Idempotency(key, actor, request_hash(**request))


def request_hash(**request: Any) -> str:
    text = json.dumps(request, sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                      default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def final_path(storage_dir: Path, form_id: str, document_id: str, fmt: str,
               day: dt.date | None = None) -> Path:
    """``<storage_dir>/<form>/<yyyy>/<mm>/<document id>.<fmt>``."""
    day = day or dt.date.today()
    return Path(storage_dir).resolve() / form_id / f"{day:%Y}" / f"{day:%m}" / f"{document_id}.{fmt}"


def _part(path: Path) -> Path:
    return path.with_name(path.name + PART_SUFFIX)


def replay(session, idem: Idempotency | None) -> dict | None:
    """The stored response of ``idem``'s key (``None`` if the key is new); 409 when the
    key named another request."""
    from forms_service import db

    if idem is None:
        return None
    row = session.get(db.IdempotencyKey, (idem.actor, idem.key))
    if row is None or _expired(row.created_at):
        return None
    if row.request_hash != idem.request_hash:
        raise IdempotencyConflict(
            "Cette clé Idempotency-Key a déjà servi pour une autre requête : envoyez une "
            "nouvelle clé pour de nouvelles données", path="Idempotency-Key")
    return dict(row.response)


def issue(docs: Sequence, *, storage_dir: Path, actor: str, idem: Idempotency | None,
          event: Callable[[Any], dict], row: Callable[[Any, str], Any]) -> dict | None:
    """Store and record ``docs`` (``RenderedDocument``s) all together; see the module
    docstring. ``row(doc, path)`` builds a document's ``IssuedDocument``; ``event(doc)``
    its audit event's detail. Returns ``None`` when issued, or the stored response of an
    idempotency key committed meanwhile by a concurrent request (nothing issued)."""
    from sqlalchemy import delete as sa_delete
    from sqlalchemy.exc import IntegrityError

    from forms_service import db
    from forms_service.audit import record_event

    paths: list[Path] = []
    parts: list[Path] = []
    try:
        for doc in docs:
            path = final_path(storage_dir, doc.form_id, doc.document_id, doc.format)
            path.parent.mkdir(parents=True, exist_ok=True)
            part = _part(path)
            parts.append(part)
            with open(part, "wb") as fh:
                fh.write(doc.content)
                fh.flush()
                os.fsync(fh.fileno())
            paths.append(path)
        with db.session() as s:
            for doc, path in zip(docs, paths):
                s.add(row(doc, str(path)))
                s.flush()  # the audit event follows its document (foreign-key order)
                record_event(actor, "document.rendu", form_id=doc.form_id,
                             document_id=doc.document_id, session=s, **event(doc))
            if idem is not None:
                cutoff = dt.datetime.now(dt.timezone.utc) - KEY_LIFETIME
                s.execute(sa_delete(db.IdempotencyKey).where(db.IdempotencyKey.created_at < cutoff))
                s.add(db.IdempotencyKey(actor=idem.actor, key=idem.key,
                                        request_hash=idem.request_hash,
                                        response=response_of(docs)))
    except IntegrityError:
        _remove(parts)
        if idem is None:
            raise
        with db.session() as s:
            stored = replay(s, idem)
        if stored is None:
            raise
        log.info("idempotency_concurrent_retry", actor=actor, documents=len(stored["documents"]))
        return stored
    except BaseException:
        _remove(parts)
        raise
    for part, path in zip(parts, paths):
        os.replace(part, path)
    for doc, path in zip(docs, paths):
        doc.file_path = str(path)
    return None


def response_of(docs: Sequence) -> dict:
    return {"form_id": docs[0].form_id if docs else None,
            "format": docs[0].format if docs else None,
            "documents": [{"document_id": d.document_id, "filename": d.filename,
                           "findings": d.findings_json()} for d in docs]}


def load_documents(stored: dict, make: Callable[..., Any]) -> list:
    """The documents of a stored response, read back from the database and storage:
    ``make(row, content, filename, findings)`` builds each ``RenderedDocument``."""
    from forms_service import db

    out = []
    with db.session() as s:
        for entry in stored["documents"]:
            issued = s.get(db.IssuedDocument, entry["document_id"])
            path = Path(issued.file_path)
            content = path.read_bytes() if path.exists() else _part(path).read_bytes()
            findings = [Problem(f["path"], f["rule"], f["message"], f.get("severity", "error"))
                        for f in entry["findings"]]
            out.append(make(issued, content, entry["filename"], findings))
    return out


def recover_storage(storage_dir: Path, *, stale_seconds: float = STALE_PART_SECONDS) -> dict:
    """Finish or undo what an interrupted process left: a ``.part`` file whose document
    row exists is renamed to its final name; one no row names is removed (when older
    than ``stale_seconds``). Returns the counts (logged)."""
    from forms_service import db

    root = Path(storage_dir)
    counts = {"renamed": 0, "removed": 0}
    if not root.exists():
        return counts
    now = time.time()
    with db.session() as s:
        for part in root.rglob(f"*{PART_SUFFIX}"):
            final = part.with_name(part.name.removesuffix(PART_SUFFIX))
            document_id = final.name.split(".", 1)[0]
            issued = s.get(db.IssuedDocument, document_id)
            if issued is not None and Path(issued.file_path) == final.resolve():
                os.replace(part, final)
                counts["renamed"] += 1
            elif now - part.stat().st_mtime >= stale_seconds:
                part.unlink(missing_ok=True)
                counts["removed"] += 1
    if counts["renamed"] or counts["removed"]:
        log.warning("storage_recovered", **counts)
    return counts


def _remove(parts: list[Path]) -> None:
    for part in parts:
        part.unlink(missing_ok=True)

"""Identical page images across files and batches: a true duplicate, wherever it was received.

    snapshot = submitter_of(principal)            # kept on the batch when it is received
    earlier = earlier_pages(session, batch, {page: sha}, exclude_files=[…])

Only a scanned page has an image of its own (a scan, a photo, a scanner's PDF: one
picture per page); a digital PDF's pages are not hashed (two filled copies of one form
render alike without their field values). The hashes are the reader's own digests of the
pages it decoded (``parsers.parse.Limits.page_digests``, :mod:`parsers.scan.batch`): no
page is decoded a second time for them. Within one file the reader recognises the same
image itself; across files and batches, each page's hash is kept
in the database (``batch_page.image_sha256``, indexed) and a page whose image an earlier
page already had — in a batch the submitter may see (the access policy, on the submitter
taken on receipt) — is a duplicate of it, not read into a second record.

Two jobs writing twin pages at the very same moment cannot both keep them: the writer
locks each image hash before it looks for an earlier page (:func:`lock_images`), and
holds the lock until its transaction ends — on PostgreSQL a transaction-level advisory
lock per hash (the second writer waits, then sees the first one's pages committed: READ
COMMITTED takes a new snapshot at each statement); on SQLite the database's write lock,
which the writing transaction holds from its first write on (the files' rows are updated
before any lookup), so writers follow one another.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from forms_service import access
from forms_service.desk.models import Batch, BatchFile, BatchPage
from forms_service.principal import Principal


def submitter_of(p: Principal) -> dict:
    """What the access policy needs of a batch's submitter, as JSON."""
    return {"actor": p.actor, "user_id": p.user_id, "roles": sorted(p.roles), "territoire": p.territoire,
            "organisme": p.organisme, "scopes": None if p.scopes is None else sorted(p.scopes),
            "open_mode": p.open_mode}


def submitter(batch: Batch) -> Principal:
    """The batch's submitter as taken on receipt (a batch without one: its own batches only)."""
    s = batch.submitter
    if not s:
        return Principal(actor=batch.created_by)
    return Principal(actor=s["actor"], user_id=s.get("user_id"), roles=frozenset(s.get("roles") or ()),
                     territoire=s.get("territoire"), organisme=s.get("organisme"),
                     scopes=None if s.get("scopes") is None else frozenset(s["scopes"]),
                     open_mode=bool(s.get("open_mode")))


def lock_images(session: Session, hashes) -> None:
    """Hold, until the transaction ends, the lock of every image hash in ``hashes``
    (PostgreSQL: ``pg_advisory_xact_lock``, in a fixed order so two writers never
    deadlock; SQLite: the write lock is already held, nothing to do)."""
    from sqlalchemy import text

    if session.get_bind().dialect.name != "postgresql":
        return
    for key in sorted({int(h[:15], 16) for h in hashes if h}):   # 60 bits: a bigint
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


def earlier_pages(session: Session, batch: Batch, hashes: dict[int, str], *,
                  exclude_files: list[int]) -> dict[int, BatchPage]:
    """For each page id of ``hashes`` (page id → image hash), the first earlier page with
    the same image, outside ``exclude_files`` (the job's own: the reader's business), in a
    batch the submitter may see; pages without one are left out."""
    wanted = {h for h in hashes.values() if h}
    if not wanted:
        return {}
    rows = session.scalars(
        select(BatchPage).join(Batch, Batch.id == BatchPage.batch_id)
        .where(BatchPage.image_sha256.in_(wanted), BatchPage.file_id.not_in(exclude_files),
               BatchPage.duplicate_of_page_id.is_(None), BatchPage.status.not_in(("pending", "error")),
               access.batch_condition(submitter(batch)))
        .order_by(BatchPage.id)).all()
    first: dict[str, BatchPage] = {}
    for row in rows:
        first.setdefault(row.image_sha256, row)
    return {pid: first[h] for pid, h in hashes.items() if h in first}


def describe(session: Session, page: BatchPage) -> dict:
    """``{"batch", "file", "file_page"}`` of a page (``duplicate_of`` in the batch's view)."""
    position = session.scalar(select(BatchFile.position).where(BatchFile.id == page.file_id))
    return {"batch": page.batch_id, "file": position, "file_page": page.file_page}

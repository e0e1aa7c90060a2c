"""Long render batches on the task queue (issue 11): the same code path, in a worker.

    job = submit(settings, actor, form_id, items, fmt="pdf", key=idempotency_key)   # kept, queued
    view = job_view(session, principal, job_id)     # GET /api/v1/render-jobs/<id>
    docs = job_documents(job)                       # the issued documents, read back (archive)

A batch of more than ``RENDER_ASYNC_THRESHOLD`` items is answered 202 with a job; a queue
worker (``forms-service worker``, the one ``serve`` starts) runs it through
:meth:`RenderService.render_batch` — every item checked first, all documents issued in one
transaction or none (:mod:`forms_service.render.batches`). The job's idempotency key (the
caller's ``Idempotency-Key``, else ``job:<id>``) makes the job itself idempotent: run twice
(a retry, a worker killed after the commit), it issues its documents once. A POST sent
again with the same key finds the same job (the same request) or is refused (409).

Every item is checked before the job is kept (:meth:`RenderService.check_batch`): an
invalid batch is a 422 at once, with the errors a synchronous batch answers. While it
runs, a job holds a lease naming its worker (:mod:`forms_service.desk.leases`); a job whose
worker was killed (``kill -9``) or whose lease expired, and a job still queued long after
it was kept (its queue message lost), is queued again by :func:`sweep` — at every
consumer's start and every minute, as the desk's reading jobs are.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from forms_service import db
from forms_service.config import Settings
from forms_service.desk import leases
from forms_service.desk.queue import at_start, get_queue, handler, periodic
from forms_service.errors import FormsError, NotFound
from forms_service.logging_setup import get_logger
from forms_service.principal import Principal
from forms_service.render import batches
from forms_service.render.job_models import RenderJob
from forms_service.worker_apps import worker_app

log = get_logger(__name__)

MSG_JOB = "Travail de rendu introuvable"
#: A running job's lease (another host's worker is trusted this long; this host's, while it runs).
LEASE = timedelta(minutes=30)
#: A job still queued this long after it was kept is queued again (its message was lost).
LOST_AFTER = timedelta(minutes=2)


def submit(settings: Settings, actor: str, form_id: str, items: list, *, fmt: str, fillable: bool,
           strict: bool, key: str | None) -> RenderJob:
    """Check every item (the batch's errors, as a synchronous batch: 422...), then keep
    the request as a job (or find the job this key already made) and queue it. In the
    app's context (the request's)."""
    from forms_service.render.service import get_service

    get_service().check_batch(form_id, items, fmt=fmt, fillable=fillable, strict=strict)
    idem = batches.idempotency(key, actor, kind="batch-job", form=form_id, format=fmt,
                               fillable=fillable, strict=strict, data=items)
    request_hash = batches.request_hash(kind="batch-job", form=form_id, format=fmt,
                                        fillable=fillable, strict=strict, data=items)
    with db.session() as s:
        if idem is not None:
            earlier = s.scalars(select(RenderJob).where(RenderJob.actor == actor,
                                                        RenderJob.idempotency_key == key)).first()
            if earlier is not None:
                if earlier.request_hash != idem.request_hash:
                    from forms_service.errors import IdempotencyConflict
                    raise IdempotencyConflict(
                        "Cette clé Idempotency-Key a déjà servi pour une autre requête : envoyez une "
                        "nouvelle clé pour de nouvelles données", path="Idempotency-Key")
                s.expunge(earlier)
                return earlier
        job = RenderJob(actor=actor, form_id=form_id, format=fmt, fillable=fillable, strict=strict,
                        items=items, idempotency_key=key, request_hash=request_hash, status="queued")
        s.add(job)
        s.flush()
        s.expunge(job)
    get_queue(settings).enqueue("render_batch", job.id)
    log.info("render_job_queued", job=job.id, form_id=form_id, items=len(items))
    return job


def get_job(session: Session, principal: Principal, job_id: int) -> RenderJob:
    """The job, for its requester and administrators; 404 otherwise."""
    job = session.get(RenderJob, job_id)
    if job is None or not (principal.is_admin or job.actor == principal.actor):
        raise NotFound(MSG_JOB, path="travail")
    return job


def job_view(session: Session, principal: Principal, job_id: int) -> dict:
    job = get_job(session, principal, job_id)
    out = {"id": job.id, "status": job.status, "form_id": job.form_id, "format": job.format,
           "items": len(job.items), "created_at": job.created_at.isoformat(),
           "finished_at": job.finished_at.isoformat() if job.finished_at else None,
           "documents": None, "errors": job.errors, "archive": None}
    if job.status == "done" and job.response:
        out["documents"] = [{"document_id": d["document_id"], "filename": d["filename"]}
                            for d in job.response["documents"]]
        out["archive"] = f"/api/v1/render-jobs/{job.id}/archive"
    return out


def job_documents(job: RenderJob) -> list:
    """The documents a done job issued, read back from the database and storage."""
    from forms_service.render.service import RenderService
    return RenderService._documents_of(job.response)


# -- the worker's side (its app: forms_service.worker_apps) -------------------------------

def run(settings: Settings, job_id: int) -> None:
    """Render a queued job through the batches' code path; idempotent."""
    from forms_service.render.service import get_service

    app = worker_app(settings)
    me = leases.me()
    with app.app_context():
        with db.session() as s:
            job = s.scalars(select(RenderJob).where(RenderJob.id == job_id).with_for_update()).first()
            if job is None or job.status in ("done", "failed"):
                return
            now = db.models.utcnow()
            if job.status == "running" and leases.held(job.claimed_by, job.claimed_until, now, by=me):
                return   # another live worker renders it
            job.status, job.claimed_by, job.claimed_until = "running", me, now + LEASE
            s.flush()
            s.expunge(job)
        try:
            docs = get_service(app).render_batch(job.form_id, job.items, fmt=job.format,
                                                 fillable=job.fillable, strict=job.strict, actor=job.actor,
                                                 idempotency_key=job.idempotency_key or f"job:{job.id}")
        except FormsError as exc:   # what a synchronous batch would have answered
            _finish(job.id, errors=exc.as_body()["errors"], status=exc.http_status)
            log.info("render_job_failed", job=job.id, rule=exc.problems[0].rule if exc.problems else None)
            return
        _finish(job.id, response=batches.response_of(docs))
        log.info("render_job_done", job=job.id, documents=len(docs))


def _finish(job_id: int, *, response: dict | None = None, errors: list | None = None,
            status: int | None = None) -> None:
    with db.session() as s:
        job = s.get(RenderJob, job_id)
        job.status = "failed" if errors else "done"
        job.response, job.errors, job.error_status = response, errors, status
        job.finished_at = db.models.utcnow()
        job.claimed_by = job.claimed_until = None


def sweep(database: db.Database) -> list[int]:
    """The jobs to queue again: running with their worker gone or their lease expired,
    or still queued long after they were kept."""
    now = db.models.utcnow()
    with database.session() as s:
        rows = s.execute(select(RenderJob.id, RenderJob.status, RenderJob.claimed_by,
                                RenderJob.claimed_until, RenderJob.created_at)
                         .where(or_(RenderJob.status == "running", RenderJob.status == "queued"))).all()
    lost = [jid for jid, status, holder, until, created in rows
            if (status == "running" and leases.lost(holder, until, now))
            or (status == "queued" and leases.aware(created) + LOST_AFTER < now)]
    if lost:
        log.info("render_jobs_sweep", jobs=len(lost))
    return lost


@handler("render_batch")
def _render_task(queue, job_id: int) -> None:
    run(queue.settings, job_id)


@handler("render_sweep")
@periodic
def _sweep_task(queue) -> None:
    from forms_service.desk.reading import Worker   # the consumer's database
    for job_id in sweep(Worker.get(queue.settings).database):
        queue.enqueue("render_batch", job_id)


@at_start
def _sweep_at_start(queue) -> None:
    queue.enqueue("render_sweep")


__all__ = ["get_job", "job_documents", "job_view", "run", "submit", "sweep"]

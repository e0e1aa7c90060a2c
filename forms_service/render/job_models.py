"""The table of long render batches run on the task queue (issue 11): ``render_job``.

A batch of more than ``RENDER_ASYNC_THRESHOLD`` items sent to ``POST
/api/v1/forms/<id>/render-batch`` is kept here (its request: form, format, options, data)
and rendered by a queue worker through the same code path as a synchronous batch
(:meth:`RenderService.render_batch`: all issued or none, ``Idempotency-Key`` kept); the
caller polls ``GET /api/v1/render-jobs/<id>`` (:mod:`forms_service.render.jobs`). A job
holds a lease naming its worker while it runs (migration 0013), so that a job whose worker
was killed is run again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, CheckConstraint, DateTime, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from forms_service.db.models import Base, JSONType, utcnow

JOB_STATUSES = ("queued", "running", "done", "failed")


class RenderJob(Base):
    __tablename__ = "render_job"
    __table_args__ = (
        CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name="ck_render_job_status"),
        # a retry of the POST with the same Idempotency-Key finds its job again
        UniqueConstraint("actor", "idempotency_key", name="uq_render_job_actor_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: Who asked (the audit actor): only they (and administrators) see the job.
    actor: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    form_id: Mapped[str] = mapped_column(String(64))
    format: Mapped[str] = mapped_column(String(8))
    fillable: Mapped[bool] = mapped_column(Boolean, default=False)
    strict: Mapped[bool] = mapped_column(Boolean, default=False)
    items: Mapped[list[Any]] = mapped_column(JSONType)
    idempotency_key: Mapped[str | None] = mapped_column(String(128), nullable=True)
    #: sha256 of the request (a key sent again with another request is refused, 409).
    request_hash: Mapped[str] = mapped_column(String(64))
    #: When done: {"form_id", "format", "documents": [{"document_id", "filename", "findings"}]}.
    response: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    #: When failed: [{"path", "rule", "message"}] (French), as a synchronous batch answers.
    errors: Mapped[list[dict] | None] = mapped_column(JSONType, nullable=True)
    #: The HTTP status a synchronous batch would have answered with (422, 503...).
    error_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: The worker rendering it (``host:pid:start``) and until when: a running job whose
    #: worker is gone or whose lease expired is queued again (``render.jobs.sweep``).
    claimed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

"""the desk's page images across batches, who submitted a batch, render jobs (issue 11)

Revision ID: 0012
Revises: 0008
Create Date: 2026-12-01

- ``batch_page.image_sha256`` (indexed): the SHA-256 of a scanned page's image, so that an
  identical page image received in another file or batch is a duplicate;
  ``batch_page.duplicate_of_page_id``: the earlier page it is identical to.
- ``batch.submitter``: the submitter as the access policy sees them (a snapshot taken on
  receipt), so that a worker looks for an earlier page only among what they may see.
- ``render_job``: long render batches run on the task queue (``forms_service.render.job_models``).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("batch_page", sa.Column("image_sha256", sa.String(length=64), nullable=True))
    op.add_column("batch_page", sa.Column("duplicate_of_page_id", sa.Integer(), nullable=True))
    op.create_index("ix_batch_page_image_sha256", "batch_page", ["image_sha256"])
    op.add_column("batch", sa.Column("submitter", JSONType, nullable=True))
    op.create_table(
        "render_job",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("form_id", sa.String(length=64), nullable=False),
        sa.Column("format", sa.String(length=8), nullable=False),
        sa.Column("fillable", sa.Boolean(), nullable=False),
        sa.Column("strict", sa.Boolean(), nullable=False),
        sa.Column("items", JSONType, nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=True),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("response", JSONType, nullable=True),
        sa.Column("errors", JSONType, nullable=True),
        sa.Column("error_status", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name="ck_render_job_status"),
        sa.UniqueConstraint("actor", "idempotency_key", name="uq_render_job_actor_key"),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("render_job")
    op.drop_column("batch", "submitter")
    op.drop_index("ix_batch_page_image_sha256", table_name="batch_page")
    op.drop_column("batch_page", "duplicate_of_page_id")
    op.drop_column("batch_page", "image_sha256")

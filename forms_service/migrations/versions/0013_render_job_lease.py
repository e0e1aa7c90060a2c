"""render jobs hold a lease naming their worker, so that a killed worker's job is run again (issue 11)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01

- ``render_job.claimed_by`` (``host:pid:start`` of the worker rendering it) and
  ``render_job.claimed_until``: a ``running`` job whose worker is gone (``kill -9``) or
  whose lease expired is queued again by the sweep (at every consumer's start, then every
  minute), as the desk's reading jobs are.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("render_job", sa.Column("claimed_by", sa.String(length=128), nullable=True))
    op.add_column("render_job", sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("render_job") as batch:
        batch.drop_column("claimed_until")
        batch.drop_column("claimed_by")

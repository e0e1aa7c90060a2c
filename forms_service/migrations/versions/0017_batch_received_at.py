"""batches: when the last file of a batch was received (issue 11's speed)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01

- ``batch.received_at``: a batch received over HTTP is stored, committed and queued file
  by file while its upload goes on (``desk/receiving.py``), so its first files are read
  before its last ones arrive. It is not ``done`` before ``received_at`` is set (the
  upload finished, or broke: then it keeps the files received whole). Batches made
  before this revision were received whole: their ``created_at``.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("batch") as t:
        t.add_column(sa.Column("received_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE batch SET received_at = created_at")


def downgrade() -> None:
    with op.batch_alter_table("batch") as t:
        t.drop_column("received_at")

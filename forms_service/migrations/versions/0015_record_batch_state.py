"""records: a batch's records' ids and states from an index alone (issue 11's speed)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01

- ``ix_record_batch_state`` on ``record (batch_id, id, status, review)``: a batch's
  progress (``GET /api/v1/batches/<id>``, polled while it is read) counts its records by
  state. On SQLite a row's later columns are read past its ``record`` JSON (tens of kB,
  overflow pages), so without a covering index every poll read every record's JSON.
"""
from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_record_batch_state", "record", ["batch_id", "id", "status", "review"])


def downgrade() -> None:
    op.drop_index("ix_record_batch_state", table_name="record")

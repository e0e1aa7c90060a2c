"""webhook events: when each was handed to the task queue (issue 13)

Revision ID: 0014
Revises: 0012
Create Date: 2026-12-01

- ``webhook_event.queued_at``: set once the event is on the task queue (after its
  transition's commit, or by a replay); an event left without it (the queue was down, the
  process died between the commit and the queue) is queued again by the periodic sweep
  (``forms_service.webhooks.sweep``). The events already there are taken as queued.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("webhook_event", sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE webhook_event SET queued_at = created_at")
    op.create_index("ix_webhook_event_unqueued", "webhook_event", ["created_at"],
                    postgresql_where=sa.text("queued_at IS NULL"),
                    sqlite_where=sa.text("queued_at IS NULL"))


def downgrade() -> None:
    op.drop_index("ix_webhook_event_unqueued", table_name="webhook_event")
    op.drop_column("webhook_event", "queued_at")

"""webhooks: the events to send and the delivery log (issue 13, « other systems »)

Revision ID: 0010
Revises: 0008 (the integrator re-chains it after the other phase-3 revisions)
Create Date: 2026-12-01

Written by hand from forms_service/webhooks/models.py (WebhookEvent, WebhookDelivery).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_event",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("demande_id", sa.Integer(), nullable=True),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["demande_id"], ["demande.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_webhook_event_demande_id", "webhook_event", ["demande_id"])
    op.create_index("ix_webhook_event_created_at", "webhook_event", ["created_at"])
    op.create_table(
        "webhook_delivery",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("delivery", sa.String(length=36), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(length=255), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("requested_by", sa.String(length=128), nullable=False),
        sa.CheckConstraint("attempt >= 1", name="ck_webhook_delivery_attempt"),
        sa.CheckConstraint("status_code IS NULL OR (status_code >= 100 AND status_code <= 599)",
                           name="ck_webhook_delivery_status"),
        sa.ForeignKeyConstraint(["event_id"], ["webhook_event.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("delivery", "attempt", name="uq_webhook_delivery_attempt"),
    )
    op.create_index("ix_webhook_delivery_event_id", "webhook_delivery", ["event_id"])
    op.create_index("ix_webhook_delivery_delivery", "webhook_delivery", ["delivery"])


def downgrade() -> None:
    op.drop_index("ix_webhook_delivery_delivery", table_name="webhook_delivery")
    op.drop_index("ix_webhook_delivery_event_id", table_name="webhook_delivery")
    op.drop_table("webhook_delivery")
    op.drop_index("ix_webhook_event_created_at", table_name="webhook_event")
    op.drop_index("ix_webhook_event_demande_id", table_name="webhook_event")
    op.drop_table("webhook_event")

"""the circuit's outgoing e-mails, written in their transaction (a transactional outbox)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01

- ``outgoing_mail``: one row per message, written with the change it tells of, handed to
  the task queue after the commit, swept again when it never got there, claimed by one
  delivery at a time and never sent again once ``sent_at`` is set
  (``forms_service.circuit.mailing``). Before, a message was handed to the queue after its
  transaction: a process that died in between lost it, and a structure's copy whose
  printer died after the queue but before its document was recorded went twice.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outgoing_mail",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("about", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.String(255), nullable=True),
        sa.CheckConstraint("attempts >= 0", name="ck_outgoing_mail_attempts"),
        sa.CheckConstraint("sent_at IS NULL OR claimed_at IS NULL", name="ck_outgoing_mail_sent"),
    )
    op.create_index("ix_outgoing_mail_unsent", "outgoing_mail", ["created_at"],
                    postgresql_where=sa.text("sent_at IS NULL"),
                    sqlite_where=sa.text("sent_at IS NULL"))


def downgrade() -> None:
    op.drop_index("ix_outgoing_mail_unsent", table_name="outgoing_mail")
    op.drop_table("outgoing_mail")

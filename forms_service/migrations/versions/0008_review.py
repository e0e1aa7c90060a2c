"""the review queue's decisions (issue 11, the desk's review)

Revision ID: 0008
Revises: 0005
Create Date: 2026-12-01

Written by hand from forms_service/desk/review_models.py (ReviewDecision). Chained on
the desk's tables (0005); the integrator re-chains it after 0006/0007 if they land first.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "review_decision",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=True),
        sa.Column("batch_page_id", sa.Integer(), nullable=True),
        sa.Column("item", sa.String(length=255), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("sampled", sa.Boolean(), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("outcome IN ('confirme', 'corrige')", name="ck_review_decision_outcome"),
        sa.CheckConstraint("(record_id IS NULL) <> (batch_page_id IS NULL)",
                           name="ck_review_decision_subject"),
        sa.ForeignKeyConstraint(["record_id"], ["record.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["batch_page_id"], ["batch_page.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_review_decision_record_id", "review_decision", ["record_id"])
    op.create_index("ix_review_decision_batch_page_id", "review_decision", ["batch_page_id"])


def downgrade() -> None:
    op.drop_index("ix_review_decision_batch_page_id", table_name="review_decision")
    op.drop_index("ix_review_decision_record_id", table_name="review_decision")
    op.drop_table("review_decision")

"""drafts of the référent's forms and the daily digest's preference (issue 14)

Revision ID: 0007
Revises: 0006 (the circuit's, merged in; the integrator re-chains after the other phase-2 revisions)
Create Date: 2026-12-01

Written by hand from forms_service/drafts (Draft) and forms_service/preferences (DigestPreference).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "draft",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=False),
        sa.Column("beneficiary_id", sa.Integer(), nullable=False),
        sa.Column("form_id", sa.String(length=64), nullable=False),
        sa.Column("data", JSONType, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["author_id"], ["user_account.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["beneficiary_id"], ["beneficiary.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_draft_author_id", "draft", ["author_id"])
    op.create_index("ix_draft_beneficiary_id", "draft", ["beneficiary_id"])
    op.create_table(
        "digest_preference",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("actif", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["user_account.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id"),
    )


def downgrade() -> None:
    op.drop_table("digest_preference")
    op.drop_index("ix_draft_beneficiary_id", table_name="draft")
    op.drop_index("ix_draft_author_id", table_name="draft")
    op.drop_table("draft")

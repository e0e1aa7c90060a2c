"""the équipe pluridisciplinaire's sessions and their agendas (issue 13)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01

Written by hand from forms_service/circuit/ep_models.py. A request is on at most one open
session's agenda: ep_passage.session_ouverte copies ep_session.ouverte through a composite
foreign key (ON UPDATE CASCADE), and a partial unique index allows one open passage per
request (SQLite and PostgreSQL alike).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ep_session",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("territoire", sa.String(length=32), nullable=False),
        sa.Column("date_seance", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lieu", sa.String(length=200), nullable=False),
        sa.Column("statut", sa.String(length=16), nullable=False),
        sa.Column("ouverte", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.CheckConstraint("statut IN ('annulee', 'planifiee', 'tenue')", name="ck_ep_session_statut"),
        sa.CheckConstraint("ouverte = (statut = 'planifiee')", name="ck_ep_session_ouverte"),
        sa.ForeignKeyConstraint(["territoire"], ["territory.code"], ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("id", "ouverte", name="uq_ep_session_id_ouverte"),
    )
    op.create_index("ix_ep_session_territoire", "ep_session", ["territoire"])
    op.create_index("ix_ep_session_date_seance", "ep_session", ["date_seance"])
    op.create_table(
        "ep_passage",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("session_ouverte", sa.Boolean(), nullable=False),
        sa.Column("demande_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("avis_id", sa.Integer(), nullable=True),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("added_by", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(["session_id", "session_ouverte"],
                                ["ep_session.id", "ep_session.ouverte"],
                                onupdate="CASCADE", ondelete="CASCADE", name="fk_ep_passage_session"),
        sa.ForeignKeyConstraint(["demande_id"], ["demande.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["avis_id"], ["avis.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("session_id", "demande_id", name="uq_ep_passage_session_demande"),
    )
    op.create_index("ix_ep_passage_session_id", "ep_passage", ["session_id"])
    op.create_index("ix_ep_passage_demande_id", "ep_passage", ["demande_id"])
    op.create_index("uq_ep_passage_demande_ouverte", "ep_passage", ["demande_id"], unique=True,
                    sqlite_where=sa.text("session_ouverte"),
                    postgresql_where=sa.text("session_ouverte"))


def downgrade() -> None:
    op.drop_table("ep_passage")
    op.drop_table("ep_session")

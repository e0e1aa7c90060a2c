"""the Président's decision and the structures (issue 13): where a decided action CG goes
(structure_envoi), and the organismes' contact details printed on the fiche

Revision ID: 0011
Revises: 0008
Create Date: 2026-12-01

Written by hand from forms_service/circuit/structure_models.py (StructureEnvoi) and
forms_service/directory/models.py (Organisme's contact columns). The integrator re-chains
it after the other phase-3 migrations (0009, 0010) if they land first.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

CONTACTS = (("address", sa.Text()), ("animateur", sa.String(length=64)),
            ("telephone", sa.String(length=20)), ("fax", sa.String(length=20)),
            ("email", sa.String(length=254)))


def upgrade() -> None:
    with op.batch_alter_table("organisme") as batch:
        for name, type_ in CONTACTS:
            batch.add_column(sa.Column(name, type_, nullable=False, server_default=""))
    op.create_table(
        "structure_envoi",
        sa.Column("demande_id", sa.Integer(), nullable=False),
        sa.Column("organisme", sa.String(length=64), nullable=True),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("statut", sa.String(length=16), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("document_id", sa.String(length=26), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("mode IN ('compte', 'email', 'aucun')", name="ck_structure_envoi_mode"),
        sa.CheckConstraint("statut IN ('a_envoyer', 'envoye', 'echec')",
                           name="ck_structure_envoi_statut"),
        sa.ForeignKeyConstraint(["demande_id"], ["demande.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["organisme"], ["organisme.code"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("demande_id"),
        sa.UniqueConstraint("document_id", name="uq_structure_envoi_document_id"),
    )
    op.create_index("ix_structure_envoi_organisme", "structure_envoi", ["organisme"])


def downgrade() -> None:
    op.drop_index("ix_structure_envoi_organisme", table_name="structure_envoi")
    op.drop_table("structure_envoi")
    with op.batch_alter_table("organisme") as batch:
        for name, _ in reversed(CONTACTS):
            batch.drop_column(name)

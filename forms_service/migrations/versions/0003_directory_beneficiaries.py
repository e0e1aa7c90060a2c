"""directory (territories, MDS, SLAI, organismes, history), beneficiaries, links and audit objects

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

Written by hand against forms_service/directory/models.py,
forms_service/beneficiaries/models.py and forms_service/db/models.py.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

#: directory.models.TERRITORY_CODES and ORGANISME_KINDS when this revision was written.
TERRITORY_CODES = ("arrageois", "artois", "audomarois", "boulonnais", "calaisis",
                   "henin-carvin", "lens-lievin", "montreuillois", "ternois")
ORGANISME_KINDS = ("aave", "pole_emploi", "mds", "structure_cg", "other")


def _sql_list(values) -> str:
    return ", ".join(f"'{v}'" for v in values)


def upgrade() -> None:
    op.create_table(
        "territory",
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("contacts", JSONType, nullable=False),
        sa.CheckConstraint(f"code IN ({_sql_list(TERRITORY_CODES)})", name="ck_territory_code"),
        sa.PrimaryKeyConstraint("code"),
    )
    for table in ("mds", "slai"):
        op.create_table(
            table,
            sa.Column("code", sa.String(length=64), nullable=False),
            sa.Column("name", sa.String(length=128), nullable=False),
            sa.Column("territoire", sa.String(length=32), nullable=False),
            sa.Column("address", sa.Text(), nullable=False),
            sa.ForeignKeyConstraint(["territoire"], ["territory.code"]),
            sa.PrimaryKeyConstraint("code"),
        )
        op.create_index(f"ix_{table}_territoire", table, ["territoire"])
    op.create_table(
        "organisme",
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.CheckConstraint(f"kind IN ({_sql_list(ORGANISME_KINDS)})", name="ck_organisme_kind"),
        sa.PrimaryKeyConstraint("code"),
    )
    op.create_table(
        "organisme_territory",
        sa.Column("organisme", sa.String(length=64), nullable=False),
        sa.Column("territoire", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(["organisme"], ["organisme.code"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["territoire"], ["territory.code"]),
        sa.PrimaryKeyConstraint("organisme", "territoire"),
    )
    op.create_table(
        "directory_change",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("object_type", sa.String(length=32), nullable=False),
        sa.Column("object_code", sa.String(length=64), nullable=False),
        sa.Column("change", sa.String(length=16), nullable=False),
        sa.Column("field", sa.String(length=64), nullable=True),
        sa.Column("old", sa.Text(), nullable=True),
        sa.Column("new", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_directory_change_at", "directory_change", ["at"])
    op.create_table(
        "beneficiary",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("num_caf", sa.String(length=16), nullable=False),
        sa.Column("nom", sa.String(length=128), nullable=False),
        sa.Column("prenom", sa.String(length=128), nullable=False),
        sa.Column("date_naissance", sa.Date(), nullable=False),
        sa.Column("adresse", sa.Text(), nullable=False),
        sa.Column("territoire", sa.String(length=32), nullable=False),
        sa.Column("mds", sa.String(length=64), nullable=False),
        sa.Column("orientation_sphere", sa.String(length=16), nullable=True),
        sa.Column("orientation_date", sa.Date(), nullable=True),
        sa.Column("referent_id", sa.Integer(), nullable=True),
        sa.Column("cer_type", sa.String(length=8), nullable=True),
        sa.Column("cer_date_debut", sa.Date(), nullable=True),
        sa.Column("cer_date_fin", sa.Date(), nullable=True),
        sa.Column("cer_date_signature", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("orientation_sphere IS NULL OR orientation_sphere IN "
                           "('solidarite', 'professionnelle')", name="ck_beneficiary_sphere"),
        sa.CheckConstraint("cer_type IS NULL OR cer_type IN ('cers', 'cerp')",
                           name="ck_beneficiary_cer_type"),
        sa.ForeignKeyConstraint(["territoire"], ["territory.code"]),
        sa.ForeignKeyConstraint(["mds"], ["mds.code"]),
        sa.ForeignKeyConstraint(["referent_id"], ["user_account.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("num_caf", "date_naissance", name="uq_beneficiary_caf_birth"),
    )
    op.create_index("ix_beneficiary_territoire", "beneficiary", ["territoire"])
    op.create_index("ix_beneficiary_referent_id", "beneficiary", ["referent_id"])
    for table in ("issued_document", "record"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("beneficiary_id", sa.Integer(), nullable=True))
            batch.create_foreign_key(f"fk_{table}_beneficiary_id", "beneficiary",
                                     ["beneficiary_id"], ["id"], ondelete="SET NULL")
            batch.create_index(f"ix_{table}_beneficiary_id", ["beneficiary_id"])
    with op.batch_alter_table("audit_event") as batch:
        batch.add_column(sa.Column("object_type", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("object_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_event") as batch:
        batch.drop_column("object_id")
        batch.drop_column("object_type")
    for table in ("record", "issued_document"):
        with op.batch_alter_table(table) as batch:
            batch.drop_index(f"ix_{table}_beneficiary_id")
            batch.drop_constraint(f"fk_{table}_beneficiary_id", type_="foreignkey")
            batch.drop_column("beneficiary_id")
    op.drop_index("ix_beneficiary_referent_id", table_name="beneficiary")
    op.drop_index("ix_beneficiary_territoire", table_name="beneficiary")
    op.drop_table("beneficiary")
    op.drop_index("ix_directory_change_at", table_name="directory_change")
    op.drop_table("directory_change")
    op.drop_table("organisme_territory")
    op.drop_table("organisme")
    for table in ("slai", "mds"):
        op.drop_index(f"ix_{table}_territoire", table_name=table)
        op.drop_table(table)
    op.drop_table("territory")

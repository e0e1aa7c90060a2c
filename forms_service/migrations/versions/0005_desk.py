"""the SLAI desk: batches, their files and pages, records kept with pages and crops

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

Written by hand from forms_service/desk/models.py and the Record columns of
forms_service/db/models.py (issue 11).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "batch",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("territoire", sa.String(length=32), nullable=True),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pages_total", sa.Integer(), nullable=False),
        sa.CheckConstraint(_in("status", ("queued", "running", "done")), name="ck_batch_status"),
        sa.CheckConstraint(_in("source", ("desk", "api", "cli", "folder", "parse")),
                           name="ck_batch_source"),
        sa.ForeignKeyConstraint(["territoire"], ["territory.code"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_batch_territoire", "batch", ["territoire"])
    op.create_table(
        "batch_file",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=True),
        sa.Column("stored_path", sa.Text(), nullable=False),
        sa.Column("page_count", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", JSONType, nullable=True),
        sa.Column("duplicate_of_id", sa.Integer(), nullable=True),
        sa.Column("claimed_by", sa.String(length=128), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(_in("status", ("pending", "read", "duplicate", "error")),
                           name="ck_batch_file_status"),
        sa.ForeignKeyConstraint(["batch_id"], ["batch.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["duplicate_of_id"], ["batch_file.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("batch_id", "position", name="uq_batch_file_position"),
    )
    op.create_index("ix_batch_file_batch_id", "batch_file", ["batch_id"])
    op.create_index("ix_batch_file_sha256", "batch_file", ["sha256"])

    with op.batch_alter_table("record") as t:
        t.add_column(sa.Column("batch_id", sa.Integer(), nullable=True))
        t.add_column(sa.Column("file_id", sa.Integer(), nullable=True))
        t.add_column(sa.Column("ordinal", sa.Integer(), nullable=True))
        t.add_column(sa.Column("territoire", sa.String(length=32), nullable=True))
        t.add_column(sa.Column("review", sa.String(length=16), nullable=False, server_default="none"))
        t.add_column(sa.Column("sampled", sa.Boolean(), nullable=False, server_default=sa.false()))
        t.add_column(sa.Column("copy_of_id", sa.Integer(), nullable=True))
        t.add_column(sa.Column("probable_duplicate_of_id", sa.Integer(), nullable=True))
        t.add_column(sa.Column("readings_sha", sa.String(length=64), nullable=True))
        t.add_column(sa.Column("review_lease_by", sa.String(length=128), nullable=True))
        t.add_column(sa.Column("review_lease_until", sa.DateTime(timezone=True), nullable=True))
        t.add_column(sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True))
        t.add_column(sa.Column("reviewed_by", sa.String(length=128), nullable=True))
        t.create_foreign_key("fk_record_batch_id", "batch", ["batch_id"], ["id"], ondelete="SET NULL")
        t.create_foreign_key("fk_record_file_id", "batch_file", ["file_id"], ["id"], ondelete="SET NULL")
        t.create_foreign_key("fk_record_territoire", "territory", ["territoire"], ["code"])
        t.create_foreign_key("fk_record_copy_of_id", "record", ["copy_of_id"], ["id"], ondelete="SET NULL")
        t.create_foreign_key("fk_record_probable_duplicate_of_id", "record",
                             ["probable_duplicate_of_id"], ["id"], ondelete="SET NULL")
        t.create_unique_constraint("uq_record_file_ordinal", ["file_id", "ordinal"])
        t.create_check_constraint("ck_record_status", "status IN ('valid', 'invalid', 'needs_review')")
        t.create_check_constraint("ck_record_review", "review IN ('none', 'pending', 'done')")
        t.create_index("ix_record_batch_id", ["batch_id"])
        t.create_index("ix_record_territoire", ["territoire"])
        t.create_index("ix_record_readings_sha", ["readings_sha"])
        t.create_index("ix_record_territoire_review", ["territoire", "review"])

    op.create_table(
        "batch_page",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("file_id", sa.Integer(), nullable=False),
        sa.Column("file_page", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.CheckConstraint(_in("status", ("pending", "record", "blank", "unknown", "duplicate", "error")),
                           name="ck_batch_page_status"),
        sa.CheckConstraint("(status = 'record') = (record_id IS NOT NULL)", name="ck_batch_page_record"),
        sa.ForeignKeyConstraint(["batch_id"], ["batch.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["file_id"], ["batch_file.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["record_id"], ["record.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("file_id", "file_page", name="uq_batch_page_file_page"),
    )
    op.create_index("ix_batch_page_batch_id", "batch_page", ["batch_id"])
    op.create_index("ix_batch_page_record_id", "batch_page", ["record_id"])
    op.create_table(
        "record_page",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=True),
        sa.Column("batch_page_id", sa.Integer(), nullable=True),
        sa.Column("file_id", sa.Integer(), nullable=True),
        sa.Column("file_page", sa.Integer(), nullable=False),
        sa.Column("rotation", sa.Integer(), nullable=False),
        sa.Column("identified_by", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(["record_id"], ["record.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["batch_page_id"], ["batch_page.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["file_id"], ["batch_file.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("record_id", "position", name="uq_record_page_position"),
    )
    op.create_index("ix_record_page_record_id", "record_page", ["record_id"])
    op.create_table(
        "record_crop",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=255), nullable=False),
        sa.Column("page", sa.Integer(), nullable=False),
        sa.Column("bbox", JSONType, nullable=False),
        sa.Column("stored_path", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["record_id"], ["record.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_record_crop_record_id", "record_crop", ["record_id"])


def downgrade() -> None:
    op.drop_table("record_crop")
    op.drop_table("record_page")
    op.drop_table("batch_page")
    with op.batch_alter_table("record") as t:
        for name in ("ix_record_territoire_review", "ix_record_readings_sha", "ix_record_territoire",
                     "ix_record_batch_id"):
            t.drop_index(name)
        t.drop_constraint("ck_record_review", type_="check")
        t.drop_constraint("ck_record_status", type_="check")
        t.drop_constraint("uq_record_file_ordinal", type_="unique")
        for name in ("fk_record_probable_duplicate_of_id", "fk_record_copy_of_id", "fk_record_territoire",
                     "fk_record_file_id", "fk_record_batch_id"):
            t.drop_constraint(name, type_="foreignkey")
        for col in ("reviewed_by", "reviewed_at", "review_lease_until", "review_lease_by", "readings_sha",
                    "probable_duplicate_of_id", "copy_of_id", "sampled", "review", "territoire", "ordinal",
                    "file_id", "batch_id"):
            t.drop_column(col)
    op.drop_table("batch_file")
    op.drop_table("batch")

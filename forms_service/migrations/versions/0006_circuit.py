"""the fiche de liaison's circuit: requests, their types, avis, allowed transitions

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

Written by hand from forms_service/circuit/models.py. The transitions are those of
forms_service/circuit/states.yaml when this revision was written (a test keeps them equal:
changing the circuit means a new revision). The trigger refuses any UPDATE of
demande.etat to a state the circuit does not allow from the old one, on SQLite and
PostgreSQL alike; an avis row's (etat_avant, etat_apres) is a foreign key to an allowed pair.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

STATES = ("a_corriger", "annulee", "avis_correspondant", "decision", "en_ep", "recue",
          "structure", "traitee")
TYPES = ("actions_cg", "avenant", "demande_appui", "reorientation", "suspension")
STEPS = ("annulation", "correction", "correspondant", "ep", "president", "routage", "structure")
TRANSITIONS = [
    ("a_corriger", "annulee"), ("a_corriger", "recue"),
    ("avis_correspondant", "a_corriger"), ("avis_correspondant", "annulee"),
    ("avis_correspondant", "decision"), ("avis_correspondant", "en_ep"),
    ("avis_correspondant", "traitee"),
    ("decision", "annulee"), ("decision", "structure"), ("decision", "traitee"),
    ("en_ep", "annulee"), ("en_ep", "decision"),
    ("recue", "a_corriger"), ("recue", "annulee"), ("recue", "avis_correspondant"),
    ("structure", "annulee"), ("structure", "traitee"),
]


def _in(column, values) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


SQLITE_TRIGGERS = [
    """CREATE TRIGGER demande_etat_transition BEFORE UPDATE OF etat ON demande
       WHEN NEW.etat <> OLD.etat AND NOT EXISTS (
           SELECT 1 FROM circuit_transition
           WHERE from_state = OLD.etat AND to_state = NEW.etat)
       BEGIN SELECT RAISE(ABORT, 'transition interdite par le circuit'); END""",
    """CREATE TRIGGER demande_etat_initial BEFORE INSERT ON demande
       WHEN NEW.etat <> 'recue'
       BEGIN SELECT RAISE(ABORT, 'une demande commence à l''état recue'); END""",
]

PG_FUNCTION = """
CREATE FUNCTION demande_etat_check() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.etat <> 'recue' THEN
            RAISE EXCEPTION 'une demande commence à l''état recue' USING ERRCODE = '23514';
        END IF;
    ELSIF NEW.etat <> OLD.etat AND NOT EXISTS (
            SELECT 1 FROM circuit_transition
            WHERE from_state = OLD.etat AND to_state = NEW.etat) THEN
        RAISE EXCEPTION 'transition interdite par le circuit : % -> %', OLD.etat, NEW.etat
            USING ERRCODE = '23514';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql
"""
PG_TRIGGER = """CREATE TRIGGER demande_etat_check BEFORE INSERT OR UPDATE OF etat ON demande
                FOR EACH ROW EXECUTE FUNCTION demande_etat_check()"""


def upgrade() -> None:
    transition = op.create_table(
        "circuit_transition",
        sa.Column("from_state", sa.String(length=32), nullable=False),
        sa.Column("to_state", sa.String(length=32), nullable=False),
        sa.CheckConstraint(_in("from_state", STATES), name="ck_circuit_transition_from"),
        sa.CheckConstraint(_in("to_state", STATES), name="ck_circuit_transition_to"),
        sa.PrimaryKeyConstraint("from_state", "to_state"),
    )
    op.bulk_insert(transition, [{"from_state": a, "to_state": b} for a, b in TRANSITIONS])
    op.create_table(
        "demande",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("etat", sa.String(length=32), nullable=False),
        sa.Column("beneficiary_id", sa.Integer(), nullable=False),
        sa.Column("territoire", sa.String(length=32), nullable=False),
        sa.Column("mds", sa.String(length=64), nullable=True),
        sa.Column("referent_id", sa.Integer(), nullable=True),
        sa.Column("document_id", sa.String(length=26), nullable=True),
        sa.Column("record_id", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("data", JSONType, nullable=False),
        sa.Column("problems", JSONType, nullable=False),
        sa.Column("echeance", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.CheckConstraint(_in("etat", STATES), name="ck_demande_etat"),
        sa.ForeignKeyConstraint(["beneficiary_id"], ["beneficiary.id"], ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["referent_id"], ["user_account.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["record_id"], ["record.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("document_id", name="uq_demande_document_id"),
    )
    for column in ("etat", "beneficiary_id", "territoire", "referent_id", "echeance", "created_at"):
        op.create_index(f"ix_demande_{column}", "demande", [column])
    op.create_table(
        "demande_type",
        sa.Column("demande_id", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.CheckConstraint(_in("type", TYPES), name="ck_demande_type_type"),
        sa.ForeignKeyConstraint(["demande_id"], ["demande.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("demande_id", "type"),
    )
    op.create_table(
        "avis",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("demande_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("etape", sa.String(length=32), nullable=False),
        sa.Column("choix", sa.String(length=64), nullable=False),
        sa.Column("commentaire", sa.Text(), nullable=False),
        sa.Column("etat_avant", sa.String(length=32), nullable=False),
        sa.Column("etat_apres", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("problems", JSONType, nullable=False),
        sa.CheckConstraint(_in("etape", STEPS), name="ck_avis_etape"),
        sa.ForeignKeyConstraint(["demande_id"], ["demande.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["user_account.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["etat_avant", "etat_apres"],
                                ["circuit_transition.from_state", "circuit_transition.to_state"],
                                name="fk_avis_transition"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_avis_demande_id", "avis", ["demande_id"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_FUNCTION)
        op.execute(PG_TRIGGER)
    else:
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS demande_etat_check ON demande")
        op.execute("DROP FUNCTION IF EXISTS demande_etat_check()")
    op.drop_index("ix_avis_demande_id", table_name="avis")
    op.drop_table("avis")
    op.drop_table("demande_type")
    for column in ("etat", "beneficiary_id", "territoire", "referent_id", "echeance", "created_at"):
        op.drop_index(f"ix_demande_{column}", table_name="demande")
    op.drop_table("demande")
    op.drop_table("circuit_transition")

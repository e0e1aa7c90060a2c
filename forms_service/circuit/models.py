"""The circuit's rows (migration 0006): a request (``Demande``), its types, its avis.

- ``Demande``: one fiche de liaison of a beneficiary on its way through the circuit: its
  state (``etat``), the fiche's data (reserved parts updated by each avis, so it prints
  again with them), the rule problems of its last check, the issued document it was
  printed as (one request per document: a fiche coming back reuses it).
- ``DemandeType``: its types (``demande_appui``, ``reorientation``...), one row each.
- ``Avis``: one step taken: who, when, which step (``etape``), the choice, the comment,
  and the states before and after — a pair the database checks against ``CircuitTransition``.

The database enforces the circuit: CHECK constraints on states, types and steps, a
composite foreign key from each avis to an allowed transition, and a trigger refusing
any UPDATE of ``demande.etat`` to a state not reachable from the old one.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (CheckConstraint, Date, DateTime, ForeignKey, ForeignKeyConstraint,
                        Integer, String, Text, UniqueConstraint)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from forms_service.circuit.machine import machine
from forms_service.db.models import DOCUMENT_ID_LENGTH, Base, JSONType, utcnow


def _sql_in(column: str, values) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in sorted(values))})"


_M = machine()
STATES_CHECK = _sql_in("etat", _M.states)


class CircuitTransition(Base):
    """Every (from, to) the circuit allows (``states.yaml``); written by the migration."""

    __tablename__ = "circuit_transition"

    from_state: Mapped[str] = mapped_column(String(32), primary_key=True)
    to_state: Mapped[str] = mapped_column(String(32), primary_key=True)


class Demande(Base):
    __tablename__ = "demande"
    __table_args__ = (CheckConstraint(STATES_CHECK, name="ck_demande_etat"),
                      UniqueConstraint("document_id", name="uq_demande_document_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    etat: Mapped[str] = mapped_column(String(32), index=True)
    beneficiary_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("beneficiary.id", ondelete="RESTRICT"), index=True)
    #: Copied from the beneficiary when the request arrives (filters, routing).
    territoire: Mapped[str] = mapped_column(String(32), index=True)
    mds: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: The référent's account (the beneficiary's, else who sent it), told of each avis.
    referent_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("user_account.id", ondelete="SET NULL"), nullable=True, index=True)
    #: The printed fiche it comes from: one request per document.
    document_id: Mapped[str | None] = mapped_column(
        String(DOCUMENT_ID_LENGTH), nullable=True)
    #: The last record read for it (paper, PDF), if any.
    record_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("record.id", ondelete="SET NULL"), nullable=True)
    #: ``api``, ``web``, ``scan``, ``pdf``...
    source: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(JSONType)
    #: ``[{"path", "rule", "message"}]`` of the last check (French messages).
    problems: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    #: When the current step is due (the correspondant's avis), if it has a delay.
    echeance: Mapped[date | None] = mapped_column(Date, nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128))

    type_rows: Mapped[list[DemandeType]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="DemandeType.type")
    avis: Mapped[list[Avis]] = relationship(
        back_populates="demande", cascade="all, delete-orphan", lazy="selectin",
        order_by="Avis.id")

    @property
    def types(self) -> list[str]:
        return [r.type for r in self.type_rows]

    def set_types(self, types) -> None:
        wanted = list(dict.fromkeys(types))
        self.type_rows[:] = [r for r in self.type_rows if r.type in wanted]
        have = {r.type for r in self.type_rows}
        self.type_rows.extend(DemandeType(type=t) for t in wanted if t not in have)


class DemandeType(Base):
    __tablename__ = "demande_type"
    __table_args__ = (CheckConstraint(_sql_in("type", _M.types), name="ck_demande_type_type"),)

    demande_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("demande.id", ondelete="CASCADE"), primary_key=True)
    type: Mapped[str] = mapped_column(String(32), primary_key=True)


class Avis(Base):
    __tablename__ = "avis"
    __table_args__ = (
        CheckConstraint(_sql_in("etape", _M.steps), name="ck_avis_etape"),
        ForeignKeyConstraint(["etat_avant", "etat_apres"],
                             ["circuit_transition.from_state", "circuit_transition.to_state"],
                             name="fk_avis_transition"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    demande_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("demande.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: ``user:<id>``, ``key:<name>`` or ``systeme``.
    actor: Mapped[str] = mapped_column(String(128))
    user_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("user_account.id", ondelete="SET NULL"), nullable=True)
    etape: Mapped[str] = mapped_column(String(32))
    choix: Mapped[str] = mapped_column(String(64))
    commentaire: Mapped[str] = mapped_column(Text, default="")
    etat_avant: Mapped[str] = mapped_column(String(32))
    etat_apres: Mapped[str] = mapped_column(String(32))
    #: ``web``, ``api``, ``papier``, ``systeme``.
    source: Mapped[str] = mapped_column(String(16))
    #: The rule problems behind an ``invalide`` routing (French messages).
    problems: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)

    demande: Mapped[Demande] = relationship(back_populates="avis")


__all__ = ["Demande", "DemandeType", "Avis", "CircuitTransition", "STATES_CHECK"]

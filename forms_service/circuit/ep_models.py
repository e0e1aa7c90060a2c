"""The équipe pluridisciplinaire's rows (migration 0009): its sessions and what each examines.

- ``EpSession``: one meeting of a territory's EP (``seance``): date and hour, place, status
  (``planifiee`` → ``tenue``, or ``annulee``). ``ouverte`` is true exactly while it is
  ``planifiee`` (a CHECK says so).
- ``EpPassage``: a request (``Demande`` at state ``en_ep``) on a session's agenda, in order,
  and the EP's avis once recorded (the circuit's own ``Avis`` row of step ``ep``: there is no
  second avis table). A request passes again when a session was held without its avis
  (« reportée »): a new passage in another session.

A request is on at most one open session's agenda, and the database says so: each passage
copies its session's ``ouverte`` through a composite foreign key (``ON UPDATE CASCADE``: a
session that closes closes its passages), and a partial unique index allows one open
passage per request. No code path can put a request on two open agendas.

WebRSA (``Commissionep``, ``Dossierep``, ``Passagecommissionep``) has the same three levels,
with a decision table per theme and département and the "one open passage" rule in PHP; here
the avis is the circuit's single avis row and the rule is the database's.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (Boolean, CheckConstraint, DateTime, ForeignKey, ForeignKeyConstraint,
                        Index, Integer, String, UniqueConstraint, text)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from forms_service.db.models import Base, utcnow

STATUSES = {"planifiee": "Planifiée", "tenue": "Tenue", "annulee": "Annulée"}
OPEN_STATUS = "planifiee"


class EpSession(Base):
    __tablename__ = "ep_session"
    __table_args__ = (
        CheckConstraint("statut IN ('annulee', 'planifiee', 'tenue')", name="ck_ep_session_statut"),
        CheckConstraint("ouverte = (statut = 'planifiee')", name="ck_ep_session_ouverte"),
        UniqueConstraint("id", "ouverte", name="uq_ep_session_id_ouverte"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    territoire: Mapped[str] = mapped_column(
        String(32), ForeignKey("territory.code", ondelete="RESTRICT"), index=True)
    date_seance: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    lieu: Mapped[str] = mapped_column(String(200))
    statut: Mapped[str] = mapped_column(String(16), default=OPEN_STATUS)
    ouverte: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128))

    passages: Mapped[list[EpPassage]] = relationship(
        back_populates="session", cascade="all, delete-orphan", lazy="selectin",
        order_by="EpPassage.position", passive_updates=True)

    @property
    def statut_libelle(self) -> str:
        return STATUSES[self.statut]


class EpPassage(Base):
    __tablename__ = "ep_passage"
    __table_args__ = (
        ForeignKeyConstraint(["session_id", "session_ouverte"],
                             ["ep_session.id", "ep_session.ouverte"],
                             onupdate="CASCADE", ondelete="CASCADE", name="fk_ep_passage_session"),
        UniqueConstraint("session_id", "demande_id", name="uq_ep_passage_session_demande"),
        Index("uq_ep_passage_demande_ouverte", "demande_id", unique=True,
              sqlite_where=text("session_ouverte"), postgresql_where=text("session_ouverte")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[int] = mapped_column(Integer, index=True)
    #: Its session's ``ouverte``, kept equal by the foreign key (never written by hand).
    session_ouverte: Mapped[bool] = mapped_column(Boolean)
    demande_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("demande.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    #: The EP's avis on it (the circuit's avis row of step ``ep``), once recorded.
    avis_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("avis.id", ondelete="SET NULL"), nullable=True)
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    added_by: Mapped[str] = mapped_column(String(128))

    session: Mapped[EpSession] = relationship(back_populates="passages")


__all__ = ["EpSession", "EpPassage", "STATUSES", "OPEN_STATUS"]

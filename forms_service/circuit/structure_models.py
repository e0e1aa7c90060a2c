"""Where a decided action CG goes (migration 0011): one ``StructureEnvoi`` per request the
Président sent to a structure (step ``president``, choice favorable, type ``actions_cg``).

- ``organisme``: the directory's organisme it was matched to (by the name on the fiche),
  or none when the decideur entered a structure the directory does not list;
- ``mode``: ``compte`` (the structure has an account: the request is in its inbox
  ``/structure/``), ``email`` (no account: the printed fiche, as far as a structure may
  see it, e-mailed to ``email``), ``aucun`` (neither: the decideur is told);
- ``document_id``: the copy printed for the structure, so that its page 3 coming back on
  paper adds the structure's return to this request (``service.request_of_document``).

The access policy lets a structure's account see the requests sent to its organisme
(``access.request_condition``), and nothing else.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from forms_service.db.models import DOCUMENT_ID_LENGTH, Base, utcnow

MODES = ("compte", "email", "aucun")
STATUSES = ("a_envoyer", "envoye", "echec")


def _in(column: str, values) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class StructureEnvoi(Base):
    __tablename__ = "structure_envoi"
    __table_args__ = (CheckConstraint(_in("mode", MODES), name="ck_structure_envoi_mode"),
                      CheckConstraint(_in("statut", STATUSES), name="ck_structure_envoi_statut"),
                      UniqueConstraint("document_id", name="uq_structure_envoi_document_id"))

    demande_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("demande.id", ondelete="CASCADE"), primary_key=True)
    organisme: Mapped[str | None] = mapped_column(
        String(64), ForeignKey("organisme.code", ondelete="SET NULL"), nullable=True, index=True)
    mode: Mapped[str] = mapped_column(String(16))
    statut: Mapped[str] = mapped_column(String(16), default="a_envoyer")
    #: The address the fiche is e-mailed to (mode ``email``).
    email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    document_id: Mapped[str | None] = mapped_column(String(DOCUMENT_ID_LENGTH), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


__all__ = ["StructureEnvoi", "MODES", "STATUSES"]

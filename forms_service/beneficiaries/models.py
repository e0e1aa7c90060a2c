"""The beneficiary row (migration ``0003``), on the shared ``Base``."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (CheckConstraint, Date, DateTime, ForeignKey, Integer, String, Text,
                        UniqueConstraint)
from sqlalchemy.orm import Mapped, mapped_column

from forms_service.db.models import Base, utcnow

SPHERES = ("solidarite", "professionnelle")
CER_TYPES = ("cers", "cerp")


class Beneficiary(Base):
    __tablename__ = "beneficiary"
    __table_args__ = (
        UniqueConstraint("num_caf", "date_naissance", name="uq_beneficiary_caf_birth"),
        CheckConstraint("orientation_sphere IS NULL OR orientation_sphere IN "
                        "('solidarite', 'professionnelle')", name="ck_beneficiary_sphere"),
        CheckConstraint("cer_type IS NULL OR cer_type IN ('cers', 'cerp')",
                        name="ck_beneficiary_cer_type"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    num_caf: Mapped[str] = mapped_column(String(16))
    nom: Mapped[str] = mapped_column(String(128))
    prenom: Mapped[str] = mapped_column(String(128))
    date_naissance: Mapped[date] = mapped_column(Date)
    adresse: Mapped[str] = mapped_column(Text)
    territoire: Mapped[str] = mapped_column(String(32), ForeignKey("territory.code"), index=True)
    mds: Mapped[str] = mapped_column(String(64), ForeignKey("mds.code"))
    orientation_sphere: Mapped[str | None] = mapped_column(String(16), nullable=True)
    orientation_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    #: The référent named for this person (an account); ``None`` until one is named.
    referent_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("user_account.id", ondelete="SET NULL"), nullable=True, index=True)
    cer_type: Mapped[str | None] = mapped_column(String(8), nullable=True)
    cer_date_debut: Mapped[date | None] = mapped_column(Date, nullable=True)
    cer_date_fin: Mapped[date | None] = mapped_column(Date, nullable=True)
    cer_date_signature: Mapped[date | None] = mapped_column(Date, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    #: The columns an import sets (also the ones it compares: created / updated / unchanged).
    IMPORTED = ("nom", "prenom", "adresse", "territoire", "mds", "orientation_sphere",
                "orientation_date", "referent_id", "cer_type", "cer_date_debut", "cer_date_fin",
                "cer_date_signature")

    def as_dict(self) -> dict:
        """The API's view (ISO dates; the référent by id)."""
        iso = lambda d: d.isoformat() if d else None  # noqa: E731
        cer = None
        if self.cer_type:
            cer = {"type": self.cer_type, "date_debut": iso(self.cer_date_debut),
                   "date_fin": iso(self.cer_date_fin), "date_signature": iso(self.cer_date_signature)}
        orientation = None
        if self.orientation_sphere:
            orientation = {"sphere": self.orientation_sphere,
                           "date_decision": iso(self.orientation_date)}
        return {"id": self.id, "num_caf": self.num_caf, "nom": self.nom, "prenom": self.prenom,
                "date_naissance": iso(self.date_naissance), "adresse": self.adresse,
                "territoire": self.territoire, "mds": self.mds, "orientation": orientation,
                "referent_id": self.referent_id, "cer": cer}

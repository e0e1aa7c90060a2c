"""Directory rows, on the shared ``forms_service.db.models.Base`` (migration ``0003``).

Codes are the keys everything else refers to (a beneficiary's ``territoire`` and
``mds``, an account's ``territoire`` and ``organisme``). ``DirectoryChange`` keeps
the history: who changed which object's field from what to what; e-mail lists
(``contacts``) are recorded as changed without their values.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from forms_service.db.models import Base, JSONType, utcnow

#: The nine Pas-de-Calais territories (issue 10); a territory's code is one of them.
TERRITORY_CODES = ("arrageois", "artois", "audomarois", "boulonnais", "calaisis",
                   "henin-carvin", "lens-lievin", "montreuillois", "ternois")

#: Kinds of organisme référent.
ORGANISME_KINDS = ("aave", "pole_emploi", "mds", "structure_cg", "other")

#: Roles whose members a territory may list by e-mail, for display (accounts hold the access).
CONTACT_ROLES = ("correspondant", "agent_slai", "secretariat_ep", "decideur")


def _sql_list(values) -> str:
    return ", ".join(f"'{v}'" for v in values)


class Territory(Base):
    __tablename__ = "territory"
    __table_args__ = (CheckConstraint(f"code IN ({_sql_list(TERRITORY_CODES)})",
                                      name="ck_territory_code"),)

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    #: ``{role: [e-mail, ...]}`` for ``CONTACT_ROLES``, shown on the directory page.
    contacts: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)

    mds: Mapped[list[Mds]] = relationship(back_populates="territory", order_by="Mds.code",
                                          lazy="selectin")
    slai: Mapped[list[Slai]] = relationship(back_populates="territory", order_by="Slai.code",
                                            lazy="selectin")


class _TerritoryOffice:
    """The columns an office of a territory has (an MDS, a SLAI): code, name, territory, address."""

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    territoire: Mapped[str] = mapped_column(String(32), ForeignKey("territory.code"), index=True)
    address: Mapped[str] = mapped_column(Text, default="")


class Mds(_TerritoryOffice, Base):
    """A Maison du Département Solidarité."""

    __tablename__ = "mds"

    territory: Mapped[Territory] = relationship(back_populates="mds")


class Slai(_TerritoryOffice, Base):
    """A territory's Service Local d'Accompagnement et d'Insertion."""

    __tablename__ = "slai"

    territory: Mapped[Territory] = relationship(back_populates="slai")


class Organisme(Base):
    """An organisme référent (AAVE, Pôle emploi agency, MDS team...)."""

    __tablename__ = "organisme"
    __table_args__ = (CheckConstraint(f"kind IN ({_sql_list(ORGANISME_KINDS)})",
                                      name="ck_organisme_kind"),)

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))
    #: Contact details printed on the fiche when the Président designates it for an
    #: action CG (migration 0011): the fiche's ``president.structure_*`` fields.
    address: Mapped[str] = mapped_column(Text, default="", server_default="")
    animateur: Mapped[str] = mapped_column(String(64), default="", server_default="")
    telephone: Mapped[str] = mapped_column(String(20), default="", server_default="")
    fax: Mapped[str] = mapped_column(String(20), default="", server_default="")
    email: Mapped[str] = mapped_column(String(254), default="", server_default="")

    territory_rows: Mapped[list[OrganismeTerritory]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="OrganismeTerritory.territoire")

    @property
    def territoires(self) -> list[str]:
        return [r.territoire for r in self.territory_rows]

    def set_territoires(self, codes) -> None:
        wanted = list(dict.fromkeys(codes))
        self.territory_rows[:] = [r for r in self.territory_rows if r.territoire in wanted]
        have = {r.territoire for r in self.territory_rows}
        self.territory_rows.extend(OrganismeTerritory(territoire=c) for c in wanted if c not in have)


class OrganismeTerritory(Base):
    """A territory an organisme works in."""

    __tablename__ = "organisme_territory"

    organisme: Mapped[str] = mapped_column(
        String(64), ForeignKey("organisme.code", ondelete="CASCADE"), primary_key=True)
    territoire: Mapped[str] = mapped_column(String(32), ForeignKey("territory.code"),
                                            primary_key=True)


class DirectoryChange(Base):
    """One change to the directory: who, when, which object, which field, old → new."""

    __tablename__ = "directory_change"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(128))
    #: ``territoire``, ``mds``, ``slai`` or ``organisme``
    object_type: Mapped[str] = mapped_column(String(32))
    object_code: Mapped[str] = mapped_column(String(64))
    #: ``created``, ``updated`` or ``deleted``
    change: Mapped[str] = mapped_column(String(16))
    field: Mapped[str | None] = mapped_column(String(64), nullable=True)
    old: Mapped[str | None] = mapped_column(Text, nullable=True)
    new: Mapped[str | None] = mapped_column(Text, nullable=True)

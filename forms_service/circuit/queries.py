"""Filtered lists of requests, for the API, the CSV export and the pages alike (always
within what the access policy lets the caller see)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from dataclasses import dataclass

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from forms_service import access
from forms_service.circuit.machine import machine
from forms_service.circuit.models import Avis, Demande, DemandeType
from forms_service.principal import Principal

PER_PAGE = 50


@dataclass(frozen=True)
class Filters:
    etat: str | None = None
    type: str | None = None
    territoire: str | None = None
    referent: int | None = None
    #: created on or after this date
    depuis: dt.date | None = None
    #: due on or before this date (the correspondant's deadline)
    echeance_avant: dt.date | None = None


def statement(p: Principal, f: Filters):
    stmt = access.visible_requests(p)
    if f.etat:
        stmt = stmt.where(Demande.etat == f.etat)
    if f.type:
        stmt = stmt.where(exists().where(DemandeType.demande_id == Demande.id,
                                         DemandeType.type == f.type))
    if f.territoire:
        stmt = stmt.where(Demande.territoire == f.territoire)
    if f.referent is not None:
        stmt = stmt.where(Demande.referent_id == f.referent)
    if f.depuis:
        start = dt.datetime.combine(f.depuis, dt.time.min, tzinfo=dt.timezone.utc)
        stmt = stmt.where(Demande.created_at >= start)
    if f.echeance_avant:
        stmt = stmt.where(Demande.echeance.is_not(None), Demande.echeance <= f.echeance_avant)
    return stmt


def page(s: Session, p: Principal, f: Filters, number: int = 1, per_page: int = PER_PAGE):
    """``(rows, total, pages)`` of page ``number`` (newest first)."""
    stmt = statement(p, f)
    total = s.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = s.scalars(stmt.order_by(Demande.created_at.desc(), Demande.id.desc())
                     .offset((number - 1) * per_page).limit(per_page)).all()
    return rows, total, max(1, math.ceil(total / per_page))


def as_dict(d: Demande, *, with_avis: bool = False, with_data: bool = False) -> dict:
    m = machine()
    out = {"id": d.id, "etat": d.etat, "etat_libelle": m.states[d.etat], "types": d.types,
           "beneficiary_id": d.beneficiary_id, "territoire": d.territoire, "mds": d.mds,
           "referent_id": d.referent_id, "document_id": d.document_id, "record_id": d.record_id,
           "source": d.source, "echeance": d.echeance.isoformat() if d.echeance else None,
           "created_at": d.created_at.isoformat(), "updated_at": d.updated_at.isoformat(),
           "problems": d.problems or [],
           "etapes_possibles": [st.code for st in m.steps_from(d.etat)
                                if "systeme" not in st.roles]}
    if with_avis:
        out["avis"] = [avis_dict(a) for a in d.avis]
    if with_data:
        out["fiche"] = d.data
    return out


def avis_dict(a: Avis) -> dict:
    step = machine().steps.get(a.etape)
    return {"id": a.id, "at": a.at.isoformat(), "actor": a.actor, "user_id": a.user_id,
            "etape": a.etape, "etape_libelle": step.label if step else a.etape,
            "choix": a.choix, "choix_libelle": step.choices.get(a.choix, a.choix) if step else a.choix,
            "commentaire": a.commentaire, "etat_avant": a.etat_avant, "etat_apres": a.etat_apres,
            "source": a.source, "problems": a.problems or []}


CSV_COLUMNS = ["id", "etat", "types", "territoire", "mds", "beneficiary_id", "referent_id",
               "document_id", "echeance", "created_at", "dernier_avis", "regles_en_defaut"]


def csv_export(rows) -> bytes:
    """UTF-8 with BOM, ``;``-separated, for a spreadsheet; ids and codes only."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for d in rows:
        last = d.avis[-1] if d.avis else None
        writer.writerow([d.id, d.etat, ",".join(d.types), d.territoire, d.mds or "",
                         d.beneficiary_id, d.referent_id or "", d.document_id or "",
                         d.echeance.isoformat() if d.echeance else "",
                         d.created_at.isoformat(), f"{last.etape}:{last.choix}" if last else "",
                         ",".join(p.get("rule", "") for p in d.problems or [])])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


__all__ = ["Filters", "statement", "page", "as_dict", "avis_dict", "csv_export", "PER_PAGE"]

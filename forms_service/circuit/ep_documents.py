"""A session's agenda (« ordre du jour ») and minutes (« procès-verbal ») as PDF.

Each is a definition in the catalogue's format (``circuit/ep_forms/*.yaml``, a catalogue of
its own: the référents' catalogue does not list them), its DOCX template built from it by the
forms' template builder (``templates/docx/ep-*.docx``; :func:`build_templates` writes them
again), filled by the render pipeline and converted by the app's LibreOffice pool (the render
service's). The engine knows no document by name; this module only gathers the data.

What they print of a person: their name and the request (number, types, dates, the EP's
avis). No CAF number, address, birth date or telephone: the EP's members see the fiche on
``/ep/demandes/<id>`` when they need more. The PDF carries no QR code (it is not read back).
"""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from forms_service import access
from forms_service.audit import record_event
from forms_service.beneficiaries.models import Beneficiary
from forms_service.catalogue import Catalogue
from forms_service.circuit import ep_deadlines, ep_service, service
from forms_service.circuit.ep_models import EpSession
from forms_service.circuit.machine import machine
from forms_service.errors import ValidationFailed
from forms_service.principal import Principal

CATALOGUE = Catalogue(package="forms_service.circuit.ep_forms")
#: The URL's name of each document → its definition.
KINDS = {"ordre-du-jour": "ep-ordre-du-jour", "proces-verbal": "ep-proces-verbal"}
LOCAL = ZoneInfo("Europe/Paris")


def comment_limit() -> int | None:
    """The EP's avis motivé: the fiche's printed field (``ep.avis_motive``) decides."""
    return service.comment_limit(machine().step(ep_service.STEP))


def _seance(s: Session, row: EpSession) -> dict:
    from forms_service.directory.models import Territory

    t = s.get(Territory, row.territoire)
    local = row.date_seance.astimezone(LOCAL)
    return {"numero": str(row.id), "territoire": t.name if t else row.territoire,
            "date": local.date().isoformat(), "heure": local.strftime("%H:%M"), "lieu": row.lieu,
            "statut": row.statut_libelle}


def document_data(s: Session, p: Principal, row: EpSession, kind: str) -> dict:
    """The document's data, in its definition's shape."""
    m = machine()
    seance = _seance(s, row)
    items = []
    for passage in row.passages:
        d = access.get_request(p, passage.demande_id, session=s)
        b = s.get(Beneficiary, d.beneficiary_id)
        item = {"numero": str(d.id), "beneficiaire": f"{b.nom} {b.prenom}" if b else "",
                "types": ", ".join(m.types[t] for t in d.types if t in ("reorientation", "suspension"))
                         or ", ".join(m.types[t] for t in d.types)}
        if kind == "ordre-du-jour":
            referral = ep_deadlines.referral_date(d)
            item.update(saisine=referral.isoformat() if referral else None,
                        echeance=ep_deadlines.deadline_of(d).isoformat())
        else:
            avis = ep_service.ep_avis_of(d)
            step = m.step(ep_service.STEP)
            item.update(avis=step.choices.get(avis.choix, avis.choix) if avis else "Non examinée (reportée)",
                        avis_motive=avis.commentaire if avis else "",
                        date_avis=avis.at.astimezone(LOCAL).date().isoformat() if avis else None)
        items.append(item)
    if kind == "ordre-du-jour":
        seance.pop("statut", None)
    return {"seance": seance, "demandes": items}


def render_pdf(app, s: Session, p: Principal, row: EpSession, kind: str) -> tuple[bytes, str]:
    """The PDF and its download name (no personal data in the name)."""
    from forms_service.render.pipeline import render_docx, template_version
    from forms_service.render.service import get_service
    from forms_service.validation import validate

    fd = CATALOGUE.get(KINDS[kind])
    settings = app.extensions["forms_service.settings"]
    report = validate(fd, document_data(s, p, row, kind))
    if not report.model_valid:
        raise ValidationFailed(report.problems)
    dump = report.instance.model_dump(mode="python")   # dates print dd/mm/yyyy
    version = template_version(fd, settings)
    docx = render_docx(fd, dump, settings=settings, document_id="", version=version, for_pdf=True)
    pdf = get_service(app).pool.convert(docx)
    record_event(p, "ep.document_imprime", object_type="ep_session", object_id=row.id,
                 session=s, document=fd.id, template_version=version, demandes=len(row.passages))
    day = row.date_seance.astimezone(LOCAL).date().isoformat()
    return pdf, f"{fd.id}_seance-{row.id}_{day}.pdf"


def build_templates(out_dir: Path) -> list[Path]:
    """Write the documents' DOCX templates from their definitions (as ``templates build``)."""
    from forms_service.render.template_builder import build

    out_dir.mkdir(parents=True, exist_ok=True)
    return [build(fd, out_dir) for fd in CATALOGUE.forms()]


__all__ = ["CATALOGUE", "KINDS", "document_data", "render_pdf", "build_templates",
           "comment_limit"]

"""The committed blank fillable PDFs, ``templates/pdf/<form>.pdf``, and their manifest.

Each is the blank form rendered, stamped ``BLANK`` and given its AcroForm fields
(:func:`~forms_service.render.fillable.make_fillable`) at the places its layout map
says. LibreOffice's PDFs are not byte-reproducible, so a PDF is stale when its
*inputs* changed (template version, the sources listed in ``SOURCE_INPUTS``), never
by its bytes; a test fails when one is. Rebuilt by
``python -m forms_service.render.fillable_cli --build``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path

from ..catalogue import FormDefinition, catalogue
from ..config import Settings
from ..errors import TemplateError
from .fillable import BLANK_DOCUMENT_ID, make_fillable
from .layout import build_layout_and_pdf
from .pipeline import template_path, template_version
from .stamp import stamp_pdf

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
#: Source files whose content changes the committed fillable PDFs (besides the
#: template version, which covers the DOCX template, the definition and the print
#: configuration).
SOURCE_INPUTS = ("fillable.py", "layout.py", "layout_analysis.py", "layout_glyphs.py",
                 "stamp.py", "geometry.py", "qr.py", "context.py", "templates_pdf.py")


def _pdf_dir(settings: Settings) -> Path:
    return Path(settings.templates_dir) / "pdf"


def template_forms(settings: Settings) -> list[FormDefinition]:
    """Forms (kind "form") whose DOCX template exists: the ones with a fillable PDF."""
    out = []
    for fd in catalogue.forms():
        if fd.kind != "form":
            continue
        try:
            template_path(fd, settings)
        except TemplateError:
            continue
        out.append(fd)
    return out


def _sources_digest() -> str:
    here = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for name in SOURCE_INPUTS:
        h.update(name.encode() + b"\0" + (here / name).read_bytes() + b"\0")
    return h.hexdigest()


def inputs_hash(fd: FormDefinition, settings: Settings) -> str:
    """What a form's fillable PDF is made from: its template version and our sources.

    LibreOffice's PDFs are not byte-reproducible, so staleness is decided on inputs,
    never on PDF bytes.
    """
    h = hashlib.sha256()
    h.update(f"{MANIFEST_FORMAT}|{fd.id}|{template_version(fd, settings)}|".encode())
    h.update(_sources_digest().encode())
    return h.hexdigest()


def read_manifest(settings: Settings) -> dict:
    path = _pdf_dir(settings) / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"format": MANIFEST_FORMAT, "forms": {}}
    data.setdefault("forms", {})
    return data


def stale_templates(settings: Settings) -> list[str]:
    """Ids of the forms whose ``templates/pdf/<form>.pdf`` is missing or out of date."""
    manifest = read_manifest(settings)
    out = []
    for fd in template_forms(settings):
        entry = manifest["forms"].get(fd.id) or {}
        if (not (_pdf_dir(settings) / f"{fd.id}.pdf").exists()
                or entry.get("inputs") != inputs_hash(fd, settings)):
            out.append(fd.id)
    return out


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)   # as a plain open() would (mkstemp makes 0600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def build_fillable_template(fd: FormDefinition, settings: Settings, pool) -> tuple[bytes, dict]:
    """The blank fillable PDF of a form (stamped ``BLANK``) and its layout map."""
    version = template_version(fd, settings)
    layout, blank = build_layout_and_pdf(fd, settings=settings, pool=pool, version=version)
    stamped = stamp_pdf(blank, fd.id, version, BLANK_DOCUMENT_ID)
    return make_fillable(stamped, layout, form=fd.id, version=version,
                         document_id=BLANK_DOCUMENT_ID), layout


def build_templates_pdf(settings: Settings, pool, *, forms: list[str] | None = None,
                        force: bool = False) -> dict[str, Path]:
    """Write ``templates/pdf/<form>.pdf`` for every form with a template, and the manifest.

    Only stale forms are rebuilt unless ``force``; ``forms`` restricts the run. The
    manifest records, per form, the hash of its inputs (see :func:`inputs_hash`), its
    template version and its field counts; entries of forms that have no template any
    more are dropped (their PDFs are left alone). Returns the paths written.
    """
    manifest = read_manifest(settings)
    wanted = template_forms(settings)
    stale = set(stale_templates(settings))
    written: dict[str, Path] = {}
    for fd in wanted:
        if forms and fd.id not in forms:
            continue
        if not force and fd.id not in stale:
            continue
        t0 = time.perf_counter()
        data, layout = build_fillable_template(fd, settings, pool)
        path = _pdf_dir(settings) / f"{fd.id}.pdf"
        _write_atomic(path, data)
        written[fd.id] = path
        manifest["forms"][fd.id] = {
            "template_version": template_version(fd, settings),
            "inputs": inputs_hash(fd, settings),
            "pages": len(layout["pages"]),
            "checkboxes": len(layout["boxes"]),
            "text_fields": sum(1 for z in layout["zones"] if z["kind"] == "text"),
            "signature_zones": sum(1 for z in layout["zones"] if z["kind"] == "signature"),
        }
        log.info("fillable template written", extra={"form": fd.id,
                                                     "ms": round((time.perf_counter() - t0) * 1000)})
    known = {fd.id for fd in wanted}
    manifest["forms"] = {k: v for k, v in sorted(manifest["forms"].items()) if k in known}
    manifest["format"] = MANIFEST_FORMAT
    manifest["note"] = ("Generated by `python -m forms_service.render.fillable_cli --build`; "
                        "do not edit. `inputs` = sha256(template version + render sources).")
    _write_atomic(_pdf_dir(settings) / MANIFEST,
                  (json.dumps(manifest, indent=2, ensure_ascii=False, sort_keys=True) + "\n").encode())
    return written

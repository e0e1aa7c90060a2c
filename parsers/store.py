"""What the parsers need from what the service printed: issued documents and layouts.

A returned form is matched to what was printed by its document id (QR code,
footer or PDF metadata); its template version selects the layout map of that
version, or the issued document's own (tables whose rows vary).
"""

from __future__ import annotations

from typing import Any

from forms_service.catalogue import FormDefinition


def _settings():
    """Interim (h1-core): the app's settings inside a request, else those the Sandbox gave
    its worker (as variables); h3-parsers threads the settings down instead."""
    from flask import has_app_context

    from forms_service.config import Settings, current_settings
    return current_settings() if has_app_context() else Settings.from_env()


def issued_document(document_id: str | None) -> dict | None:
    """The issued document's form, version, data and layout, or None."""
    if not document_id:
        return None
    from forms_service import db
    try:
        with db.session(_settings()) as s:
            row = s.get(db.IssuedDocument, document_id)
            if row is None:
                return None
            return {"document_id": row.document_id, "form": row.form_id,
                    "template_version": row.template_version, "data": row.data,
                    "layout": row.layout, "file_path": row.file_path, "format": row.format}
    except Exception:  # no database configured or reachable: read without reconciliation
        return None


def issued_data(document_id: str | None) -> dict | None:
    """The issued document's form and data only (no layout to decode: reconciliation)."""
    if not document_id:
        return None
    from sqlalchemy import select

    from forms_service import db
    try:
        with db.session(_settings()) as s:
            row = s.execute(select(db.IssuedDocument.form_id, db.IssuedDocument.data)
                            .where(db.IssuedDocument.document_id == document_id)).first()
            return None if row is None else {"document_id": document_id, "form": row[0], "data": row[1]}
    except Exception:
        return None


def stored_layout(form_id: str, version: str | None) -> dict | None:
    if not version:
        return None
    from forms_service import db
    try:
        with db.session(_settings()) as s:
            row = s.get(db.TemplateVersion, {"form_id": form_id, "version": version})
            return row.layout if row is not None and row.layout else None
    except Exception:
        return None


def layout_for(fd: FormDefinition, version: str | None, document_id: str | None,
               data_dump: dict | None = None) -> dict | None:
    """The layout a page was printed with: the issued document's own, else its version's.

    When the version is the current one and nothing is stored yet, it is computed
    (this needs LibreOffice); a version no longer current and not stored is unknown.
    """
    doc = issued_document(document_id)
    if doc and doc.get("layout"):
        ref = doc["layout"].get("blank_layout")
        if not ref:
            return doc["layout"]
        # a form without lists: the issued document names its version's blank layout
        version = ref.get("template_version") or version
    stored = stored_layout(fd.id, version)
    if stored:
        return stored
    try:
        from forms_service.render import layout as layout_mod
        from forms_service.render.pipeline import template_version
        settings = _settings()
        if version and version != template_version(fd, settings):
            return None
        pool = _pool(settings)
        if pool is None:
            return None
        return layout_mod.layout_for(fd, settings=settings, pool=pool, data_dump=data_dump)
    except Exception:
        return None


_POOL: Any = None


def _pool(settings):
    """The app's converter pool when inside the app, else one for this process."""
    global _POOL
    try:
        from flask import current_app, has_app_context
        if has_app_context():
            pool = current_app.extensions.get("pdf_pool")
            if pool is not None:
                return pool
    except Exception:
        pass
    if _POOL is None:
        from forms_service.render.pdf import ConverterPool, libreoffice_available
        if not libreoffice_available():
            return None
        _POOL = ConverterPool(size=1, work_dir=settings.var_dir / "lo-parse")
    return _POOL


def fit_layout(layout: dict, glyphs: list[tuple[int, list[float]]]) -> dict:
    """The layout moved onto the boxes actually printed: ``glyphs`` are the (page, bbox)
    of the ☐/☒ glyphs of the issued PDF, in content order.

    A form without lists is read with its version's blank layout, but data can move
    boxes (a longer pre-filled line pushes a table down a few points). When the glyphs
    match the layout's boxes one for one (same count, same pages), each box takes its
    glyph's place, and each zone moves like the nearest box above it on its page (the
    content above a zone is what pushes it). Otherwise the layout is returned unchanged.
    """
    boxes = layout.get("boxes") or []
    if len(glyphs) != len(boxes) or any(p != b["page"] for (p, _), b in zip(glyphs, boxes)):
        return layout
    moved = []
    shifts: dict[int, list[tuple[float, float, float]]] = {}
    for (page, bbox), b in zip(glyphs, boxes):
        dx, dy = bbox[0] - b["bbox"][0], bbox[1] - b["bbox"][1]
        shifts.setdefault(page, []).append((b["bbox"][1], dx, dy))
        moved.append({**b, "bbox": [round(float(v), 2) for v in bbox]})
    zones = []
    for z in layout.get("zones") or []:
        above = [s for s in shifts.get(z["page"], []) if s[0] <= z["bbox"][1] + 1]
        if above:
            _, dx, dy = max(above, key=lambda s: s[0])
            if abs(dy) > 0.25:
                x0, top, x1, bottom = z["bbox"]
                z = {**z, "bbox": [x0, round(top + dy, 2), x1, round(bottom + dy, 2)]}
        zones.append(z)
    return {**layout, "boxes": moved, "zones": zones}

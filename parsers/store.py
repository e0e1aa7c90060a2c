"""What the parsers need from what the service printed: issued documents and layouts.

A returned form is matched to what was printed by its document id (QR code,
footer or PDF metadata); its template version selects the layout map of that
version, or the issued document's own (tables whose rows vary).
"""

from __future__ import annotations

from typing import Any

from forms_service.catalogue import FormDefinition


def issued_document(document_id: str | None) -> dict | None:
    """The issued document's form, version, data and layout, or None."""
    if not document_id:
        return None
    from forms_service import db
    try:
        with db.session() as s:
            row = s.get(db.IssuedDocument, document_id)
            if row is None:
                return None
            return {"document_id": row.document_id, "form": row.form_id,
                    "template_version": row.template_version, "data": row.data,
                    "layout": row.layout}
    except Exception:  # no database configured or reachable: read without reconciliation
        return None


def stored_layout(form_id: str, version: str | None) -> dict | None:
    if not version:
        return None
    from forms_service import db
    try:
        with db.session() as s:
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
        return doc["layout"]
    stored = stored_layout(fd.id, version)
    if stored:
        return stored
    try:
        from forms_service.config import current_settings
        from forms_service.render import layout as layout_mod
        from forms_service.render.pipeline import template_version
        settings = current_settings()
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

"""What the parsers need from what the service printed: issued documents and layouts.

A returned form is matched to what was printed by its document id (QR code,
footer or PDF metadata); its template version selects the layout map of that
version, or the issued document's own (tables whose rows vary).

A :class:`Store` is built by whoever runs the readers (the app, the CLI command, a
sandbox worker) from that caller's settings, database and converter pool: the
parsers never read the process environment, and never start a LibreOffice server
of their own.

A database that cannot be read is never taken for "no such document": the call
fails with :class:`~forms_service.errors.DatabaseUnavailable` (logged), since
reading on without the issued document would give pre-filled zones as confident
blanks.
"""

from __future__ import annotations

import copy
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from forms_service import db
from forms_service.catalogue import FormDefinition
from forms_service.catalogue.paths import get_path
from forms_service.config import Settings
from forms_service.errors import DatabaseUnavailable
from forms_service.logging_setup import get_logger

log = get_logger(__name__)

#: The warning a record gets when the id printed in the file names a document its caller
#: may not see (``forms_service.access``): the form is read as if it carried no id.
WITHHELD = {"path": "document_id", "rule": "document_inaccessible", "severity": "warning",
            "message": "Identifiant de document inconnu ou inaccessible : "
                       "formulaire lu sans le document produit"}


class Store:
    """Issued documents and layout maps, read through the caller's database and pool.

    ``database`` is the caller's :class:`forms_service.db.Database` (the app's); without
    one, the store opens its own on ``settings.database_url`` and :meth:`close` disposes
    it. ``pool`` is the caller's converter pool (anything with ``convert(docx)``), used
    only when a layout map must be computed; ``None``: such a layout is unknown.
    """

    def __init__(self, settings: Settings, *, database: db.Database | None = None, pool: Any = None,
                 principal: Any = None):
        self.settings = settings
        self.pool = pool
        #: Who the reading is for (a ``Principal``): only the issued documents it may see are
        #: used. ``None`` (the command line, an administrator's tools): every document.
        self.principal = principal
        self._own_database = database is None
        self.database = database if database is not None else db.Database(settings.database_url)

    def for_principal(self, principal: Any) -> "Store":
        """The same store reading for ``principal`` (shares the database and pool)."""
        view = copy.copy(self)
        view.principal = principal
        view._own_database = False
        return view

    def _restriction(self):
        """The SQL condition on issued documents for this store's principal, or None."""
        p = self.principal
        if p is None or getattr(p, "is_admin", False):
            return None
        from forms_service import access
        return access.document_condition(p)

    def visible(self, document_id: str | None) -> bool:
        """Whether this store's principal may see the issued document (unknown ids: False)."""
        cond = self._restriction()
        if cond is None or not document_id:
            return True

        def query(s):
            return s.execute(select(db.IssuedDocument.document_id)
                             .where(db.IssuedDocument.document_id == document_id, cond)).first() is not None
        return self._read("document_visible", query)

    def withhold(self, items: list[dict]) -> list[dict]:
        """Records carrying the id of a document the principal may not see lose that id, and say so."""
        for item in items:
            if "fields" in item and item.get("document_id") and not self.visible(item["document_id"]):
                item["document_id"] = None
                item["validation"]["errors"].append(dict(WITHHELD))
        return items

    def close(self) -> None:
        if self._own_database:
            self.database.dispose()

    def _read(self, what: str, query):
        """``query(session)`` in a session; a database failure raises DatabaseUnavailable."""
        try:
            with self.database.session() as s:
                return query(s)
        except (SQLAlchemyError, OSError) as exc:
            log.warning("parse_database_unavailable", read=what, error=type(exc).__name__)
            raise DatabaseUnavailable() from exc

    def issued_document(self, document_id: str | None) -> dict | None:
        """The issued document's form, version, data and layout, or None when unknown."""
        if not document_id:
            return None

        if not self.visible(document_id):
            return None

        def query(s):
            row = s.get(db.IssuedDocument, document_id)
            if row is None:
                return None
            return {"document_id": row.document_id, "form": row.form_id,
                    "template_version": row.template_version, "data": row.data,
                    "layout": row.layout, "file_path": row.file_path, "format": row.format}
        return self._read("issued_document", query)

    def issued_data(self, document_id: str | None) -> dict | None:
        """The issued document's form and data only (no layout to decode: reconciliation)."""
        if not document_id:
            return None

        cond = self._restriction()
        where = [db.IssuedDocument.document_id == document_id] + ([cond] if cond is not None else [])

        def query(s):
            row = s.execute(select(db.IssuedDocument.form_id, db.IssuedDocument.data)
                            .where(*where)).first()
            return None if row is None else {"document_id": document_id, "form": row[0], "data": row[1]}
        return self._read("issued_data", query)

    def issued_ids(self, form_id: str, version: str | None) -> list[str]:
        """The ids of the issued documents of a form (and template version) this store's
        principal may see: a document id misread by OCR is matched among them."""
        where = [db.IssuedDocument.form_id == form_id]
        if version:
            where.append(db.IssuedDocument.template_version == version)
        cond = self._restriction()
        if cond is not None:
            where.append(cond)

        def query(s):
            return [r[0] for r in s.execute(select(db.IssuedDocument.document_id).where(*where))]
        return self._read("issued_ids", query)

    def stored_layout(self, form_id: str, version: str | None) -> dict | None:
        if not version:
            return None

        def query(s):
            row = s.get(db.TemplateVersion, {"form_id": form_id, "version": version})
            return row.layout if row is not None and row.layout else None
        return self._read("stored_layout", query)

    def layout_for(self, fd: FormDefinition, version: str | None, document_id: str | None,
                   data_dump: dict | None = None) -> dict | None:
        """The layout a page was printed with: the issued document's own, else its version's.

        When the version is the current one and nothing is stored yet, it is computed
        with the caller's pool (this needs LibreOffice); a version no longer current and
        not stored, or no pool, makes it unknown (None).
        """
        doc = self.issued_document(document_id)
        if doc and doc.get("layout"):
            ref = doc["layout"].get("blank_layout")
            if not ref:
                return doc["layout"]
            # the issued document names its version's blank layout: a form without lists,
            # or one with lists issued as DOCX (no print was made then, so no layout of its
            # rows): that one is laid out now for the rows its data prints
            version = ref.get("template_version") or version
            if data_dump is None:
                data_dump = self._list_rows_dump(fd, doc.get("data"))
                if data_dump is not None:
                    computed = self.computed_layout(fd, version, data_dump)
                    if computed:
                        return computed
        stored = self.stored_layout(fd.id, version)
        if stored:
            return stored
        return self.computed_layout(fd, version, data_dump)

    @staticmethod
    def _list_rows_dump(fd: FormDefinition, data: dict | None) -> dict | None:
        """``data``'s Python dump when a list has more rows than the blank form prints (a
        page's worth: ``rows_per_page``), else None: the blank's layout has its rows."""
        def more_than_a_page(f) -> bool:
            value = get_path(data, f.path)
            return isinstance(value, list) and len(value) > max(f.rows_per_page or 8, f.min_rows or 0)

        if not data or not any(more_than_a_page(f) for f in fd.fields if f.type == "list"):
            return None
        try:
            return fd.model.model_validate(data).model_dump(mode="python")
        except ValueError:   # data of an older definition: the blank's rows then
            return None

    def computed_layout(self, fd: FormDefinition, version: str | None,
                        data_dump: dict | None = None) -> dict | None:
        """The current version's layout map for ``data_dump``'s rows, built with the pool."""
        from forms_service.render import layout as layout_mod
        from forms_service.render.pipeline import template_version

        if self.pool is None or (version and version != template_version(fd, self.settings)):
            return None
        return layout_mod.layout_for(fd, settings=self.settings, pool=self.pool, data_dump=data_dump)


def fit_layout(layout: dict, glyphs: list[tuple[int, list[float]]]) -> dict:
    """The layout moved onto the boxes actually printed: ``glyphs`` are the (page, bbox)
    of the ☐/☒ glyphs of the issued PDF, in content order.

    A form without lists is read with its version's blank layout, but data can move
    boxes (a longer pre-filled line pushes a table down a few points), and a list's rows
    that wrap can push the following pages on by one (seed 7, batch 25: a CERP printed
    on 7 pages, its layout map of 6; its boxes 26 pt lower on page 3 and a page later
    from page 4 on, read confidently one row off). When the glyphs match the layout's
    boxes one for one (same count, each page's boxes on one printed page, in order), each
    box takes its glyph's place and page, and each zone moves like the nearest box above
    it on its page (the content above a zone is what pushes it), to the page its page's
    boxes went to. Otherwise the layout is returned unchanged.
    """
    boxes = layout.get("boxes") or []
    if len(glyphs) != len(boxes):
        return layout
    pages: dict[int, int] = {}     # layout page → printed page
    for (page, _), b in zip(glyphs, boxes):
        if pages.setdefault(b["page"], page) != page:
            return layout
    order = sorted(pages)
    if any(pages[a] >= pages[b] for a, b in zip(order, order[1:])):
        return layout

    def printed_page(n: int) -> int:   # a page without boxes follows the page before it
        before = [p for p in order if p <= n]
        return n + (pages[before[-1]] - before[-1] if before else 0)

    moved = []
    shifts: dict[int, list[tuple[float, float, float]]] = {}
    for (page, bbox), b in zip(glyphs, boxes):
        dx, dy = bbox[0] - b["bbox"][0], bbox[1] - b["bbox"][1]
        shifts.setdefault(b["page"], []).append((b["bbox"][1], dx, dy))
        moved.append({**b, "page": page, "bbox": [round(float(v), 2) for v in bbox]})
    zones = []
    for z in layout.get("zones") or []:
        above = [s for s in shifts.get(z["page"], []) if s[0] <= z["bbox"][1] + 1]
        new = {**z, "page": printed_page(z["page"])}
        if above:
            _, dx, dy = max(above, key=lambda s: s[0])
            if abs(dy) > 0.25:
                x0, top, x1, bottom = z["bbox"]
                new["bbox"] = [x0, round(top + dy, 2), x1, round(bottom + dy, 2)]
        zones.append(new)
    return {**layout, "boxes": moved, "zones": zones}

"""The layout map: where each checkbox, text zone and signature zone of a form is printed.

Nobody measures a template by hand. The map of a form at one template version (and
one number of printed rows per list) is derived from real renders of blank data,
nothing ticked, nothing written, list rows as in the data asked for:

1. a *probe* DOCX, rendered with :class:`~forms_service.render.context.Recording` in
   probe mode (``for_pdf=True``): the Jinja ``finalize`` hook records, in document
   order, one :class:`~forms_service.render.context.Mark` per printed box, text zone
   and signature zone, and each text or signature zone prints a marker ``⟦n⟧`` (``n`` =
   index of its mark); and the same data rendered normally (the *printed* DOCX);
2. both converted to PDF by the LibreOffice pool (side by side);
3. both read with pdfplumber, in content order. The i-th ☐/☒ glyph (U+2610 / U+2612)
   is the i-th recorded box, in both PDFs (the counts must match, else
   :class:`~forms_service.errors.TemplateError`); its bbox is the glyph's *ink* square
   in the printed PDF, from the font's own outline box (read from the installed font
   file the PDF names), not the glyph's advance box. Each marker ``⟦n⟧`` of the probe
   is found by position (LibreOffice writes a line font by font, so its digits and
   brackets are not contiguous in content order) and carried over to the printed PDF
   by the shift of a nearby label character (both PDFs print the same text in the same
   order, markers aside); the zone is the table cell there that encloses it (rays cast
   to the page's ruling lines) minus the label text printed in the cell, or a
   line-sized box after the marker when no cell encloses it.

Positions come from the printed render because the probe's markers may change line
heights (an empty paragraph is not as tall as one holding a marker): the map is that of
the document a person fills in by hand. A render whose *values* change row heights
(text at a larger size than its label, text wrapping) moves what follows; see
``docs/layout-map.md``.

Format (a contract; bboxes ``[x0, top, x1, bottom]`` in PDF points from the page's
top-left corner; see ``docs/layout-map.md``)::

    {"form": "fiche-liaison", "template_version": "041084df1be1", "rows": {},
     "pages": [{"number": 1, "width": 595.3, "height": 841.9}, ...],
     "boxes": [{"page": 2, "path": "suspension.motifs", "value": "refus_controle",
                "label": "Refus de se soumettre au contrôle", "bbox": [...]}, ...],
     "zones": [{"page": 3, "path": "signature_referent", "kind": "signature",
                "bbox": [...]}, ...]}

``rows`` gives the number of rows each list (table loop) printed, padding included.

Maps are cached in memory by (form, template version, printed rows); the blank form's
map is also stored in the ``template_version`` table, whose rows are never deleted nor
their maps overwritten: a printed document is read back with the map of the version it
names, even after the template changed or LibreOffice was upgraded.

This module holds the probe data, the renders and the cache; the reading of the PDFs is
:mod:`~forms_service.render.layout_analysis` (glyph squares:
:mod:`~forms_service.render.layout_glyphs`), the stored maps
:mod:`~forms_service.render.layout_store`, the command line
:mod:`~forms_service.render.layout_cli`.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..catalogue import FormDefinition
from ..catalogue.boxes import is_ticked
from ..catalogue.paths import get_path, set_path
from ..config import Settings
from ..errors import TemplateError
from .context import Mark, Recording
from .layout_analysis import analyse_pdf
from .layout_store import save_layout, stored_layout
from .pipeline import file_digest, render_docx, template_path, template_version

log = logging.getLogger(__name__)

#: Document id printed by probe renders (never stamped: the probe PDF is thrown away).
PROBE_DOCUMENT_ID = "LAYOUT"


# --------------------------------------------------------------------------- data

_get, _set = get_path, set_path


def _blank(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _blank(v) for k, v in value.items()}
    if isinstance(value, list):
        return []
    if isinstance(value, bool):
        return False
    return None


def list_fields(fd: FormDefinition) -> list[str]:
    return [f.path for f in fd.fields if f.type == "list"]


def row_counts(fd: FormDefinition, data_dump: dict | None = None) -> dict[str, int]:
    """Rows of each list (table loop) in ``data_dump`` (0 for every list when None)."""
    counts = {}
    for path in list_fields(fd):
        rows = _get(data_dump, path) if data_dump else None
        counts[path] = len(rows) if isinstance(rows, list) else 0
    return counts


def printed_rows(fd: FormDefinition, marks: list[Mark]) -> dict[str, int]:
    """Rows each list printed (padding included), from a render's marks."""
    out = {}
    for path in list_fields(fd):
        prefix = path + "."
        idx = {m.path[len(prefix):].split(".", 1)[0] for m in marks if m.path.startswith(prefix)}
        out[path] = len({i for i in idx if i.isdigit()})
    return out


def probe_data(fd: FormDefinition, data_dump: dict | None = None) -> dict:
    """Blank data for the map's renders: nothing ticked, nothing written, the same list rows.

    The map therefore depends only on the template and the rows printed, which is what
    it is cached by.
    """
    data = fd.model().model_dump(mode="python")
    for path in list_fields(fd):
        rows = _get(data_dump, path) if data_dump else None
        if isinstance(rows, list):
            _set(data, path, [_blank(r) if isinstance(r, dict) else None for r in rows])
    return data


def _cache_rows(rows: dict[str, int]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(rows.items()))


def render_probe(fd: FormDefinition, *, settings: Settings, version: str,
                 data_dump: dict | None = None) -> tuple[bytes, list[Mark]]:
    """The probe DOCX (markers instead of values, nothing ticked) and its marks in order."""
    rec = Recording(probe=True)
    docx = render_docx(fd, probe_data(fd, data_dump), settings=settings,
                       document_id=PROBE_DOCUMENT_ID, version=version, for_pdf=True, record=rec)
    return docx, rec.marks


def render_blank(fd: FormDefinition, *, settings: Settings, version: str,
                 data_dump: dict | None = None) -> bytes:
    """The printed DOCX of the probe's data: nothing ticked, nothing written, same rows."""
    return render_docx(fd, probe_data(fd, data_dump), settings=settings,
                       document_id=PROBE_DOCUMENT_ID, version=version, for_pdf=True)


def build_layout_and_pdf(fd: FormDefinition, *, settings: Settings, pool,
                         data_dump: dict | None = None, version: str | None = None,
                         probe: tuple[bytes, list[Mark]] | None = None,
                         timings: dict | None = None) -> tuple[dict, bytes]:
    """One layout map (no cache) and the blank PDF it describes (not stamped).

    Two renders of the same blank data (list rows as in ``data_dump``): the probe
    (markers) and the printed one, converted side by side when the pool has two free
    instances. The map's positions are the printed render's. ``timings`` (a dict)
    receives the milliseconds of each step (render, convert, read).
    """
    version = version or template_version(fd, settings)
    t0 = time.perf_counter()
    probe_docx, marks = probe or render_probe(fd, settings=settings, version=version,
                                              data_dump=data_dump)
    rows = printed_rows(fd, marks)
    blank_docx = render_blank(fd, settings=settings, version=version, data_dump=data_dump)
    t1 = time.perf_counter()
    with ThreadPoolExecutor(2, thread_name_prefix="layout") as ex:
        probe_future = ex.submit(pool.convert, probe_docx)
        blank_pdf = pool.convert(blank_docx)
        probe_pdf = probe_future.result()
    t2 = time.perf_counter()
    layout = analyse_pdf(probe_pdf, marks, fd, version, rows, blank_pdf=blank_pdf)
    t3 = time.perf_counter()
    if template_version(fd, settings) != version:
        raise TemplateError(f"Le modèle « {fd.id} » a changé pendant le calcul de sa carte : "
                            "recommencez.", rule="modele_modifie")
    steps = {"render_ms": round((t1 - t0) * 1000, 1), "convert_ms": round((t2 - t1) * 1000, 1),
             "read_ms": round((t3 - t2) * 1000, 1)}
    if timings is not None:
        timings.update(steps)
    log.info("layout map built", extra={"form": fd.id, "template_version": version,
                                        "boxes": len(layout["boxes"]), "zones": len(layout["zones"]),
                                        **steps})
    return layout, blank_pdf


def build_layout(fd: FormDefinition, *, settings: Settings, pool, data_dump: dict | None = None,
                 version: str | None = None) -> dict:
    """One layout map, not cached (see :func:`layout_for`). About 2 s; see the docs."""
    return build_layout_and_pdf(fd, settings=settings, pool=pool, data_dump=data_dump,
                                version=version)[0]


def layout_of_print(fd: FormDefinition, printed_pdf: bytes, *, settings: Settings, pool,
                    data_dump: dict | None = None, version: str | None = None) -> dict:
    """The map of one print *with its values* (not cached; ~1 conversion + 2 reads).

    ``printed_pdf``: the print of ``data_dump`` before stamping. Values can change row
    heights (a value at a larger size than its label, text that wraps): this map follows
    them, where the blank form's map does not.
    """
    version = version or template_version(fd, settings)
    docx, marks = render_probe(fd, settings=settings, version=version, data_dump=data_dump)
    probe_pdf = pool.convert(docx)
    return analyse_pdf(probe_pdf, marks, fd, version, printed_rows(fd, marks), blank_pdf=printed_pdf)


# --------------------------------------------------------------------------- cache

_CACHE: OrderedDict[tuple, dict] = OrderedDict()   # (form, version, printed rows) -> map
_ROWS: OrderedDict[tuple, tuple] = OrderedDict()    # (form, version, data rows) -> printed rows
_CACHE_SIZE = 128
_CACHE_LOCK = threading.Lock()
_BUILD_LOCKS: dict[tuple, threading.Lock] = {}


def clear_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()
        _ROWS.clear()


def _lru_get(store: OrderedDict, key: tuple):
    with _CACHE_LOCK:
        hit = store.get(key)
        if hit is not None:
            store.move_to_end(key)
        return hit


def _lru_put(store: OrderedDict, key: tuple, value, size: int) -> None:
    with _CACHE_LOCK:
        store[key] = value
        store.move_to_end(key)
        while len(store) > size:
            store.popitem(last=False)


def layout_for(fd: FormDefinition, *, settings: Settings, pool, data_dump: dict | None = None,
               session=None) -> dict:
    """The layout map of ``fd`` at its current template version, for ``data_dump``'s list rows.

    Maps are cached by (form, template version, rows printed per list): lists are
    padded to whole pages of rows, so data with 1 or 5 PAP rows shares one map. The
    printed rows come from the probe DOCX (no conversion, ~50 ms), remembered per
    data row counts. Then, with a ``session``, the map stored in ``template_version``
    serves when it has the same printed rows; otherwise the map is built
    (:func:`build_layout_and_pdf`), and stored when the data has no list rows (the
    blank form's map). Returns a copy.
    """
    version = template_version(fd, settings)
    data_rows = row_counts(fd, data_dump)
    rows_key = (fd.id, version, _cache_rows(data_rows))
    printed = _lru_get(_ROWS, rows_key)
    probe = None
    if printed is None:
        probe = render_probe(fd, settings=settings, version=version, data_dump=data_dump)
        printed = _cache_rows(printed_rows(fd, probe[1]))
        _lru_put(_ROWS, rows_key, printed, 8 * _CACHE_SIZE)
    key = (fd.id, version, printed)
    hit = _lru_get(_CACHE, key)
    if hit is not None:
        return copy.deepcopy(hit)
    blank = not any(data_rows.values())
    with _CACHE_LOCK:
        lock = _BUILD_LOCKS.setdefault(key, threading.Lock())
    try:
        with lock:
            hit = _lru_get(_CACHE, key)
            if hit is not None:
                return copy.deepcopy(hit)
            layout = stored_layout(session, fd.id, version) if session is not None else None
            if layout is not None and _cache_rows(layout.get("rows") or {}) != printed:
                layout = None
            if layout is None:
                layout, _ = build_layout_and_pdf(fd, settings=settings, pool=pool,
                                                 data_dump=data_dump, version=version, probe=probe)
                if blank and session is not None:
                    save_layout(session, fd, version, layout,
                                file_digest(template_path(fd, settings)))
            _lru_put(_CACHE, key, layout, _CACHE_SIZE)
    finally:
        with _CACHE_LOCK:
            _BUILD_LOCKS.pop(key, None)
    return copy.deepcopy(layout)


def blank_layout(fd: FormDefinition, settings: Settings, pool, session=None) -> dict:
    """The map of the blank form (no list rows filled) at the current template version."""
    return layout_for(fd, settings=settings, pool=pool, data_dump=None, session=session)


def checked_boxes(fd: FormDefinition, layout: dict, data_dump: dict) -> list[dict]:
    """The boxes of ``layout`` that ``data_dump`` ticks (what a render prints as ☒)."""
    out = []
    for b in layout["boxes"]:
        value = _get(data_dump, b["path"])
        code = b["value"]
        if is_ticked(value, code):
            out.append(b)
    return out

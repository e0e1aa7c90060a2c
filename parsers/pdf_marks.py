"""Marks drawn over the printed boxes of a digital PDF: flattened or re-exported forms.

A fillable PDF ticked in a reader and then flattened (``pdftk … flatten``, pdf-lib's
``flatten()``, PyMuPDF's ``bake()``, "print to PDF") keeps the printed ☐ glyph and
draws the tick over it: a form XObject holding the widget's appearance (a
ZapfDingbats glyph, a vector check mark, an image). The text layer still says ☐,
so the glyphs alone would read every such box empty, with confidence.

So a page where anything but text is drawn over a ☐ glyph (or where a character other
than a box glyph sits inside one) is rasterised at the scan stages' resolution and
each of its boxes is read like a scanned box (:func:`parsers.scan.measure.measure_box`,
:func:`parsers.scan.decide.box_state`): by what is drawn in it. The page is its own
perfect scan (no alignment): the glyph's bbox is the box. Pages where nothing is drawn
over a box are not rendered (our own PDFs: the ☒/☐ glyphs say it all).
"""

from __future__ import annotations

import ctypes

import numpy as np
import pypdfium2.raw as pdfium_c

from forms_service.pdfpages import grey, open_pdf

from .scan import decide, measure

# PDFium page object types (fpdf_edit.h): text, path, image, shading, form XObject
_TEXT, _PATH, _IMAGE, _SHADING, _FORM = 1, 2, 3, 4, 5
#: an object larger than this many boxes is a cell's shading, a rule or a stamp, not a mark
MAX_MARK_AREA = 12.0
#: the part of a box's interior a mark must reach (a rule along its border does not)
INTERIOR = 0.25


#: an object larger than this (pt², ~5 boxes of 10 pt) is never a mark in one box
MAX_OBJECT_AREA = 500.0


def drawn_objects(page) -> tuple[np.ndarray, np.ndarray, dict[int, int]]:
    """Of a PDFium page (open), the bboxes (n×4, top-left origin, PDF points) of

    - its top-level paths, images, shadings and form XObjects small enough to be a mark
      in a box (what may be drawn over a ☐);
    - its form XObjects that do not cover the page: the appearances of flattened widgets,
      text fields included (the service's own stamps cover the page; a widget's bounds
      are those of what it draws: a long value on one line stretches them);

    and which of those widgets drew each text object (address of the PDFium text object →
    index in the second array; :func:`text_owner` reads it for a char).
    """
    w, h = page.get_size()
    left, bottom, right, top = (ctypes.c_float() for _ in range(4))
    refs = [ctypes.byref(v) for v in (left, bottom, right, top)]
    marks, forms, owners = [], [], {}
    for j in range(pdfium_c.FPDFPage_CountObjects(page)):
        obj = pdfium_c.FPDFPage_GetObject(page, j)
        kind = pdfium_c.FPDFPageObj_GetType(obj)
        if kind not in (_PATH, _IMAGE, _SHADING, _FORM):
            continue
        if not pdfium_c.FPDFPageObj_GetBounds(obj, *refs):
            continue
        rect = (left.value, h - top.value, right.value, h - bottom.value)
        area = (right.value - left.value) * (top.value - bottom.value)
        if area <= MAX_OBJECT_AREA:
            marks.append(rect)
        if kind == _FORM and not (right.value - left.value >= 0.8 * w and top.value - bottom.value >= 0.8 * h):
            _own_texts(obj, len(forms), owners)
            forms.append(rect)
    return np.array(marks, float).reshape(-1, 4), np.array(forms, float).reshape(-1, 4), owners


def _address(obj) -> int:
    return ctypes.cast(obj, ctypes.c_void_p).value or 0


def _own_texts(form, index: int, owners: dict[int, int], depth: int = 0) -> None:
    """Mark every text object inside a form XObject (nested forms included) as its."""
    if depth > 8:
        return
    for k in range(pdfium_c.FPDFFormObj_CountObjects(form)):
        child = pdfium_c.FPDFFormObj_GetObject(form, k)
        kind = pdfium_c.FPDFPageObj_GetType(child)
        if kind == _TEXT:
            owners[_address(child)] = index
        elif kind == _FORM:
            _own_texts(child, index, owners, depth + 1)


#: FPDFText_GetTextObject answering the object's address (an int), not a ctypes pointer:
#: called once per char of a flattened page, the pointer's cast would double the reading
_text_object_address = ctypes.cast(pdfium_c.FPDFText_GetTextObject,
                                   ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int))


def text_owner(textpage, char_index: int, owners: dict[int, int]) -> int | None:
    """The flattened widget (index in :func:`drawn_objects`' second array) that drew a char
    of the text page (a raw FPDF_TEXTPAGE), or None (the page's own text: labels, printed
    values)."""
    if not owners:
        return None
    return owners.get(_text_object_address(textpage, char_index))


def covered(bbox: list[float], rects: np.ndarray | None) -> bool:
    """Whether one of ``rects`` covers most of ``bbox`` and is not much larger (a flattened
    widget drawn where the zone is)."""
    if rects is None or not len(rects):
        return False
    x0, y0, x1, y1 = bbox
    ix = np.clip(np.minimum(rects[:, 2], x1) - np.maximum(rects[:, 0], x0), 0, None)
    iy = np.clip(np.minimum(rects[:, 3], y1) - np.maximum(rects[:, 1], y0), 0, None)
    area = max((x1 - x0) * (y1 - y0), 1e-6)
    size = (rects[:, 2] - rects[:, 0]) * (rects[:, 3] - rects[:, 1])
    return bool(((ix * iy >= 0.5 * area) & (size <= 4 * area)).any())


def widget_over(bbox: list[float], rects: np.ndarray | None) -> int | None:
    """The flattened widget drawn where a zone is (index in ``rects``), or None.

    A widget's bounds are those of what it draws, from its own corner: a long value that
    pdf-lib or pypdf clipped stretches its widget over the next cells, and an empty
    widget draws nothing. So the zone's widget is one whose top-left corner lies in the
    zone and which covers part of it: the one whose corner is nearest the zone's.
    """
    if rects is None or not len(rects):
        return None
    x0, y0, x1, y1 = bbox
    tol = 3.0
    corner_in = (rects[:, 0] >= x0 - tol) & (rects[:, 0] <= x1) & (rects[:, 1] >= y0 - tol) & (rects[:, 1] <= y1)
    ix = np.clip(np.minimum(rects[:, 2], x1) - np.maximum(rects[:, 0], x0), 0, None)
    iy = np.clip(np.minimum(rects[:, 3], y1) - np.maximum(rects[:, 1], y0), 0, None)
    size = np.maximum((rects[:, 2] - rects[:, 0]) * (rects[:, 3] - rects[:, 1]), 1e-6)
    ok = np.nonzero(corner_in & (ix * iy >= 0.3 * np.minimum(max((x1 - x0) * (y1 - y0), 1e-6), size)))[0]
    if not len(ok):
        return None
    dist = np.hypot(rects[ok, 0] - x0, rects[ok, 1] - y0)
    return int(ok[np.argmin(dist)])


def _reaches(rects: np.ndarray, inner: np.ndarray, areas: np.ndarray, max_ratio: float) -> bool:
    """Whether one of ``rects`` (n×4) reaches into one of the interiors ``inner`` (m×4) and
    is at most ``max_ratio`` times that box's area."""
    if not len(rects) or not len(inner):
        return False
    r = rects[:, None, :]
    size = ((r[..., 2] - r[..., 0]) * (r[..., 3] - r[..., 1]))
    hit = (inner[:, 0] <= r[..., 2]) & (r[..., 0] <= inner[:, 2]) & \
          (inner[:, 1] <= r[..., 3]) & (r[..., 1] <= inner[:, 3]) & (size <= max_ratio * areas)
    return bool(hit.any())


def overdrawn_pages(boxes: list[tuple[int, list[float]]], drawn: dict[int, np.ndarray],
                    stray_chars: dict[int, list[tuple[float, float]]]) -> set[int]:
    """Pages (1-based) where something other than the printed glyph is drawn in a box.

    ``boxes``: (page, bbox top-left origin, PDF points) of the ☐/☒ glyphs; ``drawn``: per
    page, the small non-text objects (:func:`drawn_objects`); ``stray_chars``: per page,
    the centres of characters that are not box glyphs (a ZapfDingbats tick as text).
    """
    by_page: dict[int, list[list[float]]] = {}
    for page, bbox in boxes:
        by_page.setdefault(page, []).append(bbox)
    found = set()
    for page, bbs in by_page.items():
        b = np.array(bbs, float)
        areas = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        dx, dy = (b[:, 2] - b[:, 0]) * INTERIOR, (b[:, 3] - b[:, 1]) * INTERIOR
        inner = np.stack([b[:, 0] + dx, b[:, 1] + dy, b[:, 2] - dx, b[:, 3] - dy], axis=1)
        pts = np.array(stray_chars.get(page) or [], float).reshape(-1, 2)
        if _reaches(drawn.get(page, np.zeros((0, 4))), inner, areas, MAX_MARK_AREA) or \
                _reaches(np.hstack([pts, pts]), inner, areas, np.inf):
            found.add(page)
    return found


def drawn_states(data: bytes, boxes: list[tuple[int, list[float]]], pages: set[int]) -> dict[int, decide.BoxState]:
    """Index in ``boxes`` → the box's state read from the rendered page, for boxes on ``pages``."""
    states: dict[int, decide.BoxState] = {}
    if not pages:
        return states
    with open_pdf(data) as doc:
        images = {}
        for n in sorted(pages):
            page = doc[n - 1]
            try:
                images[n] = measure.flatten_light(grey(page, measure.WORK_DPI))
            finally:
                page.close()
    for i, (page, bbox) in enumerate(boxes):
        if page in images:
            states[i] = decide.box_state(measure.measure_box(images[page], bbox))
    return states

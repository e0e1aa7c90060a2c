"""Page geometry contract shared by the templates, the PDF stamp and the scan reader.

Every printed page is A4 portrait. Its margins carry what lets a scan identify and
align itself (see :mod:`forms_service.render.stamp` and :mod:`parsers.scan`):

* four registration marks ("bullseye" rings: black disc 5 mm, white hole 2.5 mm),
  centred 9 mm from the nearest edges, except the bottom-right one which is moved
  10 mm to the left so that the four centres are not symmetric under a 180° turn;
* the same QR code twice, at the top-right and bottom-left corners (diagonally
  opposite, so one torn or stained corner does not lose it): version 5 (37×37
  modules), error correction M or better, modules of 0.5 mm, so an 18.5 mm symbol
  with a 4-module (2 mm) quiet zone around it;
* a small footer line (form, template version, page, document id) in the bottom
  band, between the bottom-left QR and the bottom-right mark.

Nothing is inked closer than 6 mm to a paper edge (office printers cannot print the
outer 4–5 mm; "fit to page" printing shrinks a few per cent towards the centre).

**Margins the DOCX templates must use** (body text never enters the bands above)::

    top 27 mm, bottom 27 mm, left 14 mm, right 14 mm

The top and bottom bands are set by the QR: 6 mm edge clearance + 18.5 mm symbol +
2 mm quiet zone = 26.5 mm, rounded up. The side margins only need to clear the marks
(ink 6.5–11.5 mm from the edge) by 2.5 mm. The DOCX header and footer parts must stay
empty in the PDF rendering path (the stamp writes the footer line); the DOCX download
puts its QR (see :func:`forms_service.render.qr.qr_png`) in the header, right-aligned,
header distance 4 mm, so that it lands roughly where :data:`QR_TOP_RIGHT` is.

Coordinates: PDF points (1/72 in), origin at the top-left corner of the page, y
downwards; boxes are ``(x0, top, x1, bottom)`` like the rest of the project (the
pdfplumber convention). Points are ``(x, y)``.
"""

from __future__ import annotations

from typing import NamedTuple

MM = 72 / 25.4
"""Points per millimetre."""

PAGE_WIDTH = 595.276
PAGE_HEIGHT = 841.89
PAGE_SIZE = (PAGE_WIDTH, PAGE_HEIGHT)
PAGE_SIZE_TOLERANCE = 2.0
"""A PDF page whose size differs from A4 by more than this (points) is not stamped."""


def mm(value: float) -> float:
    """Millimetres to points."""
    return value * MM


def _box_mm(x0: float, top: float, x1: float, bottom: float) -> tuple[float, float, float, float]:
    return (mm(x0), mm(top), mm(x1), mm(bottom))


class Margins(NamedTuple):
    top: float
    bottom: float
    left: float
    right: float


EDGE_CLEARANCE_MM = 6.0
MARGINS_MM = Margins(top=27.0, bottom=27.0, left=14.0, right=14.0)
MARGINS = Margins(*(mm(v) for v in MARGINS_MM))
"""Page margins of every template, in points (same fields as :data:`MARGINS_MM`)."""

CONTENT_BOX = (MARGINS.left, MARGINS.top, PAGE_WIDTH - MARGINS.right, PAGE_HEIGHT - MARGINS.bottom)
"""Where template content may be printed."""

# --- registration marks --------------------------------------------------------------

MARK_OUTER_DIAMETER_MM = 5.0
MARK_INNER_DIAMETER_MM = 2.5
MARK_OUTER_RADIUS = mm(MARK_OUTER_DIAMETER_MM) / 2
MARK_INNER_RADIUS = mm(MARK_INNER_DIAMETER_MM) / 2
MARK_OFFSET_MM = 9.0
"""Distance of a mark centre from its two nearest page edges."""
MARK_ASYMMETRY_MM = 10.0
"""How far the bottom-right mark is moved left, to make a 180° turn detectable."""

MARK_NAMES = ("top_left", "top_right", "bottom_right", "bottom_left")
MARK_CENTERS: tuple[tuple[float, float], ...] = (
    (mm(MARK_OFFSET_MM), mm(MARK_OFFSET_MM)),
    (PAGE_WIDTH - mm(MARK_OFFSET_MM), mm(MARK_OFFSET_MM)),
    (PAGE_WIDTH - mm(MARK_OFFSET_MM + MARK_ASYMMETRY_MM), PAGE_HEIGHT - mm(MARK_OFFSET_MM)),
    (mm(MARK_OFFSET_MM), PAGE_HEIGHT - mm(MARK_OFFSET_MM)),
)
"""Centres of the four marks, in the order of :data:`MARK_NAMES` (clockwise from top-left)."""

# --- QR codes --------------------------------------------------------------------------

QR_VERSION = 5
QR_MODULES = 17 + 4 * QR_VERSION  # 37
QR_MODULE_MM = 0.5
QR_MODULE = mm(QR_MODULE_MM)
QR_QUIET_MODULES = 4
QR_SIZE = QR_MODULES * QR_MODULE
"""Side of the printed symbol, without quiet zone (18.5 mm)."""
QR_QUIET = QR_QUIET_MODULES * QR_MODULE

_QR_SIZE_MM = QR_MODULES * QR_MODULE_MM
_QR_TR_X1_MM = 210.0 - MARGINS_MM.right          # aligned with the body's right edge
_QR_TR_TOP_MM = EDGE_CLEARANCE_MM
_QR_BL_X0_MM = MARGINS_MM.left                    # aligned with the body's left edge
_QR_BL_BOTTOM_MM = 297.0 - EDGE_CLEARANCE_MM

QR_TOP_RIGHT = _box_mm(_QR_TR_X1_MM - _QR_SIZE_MM, _QR_TR_TOP_MM, _QR_TR_X1_MM, _QR_TR_TOP_MM + _QR_SIZE_MM)
"""Symbol box (dark modules' extent, quiet zone outside it) of the top-right QR."""
QR_BOTTOM_LEFT = _box_mm(_QR_BL_X0_MM, _QR_BL_BOTTOM_MM - _QR_SIZE_MM, _QR_BL_X0_MM + _QR_SIZE_MM, _QR_BL_BOTTOM_MM)
"""Symbol box of the bottom-left QR."""
QR_BOXES = {"top_right": QR_TOP_RIGHT, "bottom_left": QR_BOTTOM_LEFT}

# --- footer ----------------------------------------------------------------------------

FOOTER_FONT_SIZE = 6.5
FOOTER_MIN_FONT_SIZE = 4.5
FOOTER_BOX = _box_mm(36.0, 286.0, 186.0, 290.0)
"""The footer line is centred horizontally on the page inside this box (shrunk if too long)."""
FOOTER_BASELINE = mm(289.0)


def outset(box: tuple[float, float, float, float], d: float) -> tuple[float, float, float, float]:
    """``box`` grown by ``d`` points on every side."""
    x0, top, x1, bottom = box
    return (x0 - d, top - d, x1 + d, bottom + d)


def mark_box(center: tuple[float, float]) -> tuple[float, float, float, float]:
    x, y = center
    r = MARK_OUTER_RADIUS
    return (x - r, y - r, x + r, y + r)


RESERVED_BOXES: dict[str, tuple[float, float, float, float]] = {
    **{f"mark_{n}": outset(mark_box(c), mm(2)) for n, c in zip(MARK_NAMES, MARK_CENTERS)},
    "qr_top_right": outset(QR_TOP_RIGHT, QR_QUIET),
    "qr_bottom_left": outset(QR_BOTTOM_LEFT, QR_QUIET),
    "footer": FOOTER_BOX,
}
"""Areas (with their clearances) that nothing else may print on; all lie outside :data:`CONTENT_BOX`."""


def _check() -> None:
    cx0, ctop, cx1, cbottom = CONTENT_BOX
    for name, (x0, top, x1, bottom) in RESERVED_BOXES.items():
        overlaps = x0 < cx1 and cx0 < x1 and top < cbottom and ctop < bottom
        assert not overlaps, name
        assert min(x0, top, PAGE_WIDTH - x1, PAGE_HEIGHT - bottom) >= 0, name
    for box in (QR_TOP_RIGHT, QR_BOTTOM_LEFT, *map(mark_box, MARK_CENTERS)):
        x0, top, x1, bottom = box
        assert min(x0, top, PAGE_WIDTH - x1, PAGE_HEIGHT - bottom) >= mm(EDGE_CLEARANCE_MM) - 1e-6


_check()

"""Stage 3 of scan reading: how much ink is in each box and zone.

Works on the page rectified to :data:`WORK_DPI` (pixel = PDF point × k), after
flat-fielding (uneven light, photocopy grey). For a checkbox, the printed
square is found again locally (a scan is never aligned to the pixel), its
border is excluded, and three numbers describe the interior, as SDAPS does:

- ``darkness``: mean ink (0 white … 1 black), which sees faint pencil;
- ``coverage``: share of clearly inked pixels;
- ``solid``: share left once thin strokes are opened away, high only for a
  box blackened all over (a correction), never for a cross or a tick.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

WORK_DPI = 200.0
K = WORK_DPI / 72.0                    # pixels per PDF point
PX_PER_MM = WORK_DPI / 25.4
BOX_MM = 3.55                          # printed side of ☐ (DejaVu Sans 14 pt), measured


def flatten_light(gray: np.ndarray) -> np.ndarray:
    """Divide by the paper's local brightness, so paper is ~255 everywhere."""
    small = cv2.resize(gray, None, fx=0.125, fy=0.125, interpolation=cv2.INTER_AREA)
    bg = cv2.morphologyEx(small, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (9, 9)))
    bg = cv2.GaussianBlur(bg, (5, 5), 0)
    bg = np.maximum(bg, 40)
    bg = cv2.resize(bg, (gray.shape[1], gray.shape[0]), interpolation=cv2.INTER_LINEAR)
    return cv2.divide(gray, bg, scale=255.0)   # uint8, saturating, rounded


@dataclass
class BoxInk:
    darkness: float
    coverage: float
    light: float                        # share of pixels lighter marks reach (pencil)
    solid: float
    square: tuple[int, int, int, int]   # where the printed square was found (pixels)
    found: bool                         # the square's border was found (else: expected place)
    #: the only ink is one or two specks between DUST_MM and DOT_MM: dust or a tiny dot,
    #: nobody can tell from the figures (:func:`decide.box_state` makes it uncertain)
    speck: bool = False
    #: a dark line runs through the box and on past it both ways (a fax's dark scan line):
    #: what it covers cannot be told (:func:`decide.box_state` makes a mark uncertain)
    streak: bool = False
    #: specks were taken out as dust (what remains may be a faint mark broken into grains)
    dusted: bool = False
    #: the hollow-square match's peak (``found`` above MATCH_FOUND)
    match: float = 0.0
    #: how far (mm) the square was found from where the alignment puts it (when found)
    offset_mm: float = 0.0


#: the hollow-square match's peak above which the printed square is found again
MATCH_FOUND = 0.25


@lru_cache(maxsize=4)
def _square_kernel(side: int, band: int) -> np.ndarray:
    """A zero-mean hollow square: +1 on the outline band, −1 inside, scaled to sum to 0.

    Correlated with the ink image it peaks on the printed square's outline, even
    when a table rule touches one side or a cross fills the inside, and stays low
    on a blackened area (outline and inside cancel out).
    """
    k = np.zeros((side, side), np.float32)
    ring = np.zeros((side, side), bool)
    ring[:band, :] = ring[-band:, :] = ring[:, :band] = ring[:, -band:] = True
    inside = np.zeros((side, side), bool)
    inside[2 * band:-2 * band, 2 * band:-2 * band] = True
    k[ring] = 1.0 / ring.sum()
    k[inside] = -1.0 / inside.sum()
    return k


def measure_box(flat: np.ndarray, bbox_pt: list[float]) -> BoxInk:
    """Ink inside the checkbox whose printed square is ``bbox_pt`` (layout map, PDF points)."""
    x0, top, x1, bottom = bbox_pt
    cx, cy = (x0 + x1) / 2 * K, (top + bottom) / 2 * K
    side = int(round(max(x1 - x0, bottom - top) * K)) or int(round(BOX_MM * PX_PER_MM))
    band = max(2, int(round(0.25 * PX_PER_MM)))
    search = int(round(1.2 * PX_PER_MM))
    X0, Y0 = int(round(cx - side / 2)) - search, int(round(cy - side / 2)) - search
    X1, Y1 = X0 + side + 2 * search, Y0 + side + 2 * search
    if X0 < 0 or Y0 < 0 or X1 > flat.shape[1] or Y1 > flat.shape[0]:
        return BoxInk(0, 0, 0, 0, (X0, Y0, X1, Y1), False)
    crop = flat[Y0:Y1, X0:X1]
    ink_img = (255.0 - crop.astype(np.float32)) / 255.0
    score = cv2.matchTemplate(ink_img, _square_kernel(side, band), cv2.TM_CCORR)
    _, best, _, (bx, by) = cv2.minMaxLoc(score)
    found = best > MATCH_FOUND
    if not found:            # blackened or lost: trust the alignment
        bx, by = search, search
    m = band + max(1, int(round(0.3 * PX_PER_MM)))   # the outline, and some slack, left out
    inner = crop[by + m:by + side - m, bx + m:bx + side - m]
    square = (X0 + bx, Y0 + by, X0 + bx + side, Y0 + by + side)
    offset = float(np.hypot(bx - search, by - search)) / PX_PER_MM
    if inner.size == 0:
        return BoxInk(0, 0, 0, 0, square, found, match=float(best), offset_mm=offset)
    streak = _scan_line_through(crop, bx, by, side, m)
    cleaned, speck = _without_dust(inner)
    dusted = cleaned is not inner
    inner = cleaned
    ink = (255.0 - inner.astype(np.float32)) / 255.0
    darkness = float(ink.mean())
    coverage = float((inner < 128).mean())
    light = float((inner < 200).mean())
    k = max(3, int(round(0.9 * PX_PER_MM)))
    opened = cv2.morphologyEx((inner < 128).astype(np.uint8), cv2.MORPH_OPEN,
                              cv2.getStructuringElement(cv2.MORPH_RECT, (k, k)))
    solid = float(opened.mean())
    return BoxInk(darkness, coverage, light, solid, square, found, speck, streak, dusted, float(best), offset)


def _scan_line_through(crop: np.ndarray, bx: int, by: int, side: int, m: int) -> bool:
    """Whether a row of the box's interior is inked across, and so are the same row's pixels
    left and right of the printed square (a scan line across the page, not a mark: seed 17,
    batch 45, page 5, a fax's dark line through an empty box read as a tick)."""
    left, right = crop[:, :max(0, bx - 1)], crop[:, bx + side + 1:]
    if left.shape[1] < 3 or right.shape[1] < 3:
        return False
    rows = slice(by + m, by + side - m)
    inner = crop[rows, bx + m:bx + side - m] < 128
    across = (inner.mean(axis=1) > 0.9) & ((left[rows] < 128).mean(axis=1) > 0.9) & \
        ((right[rows] < 128).mean(axis=1) > 0.9)
    return bool(across.any())


DUST_MM = 1.0                          # dust specks reach 0.8 mm on a 1-bit scan; a pen dot is 1.3 mm or more
#: a speck up to this size is not taken for a mark with confidence: a fax's dust, one or two
#: of its 100-dpi pixels, grows to ~1 mm once resampled to WORK_DPI (seed 7, batch 12, page 1)
DOT_MM = 1.3
SPILL_BAND = 0.3                       # ink against one edge, no deeper than this share of the box: spilt in


def _without_dust(inner: np.ndarray) -> tuple[np.ndarray, bool]:
    """The box interior without dust (one or two specks smaller than DUST_MM, and nothing else)
    nor ink spilt in from a neighbour (against one edge, less than SPILL_BAND deep); and
    whether what is left is only one or two specks smaller than DOT_MM (dust or a tiny dot).

    Scanner dust in an empty box reads like a faint mark (4–7 % of the interior); a real mark
    is a stroke (ticks, crosses), a blob of 1.3 mm or more (a pressed dot) or many grains
    along a line (pencil), which are all kept.
    """
    marked = (inner < 200).astype(np.uint8)
    if not marked.any():
        return inner, False
    n, labels, stats, _ = cv2.connectedComponentsWithStats(marked, connectivity=8)
    h, w = inner.shape
    x, y = stats[1:, cv2.CC_STAT_LEFT], stats[1:, cv2.CC_STAT_TOP]
    cw, ch = stats[1:, cv2.CC_STAT_WIDTH], stats[1:, cv2.CC_STAT_HEIGHT]
    # ink spilt in from outside: a neighbour box blackened all over overflows its border and
    # the next box's (a band along one edge, against it); a tick crossing the border reaches
    # the middle of the box
    band = SPILL_BAND
    spill = (((y == 0) & (y + ch <= band * h)) | ((y + ch == h) & (y >= (1 - band) * h)) |
             ((x == 0) & (x + cw <= band * w)) | ((x + cw == w) & (x >= (1 - band) * w)))
    drop = spill.copy()
    rest = ~spill
    extent = np.maximum(cw, ch)[rest]
    speck = 0 < rest.sum() <= 2 and not (extent > DOT_MM * PX_PER_MM).any()
    if rest.sum() <= 2 and not (extent > DUST_MM * PX_PER_MM).any():
        drop |= rest
        speck = False
    if not drop.any():
        return inner, speck
    clean = inner.copy()
    clean[np.isin(labels, np.nonzero(drop)[0] + 1)] = 255
    return clean, speck


@dataclass
class ZoneInk:
    ink: float              # share of inked pixels not explained by the printed form
    width_mm: float         # horizontal extent of that ink
    height_mm: float


ZONE_INK = 185                         # a pixel of handwriting in a zone (paper is ~255 after flat-fielding)


PRINTED_INK = 230                      # the printed page's ink, anti-aliased edges included
PRINTED_SLACK_MM = 1.0                 # widened this much each way: misalignment, and print that
                                       # a photocopy and blur made bolder (up to ~0.8 mm seen)


def printed_mask(reference: np.ndarray) -> np.ndarray:
    """Where the printed page has ink, widened by PRINTED_SLACK_MM each way."""
    k = int(2 * PRINTED_SLACK_MM * PX_PER_MM) | 1
    return cv2.dilate((reference < PRINTED_INK).astype(np.uint8),
                      cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))) > 0


def measure_zone(flat: np.ndarray, bbox_pt: list[float], reference: np.ndarray | None,
                 *, printed: np.ndarray | None = None) -> ZoneInk:
    """Handwriting in a zone: ink on the scan that the printed page does not have there.

    ``reference`` is the printed page rendered at the same resolution (its ink is masked
    out, dilated to absorb a residual misalignment), or ``printed`` that mask already
    made for the whole page (:func:`printed_mask`); without either, the top 4 mm of the
    zone (where its label is printed) are left out.
    """
    x0, top, x1, bottom = (int(round(v * K)) for v in bbox_pt)
    m = int(0.8 * PX_PER_MM)
    x0, top, x1, bottom = max(0, x0 + m), max(0, top + m), x1 - m, bottom - m
    crop = flat[top:bottom, x0:x1]
    if crop.size == 0:
        return ZoneInk(0.0, 0.0, 0.0)
    ink = crop < ZONE_INK   # pencil reads ~150–170 once flat-fielded
    if printed is None and reference is not None and reference.shape == flat.shape:
        printed = printed_mask(reference[top:bottom, x0:x1])
        ink &= ~printed
    elif printed is not None and printed.shape == flat.shape:
        ink &= ~printed[top:bottom, x0:x1]
    else:
        ink[: int(4 * PX_PER_MM)] = False
    if not ink.any():
        return ZoneInk(0.0, 0.0, 0.0)
    # speckles and JPEG ringing are small: keep components of some size only
    n, labels, stats, _ = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    keep = np.zeros(n, bool)
    keep[1:] = (stats[1:, cv2.CC_STAT_AREA] >= 6) & (
        np.maximum(stats[1:, cv2.CC_STAT_WIDTH], stats[1:, cv2.CC_STAT_HEIGHT]) >= 0.8 * PX_PER_MM)
    ink = keep[labels]
    if not ink.any():
        return ZoneInk(0.0, 0.0, 0.0)
    ys, xs = np.nonzero(ink)
    return ZoneInk(float(ink.mean()), float((xs.max() - xs.min() + 1) / PX_PER_MM),
                   float((ys.max() - ys.min() + 1) / PX_PER_MM))

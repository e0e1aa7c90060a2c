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
    #: a stroke the printed page does not have runs through the box and on beyond it on
    #: opposite sides (handwriting of a neighbouring zone, a line): its ink inside is no tick
    #: anyone can vouch for (:func:`decide.box_state` makes a mark uncertain)
    crossed: bool = False


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


def measure_box(flat: np.ndarray, bbox_pt: list[float], reference: np.ndarray | None = None,
                others: list[list[float]] | np.ndarray = (), moved: tuple[float, float] = (0.0, 0.0)) -> BoxInk:
    """Ink inside the checkbox whose printed square is ``bbox_pt`` (layout map, PDF points).

    ``reference``: the printed page at the same resolution (what was printed around the
    box), which tells a stroke crossing the box from a mark in it (:func:`crossing_stroke`);
    without it that is not looked at. ``moved``: where (pixels, dx, dy) the page's content
    near the box says it lies against the alignment (:meth:`fit.PageFit.shift_at`): the
    square is looked for around there, and ``offset_mm`` is how far from there it was found.
    """
    x0, top, x1, bottom = bbox_pt
    mx, my = moved
    cx, cy = (x0 + x1) / 2 * K + mx, (top + bottom) / 2 * K + my
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
    crossed = reference is not None and light >= CROSS_MIN_LIGHT and \
        crossing_stroke(flat, square, reference, (int(round(mx)) + (bx - search if found else 0),
                                                  int(round(my)) + (by - search if found else 0)), others,
                        inner < 128)
    return BoxInk(darkness, coverage, light, solid, square, found, speck, streak, dusted, float(best), offset,
                  crossed)


# A stroke crossing the box (issue 15, seed 37 batch 27 page 4: handwriting of a zone run
# over « Non atteint » and « Offre refusée », read as ticks with confidence 1.0). A tick,
# a cross, a scribble or a dot stays in its box, or overshoots it on one side only (a big
# tick's long arm, up and right) or a little at its corners (a big cross's arms, ≤ 0.9 box
# side from the centre); writing or a line that passes through goes on beyond the box on
# two opposite sides.
#: the band around the box where a crossing stroke is looked for: from this far from the
#: box's centre (box sides, along x or y: 0.35 side beyond its edges)…
CROSS_NEAR = 0.85
#: …to this far
CROSS_FAR = 2.3
#: a piece counts when it begins this near (box sides from the centre: 0.7 side, 2.5 mm,
#: beyond its edges; seed 23 batch 11 page 8: a tick between two lines of handwriting in
#: the cells above and below, 1.6 sides away, is a tick)
CROSS_REACH = 1.2
#: a piece of stroke in that band: a component at least this long (mm; dust and JPEG
#: specks are smaller)…
CROSS_PIECE_MM = 1.0
#: …in each of two directions at least this far apart (degrees) seen from the box
CROSS_OPPOSITE_DEG = 135.0
#: only a box with at least this much light ink is looked at (an empty box stays empty)
CROSS_MIN_LIGHT = 0.03
#: the printed page's ink, widened this much each way (the square found again gives the
#: local shift, so the slack is for print a fax or a photocopy made bolder)
CROSS_PRINTED_SLACK_MM = 0.6
#: the other boxes near it, widened this much (box sides): their own marks are no stroke
CROSS_BOX_SLACK = 0.35


@lru_cache(maxsize=8)
def _band(radius: int, side: int) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """The square band CROSS_NEAR…CROSS_FAR box sides around a window's centre (a mask), how
    far each pixel is from the centre (along x or y, box sides) and its direction (cosine,
    sine)."""
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1].astype(np.float32)
    cheb = np.maximum(np.abs(xx), np.abs(yy))
    band = (cheb >= CROSS_NEAR * side) & (cheb <= CROSS_FAR * side)
    r = np.maximum(np.hypot(xx, yy), 1e-6)
    return band, cheb / side, (xx / r, yy / r)


def crossing_stroke(flat: np.ndarray, square: tuple[int, int, int, int], reference: np.ndarray,
                    shift: tuple[int, int] = (0, 0), others: list[list[float]] | np.ndarray = (),
                    inner_ink: np.ndarray | None = None) -> bool:
    """Whether ink the printed page does not have lies around the box ``square`` (pixels)
    in two opposite directions: a stroke passing through, not a mark in it.

    ``shift``: where the square was found against where the alignment put it (pixels),
    the local misalignment the reference is moved by; ``others``: the page's boxes (PDF
    points, the box itself may be among them), whose marks are left out; ``inner_ink``: the box's interior, inked pixels.
    """
    if reference.shape != flat.shape:
        return False
    x0, y0, x1, y1 = square
    side = x1 - x0
    radius = int(round(CROSS_FAR * side))
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    X0, Y0, X1, Y1 = cx - radius, cy - radius, cx + radius + 1, cy + radius + 1
    dx, dy = shift
    h, w = flat.shape
    if min(X0, Y0, X0 - dx, Y0 - dy) < 0 or max(X1, X1 - dx) > w or max(Y1, Y1 - dy) > h:
        return False
    band, dist, (cos, sin) = _band(radius, side)
    new = (flat[Y0:Y1, X0:X1] < ZONE_INK) & band
    if not new.any():
        return False
    # what was printed there, where the alignment puts it and where the square found again
    # says (a heavy mark can mislead that search: both are left out)
    printed = reference[Y0:Y1, X0:X1] < PRINTED_INK
    if dx or dy:
        printed = printed | (reference[Y0 - dy:Y1 - dy, X0 - dx:X1 - dx] < PRINTED_INK)
    k = int(2 * CROSS_PRINTED_SLACK_MM * PX_PER_MM) | 1
    printed = cv2.dilate(printed.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_RECT, (k, k)))
    if len(others):
        # the other boxes in the window (not the box itself: widened so, it would hide where a
        # stroke leaves it, seed 37 batch 27 page 4)
        grow = CROSS_BOX_SLACK * side
        boxes = np.asarray(others, np.float64) * K
        own = np.hypot((boxes[:, 0] + boxes[:, 2]) / 2 - (cx - dx), (boxes[:, 1] + boxes[:, 3]) / 2 - (cy - dy)) < side / 2
        rects = boxes[~own] + (-grow, -grow, grow, grow) - (X0, Y0, X0, Y0)
        rects = rects[(rects[:, 2] + abs(dx) > 0) & (rects[:, 3] + abs(dy) > 0) &
                      (rects[:, 0] - abs(dx) < X1 - X0) & (rects[:, 1] - abs(dy) < Y1 - Y0)].astype(int)
        for ox0, oy0, ox1, oy1 in rects.tolist():
            for sx, sy in {(0, 0), (dx, dy)}:
                printed[max(0, oy0 + sy):max(0, oy1 + sy), max(0, ox0 + sx):max(0, ox1 + sx)] = 1
    new &= printed == 0
    if not new.any():
        return False
    n, labels, stats, _ = cv2.connectedComponentsWithStats(new.astype(np.uint8), connectivity=8)
    long_ = np.maximum(stats[1:, cv2.CC_STAT_WIDTH], stats[1:, cv2.CC_STAT_HEIGHT]) >= CROSS_PIECE_MM * PX_PER_MM
    # each piece that begins near the box, and its direction from the box (a mean of unit
    # vectors: a piece may straddle 0°); writing in the zones above and below is farther
    if not long_.any():
        return False
    dirs = []
    for i in np.nonzero(long_)[0]:
        x, y, cw, ch = stats[i + 1, :4]
        on = labels[y:y + ch, x:x + cw] == i + 1
        if dist[y:y + ch, x:x + cw][on].min() <= CROSS_REACH:
            dirs.append(float(np.degrees(np.arctan2(sin[y:y + ch, x:x + cw][on].sum(),
                                                    cos[y:y + ch, x:x + cw][on].sum()))))
    if not dirs:
        return False
    if any(_apart(a, b) >= CROSS_OPPOSITE_DEG for i, a in enumerate(dirs) for b in dirs[i + 1:]):
        return True
    # one piece only (the other side hidden by print): the ink inside is one thin straight
    # run across the box, going on beyond it in line with that piece (seed 37, batch 27,
    # page 4: a signature's stroke through « Offre refusée », its far end over a label); not
    # up and right of it, where a big tick's long arm goes (seed 31, batch 11, page 4: a tick
    # whose short arm hardly shows)
    run = _straight_run(inner_ink) if inner_ink is not None else None
    return run is not None and any(min(_apart(a, run), _apart(a, run + 180.0)) <= CROSS_RUN_DEG
                                   and not -90.0 <= a <= 0.0 for a in dirs)


def _apart(a: float, b: float) -> float:
    """Angle between two directions (degrees, 0…180)."""
    return abs((a - b + 180.0) % 360.0 - 180.0)


#: a run is straight and thin when its ink lies within this much of its line (mm, spread)…
CROSS_RUN_SPREAD_MM = 0.25
#: …and crosses this share of the interior (along its line)
CROSS_RUN_SPAN = 0.8
#: a piece beyond the box continues the run when in its direction within this (degrees)
CROSS_RUN_DEG = 25.0


def _straight_run(ink: np.ndarray) -> float | None:
    """The direction (degrees) of the box's ink when it is one thin straight run across the
    interior, edge to edge (a line, not a tick: a tick bends, a cross has two strokes)."""
    m = cv2.moments(ink.astype(np.uint8), binaryImage=True)
    if m["m00"] < 8:
        return None
    # the spread across and the direction of the ink's principal axis, from its moments
    a, b, c = m["mu20"] / m["m00"], m["mu11"] / m["m00"], m["mu02"] / m["m00"]
    across = (a + c) / 2 - np.hypot((a - c) / 2, b)
    if np.sqrt(max(across, 0.0)) > CROSS_RUN_SPREAD_MM * PX_PER_MM:
        return None
    theta = 0.5 * np.arctan2(2 * b, a - c)
    major = np.array([np.cos(theta), np.sin(theta)])
    ys, xs = np.nonzero(ink)
    along = (xs - m["m10"] / m["m00"]) * major[0] + (ys - m["m01"] / m["m00"]) * major[1]
    h, w = ink.shape
    span = abs(major[0]) * w + abs(major[1]) * h   # the interior's length along that line
    if np.ptp(along) < CROSS_RUN_SPAN * min(span, np.hypot(w, h)):
        return None
    return float(np.degrees(theta))


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

"""Hand marks drawn on a page image: ticks, crosses, dots, scribbles, blackened boxes,
signatures and handwriting-like squiggles, in ballpoint, felt-tip or pencil.

Everything here works on one page image (``uint8``, grey ``(H, W)`` or RGB ``(H, W, 3)``)
in pixels, and draws with a :class:`numpy.random.Generator` it is given, so a page is
reproducible from its seed. Strokes are polylines drawn 4× supersampled on a small
patch around the mark, then area-averaged down: widths are right to a fraction of a
pixel, even at 150 dpi, and the edges are anti-aliased like a scanned pen line.

Ink is subtractive: a stroke multiplies the paper by its colour, weighted by its
coverage and opacity, so a tick over a printed box border darkens it instead of
painting over it.

Widths are never below :data:`MIN_STROKE_MM` (0.25 mm), whatever the pen. Pencil is
grey and thin but still ≥ 0.3 mm and dark enough to read on a grey scan; it is never
used on a page that ends up 1-bit (the caller decides, see ``Pen.allowed``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

MIN_STROKE_MM = 0.25
SUPERSAMPLE = 4

#: Mark kinds for a ticked box (``fill`` is the blackened box).
BOX_KINDS = ("tick", "cross", "dot", "scribble", "border")
FILL = "fill"


@dataclass(frozen=True)
class Pen:
    """A writing instrument: ink colour (RGB), opacity, stroke width range in mm."""

    name: str
    rgb: tuple[int, int, int]
    opacity: float
    width_mm: tuple[float, float]
    grain: float = 0.0        # pencil: how much the graphite coverage varies (0–1)

    @property
    def grey(self) -> int:
        r, g, b = self.rgb
        return int(round(0.299 * r + 0.587 * g + 0.114 * b))

    def allowed(self, mode: str) -> bool:
        """Whether this pen may be used on a page scanned in ``mode`` (pencil: never 1-bit)."""
        return not (self.name == "pencil" and mode == "bw")


PENS: dict[str, Pen] = {
    "ballpoint_black": Pen("ballpoint_black", (28, 28, 34), 0.93, (0.30, 0.45)),
    "ballpoint_blue": Pen("ballpoint_blue", (28, 52, 158), 0.92, (0.30, 0.45)),
    "felt_black": Pen("felt_black", (16, 16, 18), 0.97, (0.50, 0.85)),
    "felt_blue": Pen("felt_blue", (20, 48, 170), 0.96, (0.50, 0.85)),
    # Faint grey graphite: on white it reads ~140–165 grey, after damage still visible.
    "pencil": Pen("pencil", (92, 92, 98), 0.62, (0.30, 0.42), grain=0.35),
}


def ink_colour(pen: Pen, channels: int) -> np.ndarray:
    if channels == 1:
        return np.array([pen.grey], np.float32)
    return np.array(pen.rgb, np.float32)


# --------------------------------------------------------------------------- geometry

def _bezier(p0, p1, p2, n: int = 24) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)[:, None]
    p0, p1, p2 = (np.asarray(p, np.float64) for p in (p0, p1, p2))
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2


def _catmull(points: np.ndarray, per_seg: int = 10) -> np.ndarray:
    """A smooth curve through ``points`` (Catmull-Rom)."""
    pts = np.asarray(points, np.float64)
    if len(pts) < 3:
        return pts
    ext = np.vstack([pts[0], pts, pts[-1]])
    out = []
    t = np.linspace(0, 1, per_seg, endpoint=False)[:, None]
    for i in range(1, len(ext) - 2):
        p0, p1, p2, p3 = ext[i - 1], ext[i], ext[i + 1], ext[i + 2]
        out.append(0.5 * ((2 * p1) + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t ** 2
                          + (-p0 + 3 * p1 - 3 * p2 + p3) * t ** 3))
    out.append(pts[-1:])
    return np.vstack(out)


def _wobble(curve: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    """Low-frequency hand tremor: a smooth random offset along the curve."""
    n = len(curve)
    if n < 4 or amount <= 0:
        return curve
    k = max(3, n // 8)
    knots = rng.normal(0, amount, (k, 2))
    xs = np.linspace(0, k - 1, n)
    off = np.stack([np.interp(xs, np.arange(k), knots[:, d]) for d in (0, 1)], axis=1)
    return curve + off


# --------------------------------------------------------------------------- drawing

@dataclass
class Stroke:
    points: np.ndarray          # (N, 2) page pixels, float
    closed_fill: bool = False   # a filled shape (dot) instead of a line


def render_strokes(img: np.ndarray, strokes: list[Stroke], pen: Pen, width_px: float,
                   rng: np.random.Generator, clip: tuple[int, int, int, int] | None = None) -> None:
    """Draw ``strokes`` with ``pen`` into ``img`` in place.

    ``width_px`` is the stroke width in page pixels. ``clip`` (x0, y0, x1, y1) limits
    the patch (a mark never spills beyond it).
    """
    if not strokes:
        return
    h, w = img.shape[:2]
    pts = np.vstack([s.points for s in strokes])
    pad = width_px + 2
    x0 = int(math.floor(pts[:, 0].min() - pad))
    y0 = int(math.floor(pts[:, 1].min() - pad))
    x1 = int(math.ceil(pts[:, 0].max() + pad))
    y1 = int(math.ceil(pts[:, 1].max() + pad))
    if clip is not None:
        x0, y0, x1, y1 = max(x0, clip[0]), max(y0, clip[1]), min(x1, clip[2]), min(y1, clip[3])
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        return
    ss = SUPERSAMPLE
    mask = np.zeros(((y1 - y0) * ss, (x1 - x0) * ss), np.uint8)
    thick = max(1, int(round(width_px * ss)))
    shift = 4
    scale = ss * (1 << shift)
    for s in strokes:
        p = np.round((s.points - (x0, y0)) * scale + (ss - 1) / 2 * (1 << shift)).astype(np.int32)
        if s.closed_fill:
            cv2.fillPoly(mask, [p], 255, cv2.LINE_8, shift)
        else:
            cv2.polylines(mask, [p], False, 255, thick, cv2.LINE_8, shift)
    alpha = cv2.resize(mask, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    if pen.grain > 0:
        grain = rng.uniform(1.0 - pen.grain, 1.0, alpha.shape).astype(np.float32)
        alpha *= cv2.GaussianBlur(grain, (3, 3), 0)
    alpha *= pen.opacity
    region = img[y0:y1, x0:x1]
    channels = 1 if region.ndim == 2 else region.shape[2]
    colour = ink_colour(pen, channels) / 255.0
    if region.ndim == 2:
        factor = 1.0 - alpha * (1.0 - colour[0])
    else:
        factor = 1.0 - alpha[..., None] * (1.0 - colour[None, None, :])
    region[...] = np.clip(region.astype(np.float32) * factor + 0.5, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- box marks

def _box_frame(box: tuple[float, float, float, float]):
    x0, y0, x1, y1 = box
    return x0, y0, x1 - x0, y1 - y0


def box_mark_strokes(kind: str, box: tuple[float, float, float, float], rng: np.random.Generator,
                     width_px: float) -> list[Stroke]:
    """Strokes of a mark of ``kind`` in a box given in page pixels (x0, y0, x1, y1)."""
    bx, by, bw, bh = _box_frame(box)
    s = min(bw, bh)

    def at(u: float, v: float, scale: float = 1.0, du: float = 0.0, dv: float = 0.0):
        # (u, v) in box units around the centre, optionally scaled and shifted
        cx, cy = bx + bw / 2 + du * s, by + bh / 2 + dv * s
        return (cx + (u - 0.5) * s * scale, cy + (v - 0.5) * s * scale)

    jit = lambda a: float(rng.uniform(-a, a))  # noqa: E731
    trem = 0.02 * s

    if kind in ("tick", "border") and (kind == "tick" or rng.random() < 0.5):
        if kind == "tick":
            scale, du, dv = rng.uniform(0.8, 1.1), jit(0.08), jit(0.08)
        else:
            # a big tick whose long arm crosses the border; its vertex stays inside the box,
            # so that a reader (a person) knows which box it ticks
            scale = rng.uniform(1.4, 2.0)
            du = rng.uniform(-0.25, 0.15) + 0.08 * scale
            dv = rng.uniform(0.1, 0.4) - 0.38 * scale
        a = at(0.15 + jit(0.08), 0.5 + jit(0.1), scale, du, dv)
        b = at(0.42 + jit(0.06), 0.88 + jit(0.06), scale, du, dv)
        c = at(0.92 + jit(0.06), 0.06 + jit(0.08), scale, du, dv)
        ab = _bezier(a, ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2 + jit(0.05) * s), b, 10)
        bc = _bezier(b, ((b[0] + c[0]) / 2 + jit(0.1) * s, (b[1] + c[1]) / 2 + jit(0.1) * s), c, 18)
        return [Stroke(_wobble(np.vstack([ab, bc[1:]]), rng, trem))]
    if kind in ("cross", "border"):
        scale = rng.uniform(0.75, 1.05) if kind == "cross" else rng.uniform(1.25, 1.6)
        du, dv = (jit(0.07), jit(0.07)) if kind == "cross" else (jit(0.12), jit(0.12))
        out = []
        for (u0, v0, u1, v1) in ((0.1, 0.1, 0.9, 0.9), (0.9, 0.1, 0.1, 0.9)):
            p0 = at(u0 + jit(0.08), v0 + jit(0.08), scale, du, dv)
            p2 = at(u1 + jit(0.08), v1 + jit(0.08), scale, du, dv)
            p1 = ((p0[0] + p2[0]) / 2 + jit(0.08) * s, (p0[1] + p2[1]) / 2 + jit(0.08) * s)
            out.append(Stroke(_wobble(_bezier(p0, p1, p2, 16), rng, trem)))
        return out
    if kind == "dot":
        # a pressed pen dot: filled blob 35–55 % of the box, a little tail sometimes
        r = s * rng.uniform(0.18, 0.28)
        cx, cy = at(0.5 + jit(0.1), 0.5 + jit(0.1))
        n = 20
        ang = np.linspace(0, 2 * math.pi, n, endpoint=False)
        rad = r * (1 + rng.uniform(-0.12, 0.12, n))
        blob = np.stack([cx + rad * np.cos(ang) * rng.uniform(0.9, 1.15), cy + rad * np.sin(ang)], axis=1)
        out = [Stroke(blob, closed_fill=True)]
        if rng.random() < 0.4:
            out.append(Stroke(_bezier((cx, cy), (cx + r * 1.2, cy - r * 0.4), (cx + r * 1.8, cy - r * 1.2), 8)))
        return out
    if kind == "scribble":
        # a loopy scribble, 1.5–3 turns, filling the middle of the box
        turns = rng.uniform(1.5, 3.0)
        n = int(24 * turns)
        t = np.linspace(0, 2 * math.pi * turns, n)
        cx, cy = at(0.5 + jit(0.06), 0.5 + jit(0.06))
        rx = s * rng.uniform(0.22, 0.36) * (1 + 0.25 * np.sin(t * rng.uniform(0.3, 0.7)))
        ry = s * rng.uniform(0.18, 0.32) * (1 + 0.25 * np.cos(t * rng.uniform(0.3, 0.7)))
        drift = np.linspace(-0.12, 0.12, n) * s * rng.choice([-1, 1])
        curve = np.stack([cx + rx * np.cos(t) + drift, cy + ry * np.sin(t)], axis=1)
        return [Stroke(_wobble(curve, rng, trem))]
    if kind == FILL:
        return fill_strokes(box, rng, width_px)
    raise ValueError(f"unknown mark kind {kind!r}")


def fill_strokes(box: tuple[float, float, float, float], rng: np.random.Generator,
                 width_px: float) -> list[Stroke]:
    """A box blackened all over: dense zig-zag hatching, then a crossing pass.

    Covers the box and its border (and a little beyond), like someone cancelling a tick.
    """
    bx, by, bw, bh = _box_frame(box)
    grow = rng.uniform(0.08, 0.25)
    x0, y0 = bx - bw * grow, by - bh * grow
    x1, y1 = bx + bw * (1 + grow), by + bh * (1 + grow)
    step = max(width_px * rng.uniform(0.45, 0.7), 0.8)
    out = []
    # horizontal zig-zag (rows) then vertical-ish zig-zag (columns)
    ys = np.arange(y0, y1 + step, step)
    pts = []
    for i, y in enumerate(ys):
        xa, xb = (x0, x1) if i % 2 == 0 else (x1, x0)
        pts += [(xa + rng.uniform(-0.1, 0.1) * bw, y), (xb + rng.uniform(-0.1, 0.1) * bw, y + step / 2)]
    out.append(Stroke(np.asarray(pts, np.float64)))
    xs = np.arange(x0, x1 + step, step * 1.3)
    pts = []
    for i, x in enumerate(xs):
        ya, yb = (y0, y1) if i % 2 == 0 else (y1, y0)
        pts += [(x, ya + rng.uniform(-0.1, 0.1) * bh), (x + step * 0.6, yb + rng.uniform(-0.1, 0.1) * bh)]
    out.append(Stroke(np.asarray(pts, np.float64)))
    return out


# --------------------------------------------------------------------------- writing

def _cursive_word(x: float, base: float, xh: float, letters: int, rng: np.random.Generator,
                  slant: float) -> tuple[np.ndarray, float]:
    """One handwritten-looking word: a prolate cycloid (loops like e, l, o) with ascenders."""
    pts = []
    cur = x
    for _ in range(letters):
        lw = xh * rng.uniform(0.55, 0.95)
        tall = rng.random() < 0.22
        height = xh * (rng.uniform(1.8, 2.4) if tall else rng.uniform(0.75, 1.1))
        loop = rng.uniform(0.25, 0.6)
        t = np.linspace(0, 2 * math.pi, 10)
        lx = cur + lw * t / (2 * math.pi) + loop * lw * np.sin(t) / 2
        ly = base - height * (1 - np.cos(t)) / 2
        pts.append(np.stack([lx, ly], axis=1))
        cur += lw
    curve = np.vstack(pts)
    curve[:, 0] += (base - curve[:, 1]) * slant
    return curve, cur


def handwriting_strokes(zone: tuple[float, float, float, float], rng: np.random.Generator,
                        px_per_mm: float) -> list[Stroke]:
    """Squiggles that look like a line or two of handwriting inside a text zone (pixels)."""
    x0, y0, x1, y1 = zone
    zh, zw = y1 - y0, x1 - x0
    xh = min(2.4 * px_per_mm, zh * 0.32) * rng.uniform(0.8, 1.1)     # x-height
    if xh < 0.9 * px_per_mm or zw < 6 * px_per_mm:
        return []
    line_h = xh * 3.0
    lines = max(1, min(int(zh // line_h), 1 + int(rng.integers(0, 3))))
    slant = rng.uniform(0.0, 0.35)
    strokes = []
    for li in range(lines):
        base = y0 + (li + 1) * zh / (lines + 0.25) - xh * 0.25
        base = min(base, y1 - xh * 0.3)
        x = x0 + rng.uniform(0.01, 0.08) * zw
        end = x0 + zw * (rng.uniform(0.35, 0.92) if li == lines - 1 else rng.uniform(0.8, 0.95))
        while x < end - xh * 2:
            letters = int(rng.integers(2, 8))
            word, x_end = _cursive_word(x, base + rng.uniform(-0.1, 0.1) * xh, xh, letters, rng, slant)
            if x_end > x1 - xh * 0.5:
                break
            strokes.append(Stroke(_wobble(word, rng, xh * 0.04)))
            x = x_end + xh * rng.uniform(0.8, 1.6)
    return strokes


def signature_strokes(zone: tuple[float, float, float, float], rng: np.random.Generator,
                      px_per_mm: float) -> list[Stroke]:
    """A scribbled signature: a few big loops and a flourish, inside the zone (pixels)."""
    x0, y0, x1, y1 = zone
    zw, zh = x1 - x0, y1 - y0
    w = min(zw * rng.uniform(0.3, 0.65), rng.uniform(28, 48) * px_per_mm)
    h = min(zh * rng.uniform(0.55, 0.9), rng.uniform(8, 15) * px_per_mm)
    sx = x0 + rng.uniform(0.03, 0.97) * (zw - w)
    base = y0 + (zh + h) / 2 + rng.uniform(-0.1, 0.1) * (zh - h)
    base = min(base, y1 - 0.04 * zh)
    # a capital (one tall loop), then a cursive word, the whole slanted and fitted to w × h
    xh = h * rng.uniform(0.28, 0.4)
    t = np.linspace(0, 2 * math.pi * rng.uniform(0.9, 1.3), 30)
    cap_w = xh * rng.uniform(0.8, 1.6)
    cap = np.stack([sx + cap_w * (0.5 - 0.5 * np.cos(t)) + cap_w * 0.15 * t,
                    base - h * (0.5 + 0.5 * np.sin(t - math.pi / 2 * rng.uniform(0.6, 1.4)))], axis=1)
    word, _ = _cursive_word(cap[-1, 0] + xh * 0.3, base, xh, int(rng.integers(4, 10)), rng, 0.0)
    body = np.vstack([cap, _bezier(cap[-1], (cap[-1, 0], base), word[0], 6), word])
    slant = rng.uniform(0.1, 0.45)
    body[:, 0] += (base - body[:, 1]) * slant
    body[:, 0] = sx + (body[:, 0] - body[:, 0].min()) * (w / max(np.ptp(body[:, 0]), 1e-6))
    body[:, 1] = base - (base - body[:, 1]) * (h / max(base - body[:, 1].min(), 1e-6))
    strokes = [Stroke(_wobble(body, rng, h * 0.03))]
    if rng.random() < 0.8:   # underline flourish
        a = (sx + w * rng.uniform(-0.05, 0.2), base + h * rng.uniform(0.02, 0.12))
        c = (sx + w * rng.uniform(0.8, 1.05), base + h * rng.uniform(-0.15, 0.05))
        b = ((a[0] + c[0]) / 2, base + h * rng.uniform(0.1, 0.3))
        strokes.append(Stroke(_wobble(_bezier(a, b, c, 24), rng, h * 0.02)))
    for s in strokes:
        s.points[:, 1] = np.clip(s.points[:, 1], y0, y1)
        s.points[:, 0] = np.clip(s.points[:, 0], x0, x1)
    return strokes


# --------------------------------------------------------------------------- entry points

def stroke_width_px(pen: Pen, rng: np.random.Generator, px_per_mm: float, *, bold: bool = False) -> tuple[float, float]:
    """(width in mm, width in px) for one mark: within the pen's range, ≥ MIN_STROKE_MM."""
    lo, hi = pen.width_mm
    mm = float(rng.uniform(lo, hi))
    if bold:
        mm = max(mm, 0.45)
    mm = max(mm, MIN_STROKE_MM)
    return round(mm, 3), mm * px_per_mm


def draw_box_mark(img: np.ndarray, kind: str, box_px: tuple[float, float, float, float], pen: Pen,
                  rng: np.random.Generator, px_per_mm: float) -> float:
    """Draw one mark in a box (page pixels); returns the stroke width in mm."""
    width_mm, width_px = stroke_width_px(pen, rng, px_per_mm, bold=(kind == FILL))
    strokes = box_mark_strokes(kind, box_px, rng, width_px)
    render_strokes(img, strokes, pen, width_px, rng)
    if kind == FILL and pen.name != "pencil":
        # a second pass: nobody blackens a box in one go
        render_strokes(img, fill_strokes(box_px, rng, width_px), pen, width_px, rng)
    return width_mm


def draw_signature(img: np.ndarray, zone_px, pen: Pen, rng: np.random.Generator, px_per_mm: float) -> float:
    width_mm, width_px = stroke_width_px(pen, rng, px_per_mm)
    render_strokes(img, signature_strokes(zone_px, rng, px_per_mm), pen, width_px, rng,
                   clip=tuple(int(round(v)) for v in zone_px))
    return width_mm


def draw_handwriting(img: np.ndarray, zone_px, pen: Pen, rng: np.random.Generator, px_per_mm: float) -> float:
    width_mm, width_px = stroke_width_px(pen, rng, px_per_mm)
    strokes = handwriting_strokes(zone_px, rng, px_per_mm)
    render_strokes(img, strokes, pen, width_px, rng, clip=tuple(int(round(v)) for v in zone_px))
    return width_mm if strokes else 0.0

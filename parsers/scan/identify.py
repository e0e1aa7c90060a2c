"""Stage 1 of scan reading: find the page's identification QR code(s).

Every printed page carries the same QR twice (top-right and bottom-left corners, see
:mod:`forms_service.render.geometry`). zxing-cpp is asked for QR codes only, first in
crops of the image corners where the symbols sit when the page is upright or turned
180° (top-right and bottom-left corners of the image), then where they sit when it is
turned 90° or 270° (the other two corners), and only then in the whole image:
a corner crop costs ~1–4 ms, the whole page ~20–25 ms. When no crop decodes, the
crops are tried again upsampled ×2 and sharpened (below 250 dpi), which rescues
blurred 3-pixel modules (0.5 mm at 150 dpi).

Rotation convention: :attr:`QrHit.rotation` is the clockwise angle (0, 90, 180, 270)
by which the page appears turned in the image; ``np.rot90(gray, k=hit.rotation // 90)``
puts it upright.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from forms_service.render import geometry
from forms_service.render.qr import QrInfo, parse_payload

# Corner crops, as fractions of the image's (width, height) for a portrait image.
CROP_LONG = 0.22   # along the page's long side
CROP_SHORT = 0.32  # along the page's short side
A4_LONG_SIDE_IN = 297 / 25.4


@dataclass(frozen=True)
class QrHit:
    text: str
    info: QrInfo | None
    """Parsed payload, ``None`` for a QR code that is not one of ours."""
    corners: np.ndarray
    """4×2 float array, image pixels: the symbol's own top-left, top-right, bottom-right,
    bottom-left corners (outer edge of the finder patterns)."""
    rotation: int
    """Clockwise quarter-turn (0, 90, 180, 270) of the page in the image."""
    angle: float
    """Clockwise angle in degrees of the symbol's top edge in the image (rotation + skew)."""
    slot: str | None
    """Which printed copy this is (``"top_right"`` or ``"bottom_left"``), from its position."""
    ec_level: str = ""

    @property
    def center(self) -> tuple[float, float]:
        c = self.corners.mean(axis=0)
        return float(c[0]), float(c[1])

    def point_pairs(self) -> list[tuple[tuple[float, float], tuple[float, float]]]:
        """(PDF point, image pixel) pairs for the symbol's 4 corners, for :mod:`align`.

        Empty if the copy is unknown.
        """
        if self.slot is None:
            return []
        x0, top, x1, bottom = geometry.QR_BOXES[self.slot]
        pts = ((x0, top), (x1, top), (x1, bottom), (x0, bottom))
        return [(p, (float(c[0]), float(c[1]))) for p, c in zip(pts, self.corners)]


def _slot(center: tuple[float, float], rotation: int, w: int, h: int) -> str | None:
    """Which QR copy sits at ``center``: coordinates brought back to the upright page."""
    x, y = center
    if rotation == 0:
        u, v = x / w, y / h
    elif rotation == 90:
        u, v = y / h, (w - x) / w
    elif rotation == 180:
        u, v = (w - x) / w, (h - y) / h
    else:
        u, v = (h - y) / h, x / w
    if u > 0.5 and v < 0.5:
        return "top_right"
    if u < 0.5 and v > 0.5:
        return "bottom_left"
    return None


def _crops(w: int, h: int) -> list[list[tuple[int, int, int, int]]]:
    """Groups of (x0, y0, x1, y1) crops, most likely first."""
    portrait = h >= w
    cw = int(w * (CROP_SHORT if portrait else CROP_LONG))
    ch = int(h * (CROP_LONG if portrait else CROP_SHORT))
    tl = (0, 0, cw, ch)
    tr = (w - cw, 0, w, ch)
    bl = (0, h - ch, cw, h)
    br = (w - cw, h - ch, w, h)
    upright_or_180 = [tr, bl]
    quarter_turns = [tl, br]
    if portrait:
        return [upright_or_180, quarter_turns]
    return [quarter_turns, upright_or_180]


def _enhance(img: np.ndarray, factor: int) -> np.ndarray:
    """Upsampled (cubic) and unsharp-masked crop: rescues blurred ~3 px modules."""
    import cv2

    if factor > 1:
        img = cv2.resize(img, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
    soft = cv2.GaussianBlur(img, (0, 0), 2.0)
    return cv2.addWeighted(img, 2.0, soft, -1.0, 0)


def _read(img: np.ndarray, dx: int, dy: int, w: int, h: int, enhance: int = 0) -> list[QrHit]:
    import zxingcpp

    if enhance:
        img = _enhance(img, enhance)
    k = enhance or 1
    hits = []
    for code in zxingcpp.read_barcodes(img, formats=zxingcpp.QRCode, try_invert=False):
        p = code.position
        corners = np.array([[p.top_left.x, p.top_left.y], [p.top_right.x, p.top_right.y],
                            [p.bottom_right.x, p.bottom_right.y], [p.bottom_left.x, p.bottom_left.y]],
                           dtype=float)
        corners = (corners + 0.5) / k - 0.5 + (dx, dy)  # back from the upsampled crop (pixel centres)
        top = corners[1] - corners[0]
        angle = math.degrees(math.atan2(top[1], top[0]))
        rotation = int(round(angle / 90.0)) % 4 * 90
        center = tuple(corners.mean(axis=0))
        hits.append(QrHit(text=code.text, info=parse_payload(code.text), corners=corners, rotation=rotation,
                          angle=angle, slot=_slot(center, rotation, w, h), ec_level=code.ec_level))
    return hits


def find_qr(gray: np.ndarray, *, full_page: bool = True) -> list[QrHit]:
    """QR codes of the page image ``gray`` (2-D ``uint8``), ours first.

    Crops are read plainly first (both orientation groups), then upsampled and sharpened;
    stops at the first group that yields one of our payloads, and falls back to the whole
    image (if ``full_page``) when none does. Duplicates are removed.
    """
    if gray.ndim != 2:
        raise ValueError("find_qr expects a 2-D greyscale image")
    gray = np.ascontiguousarray(gray, dtype=np.uint8)
    h, w = gray.shape
    # ~3 px modules (0.5 mm at 150 dpi) need the enhanced pass once blurred; finer scans do not
    factor = 2 if max(h, w) / A4_LONG_SIDE_IN < 250 else 1
    found: list[QrHit] = []
    passes = [(group, 0) for group in _crops(w, h)] + [(group, factor) for group in _crops(w, h)]
    for group, enhance in passes:
        for x0, y0, x1, y1 in group:
            found += _read(gray[y0:y1, x0:x1], x0, y0, w, h, enhance)
        if any(hit.info is not None for hit in found):
            break
    else:
        if full_page:
            found += _read(gray, 0, 0, w, h)
    unique: list[QrHit] = []
    for hit in found:
        if not any(hit.text == u.text and np.hypot(*np.subtract(hit.center, u.center)) < 20 for u in unique):
            unique.append(hit)
    unique.sort(key=lambda hit: hit.info is None)
    return unique

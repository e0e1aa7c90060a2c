"""The damage of printing, photocopying and scanning a page, on OpenCV and NumPy only.

A page goes through, in this order (each step optional, parameters drawn from a seeded
:class:`numpy.random.Generator` by :func:`sample_page_damage`):

1. **print** (:func:`print_damage`), on the clean rendered page: toner lighter or darker,
   a little dot gain (blur), sometimes a pale toner streak down the page;
2. the hand marks are drawn (:mod:`benchmarks.scanbench.marks`) — they are on paper;
3. **photocopy** (:func:`photocopy_damage`), sometimes: everything darker and bolder,
   grey background, a dirty edge;
4. **scan** (:func:`scan_damage`): the sheet lies on the glass rotated (±3°), scaled
   (±5 %, "fit to page" or a copier reduction) and shifted (≤ 10 mm); uneven light,
   optical blur, sensor noise, dust speckles; the area outside the sheet shows the lid;
5. **orientation**: the sheet fed upside down (180°) or sideways (90°/270°), exact
   quarter turns (:func:`orient`);
6. **output**: grey or colour kept for JPEG; 1-bit by Otsu's threshold *after* all
   of the above (:func:`binarize`), clamped so that marks stay black.

Conditions other than a flatbed scanner (:data:`CONDITIONS`, the page's ``condition``):

* ``phone``: a photo of the sheet lying on a table (:func:`sample_phone_damage`): the
  camera tilted a few degrees (a homography, :func:`camera_tilt`), the sheet turned and
  placed in a larger frame with the table around it, uneven light and a soft shadow,
  focus blur, ~150 dpi on the sheet, JPEG quality 30–70;
* ``fax``: 1-bit at 100 dpi, a fixed threshold, dropped and dark lines
  (:func:`sample_fax_damage`, :func:`fax_lines`);
* ``sideways``: a scanner page fed at 90° or 270°;
* ``fit``: printed "fit to page" (92–95 %, the margins moved: :attr:`PageDamage.fit`),
  then scanned;
* ``docx``: the DOCX download as LibreOffice prints it (one header QR code without page
  number, no registration marks, no footer), ticked, then scanned like a scanner page.

Every geometric step is one 3×3 matrix from page points (top-left origin) to output
pixels (:attr:`PageDamage.matrix`; projective for a phone photo, affine otherwise),
which the truth files carry so that a box's place in the image is known exactly.

Costs are kept to tens of ms per page: all work is ``uint8`` through OpenCV; the light
field is computed at 1/16 resolution; the sensor noise is two coprime random tiles
(period ≫ page), not one normal draw per pixel.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np

MM_PER_INCH = 25.4
A4_MM = (210.0, 297.0)
PT_PER_INCH = 72.0
#: How a page came back (the truth's ``condition``).
CONDITIONS = ("scanner", "phone", "fax", "sideways", "fit", "docx", "docx-reflow")


def a4_pixels(dpi: int) -> tuple[int, int]:
    """(width, height) of an A4 scan at ``dpi``."""
    return (int(round(A4_MM[0] / MM_PER_INCH * dpi)), int(round(A4_MM[1] / MM_PER_INCH * dpi)))


@dataclass
class PageDamage:
    """Everything that happens to one page between the printer and the file (the truth's ``damage``)."""

    dpi: int
    mode: str                       # "color" | "grey" | "bw"
    rotation: int = 0               # quarter turn applied to the image, clockwise degrees: 0/90/180/270
    skew_deg: float = 0.0           # small rotation of the sheet on the glass (counter-clockwise +)
    scale: float = 1.0
    shift_mm: tuple[float, float] = (0.0, 0.0)
    toner: float = 1.0              # < 1 pale print, > 1 dark print
    dot_gain: float = 0.0           # blur sigma (px) of the printed page
    streak: dict | None = None      # pale toner streak {"x_mm", "width_mm", "strength"}
    photocopy: float = 0.0          # 0 none, up to 1 heavy darkening
    light: dict = field(default_factory=dict)   # uneven light {"amplitude", "angle", "falloff"}
    blur: float = 0.0               # optical blur sigma (px, at the scan dpi)
    noise: float = 0.0              # sensor noise sigma (grey levels)
    speckles: int = 0               # dust specks
    paper: int = 250                # paper grey
    lid: int = 245                  # grey of the scanner lid outside the sheet
    jpeg_quality: int | None = None
    threshold: int | None = None    # set by binarize() on 1-bit pages
    matrix: list[list[float]] | None = None   # page points → output pixels (3 × 3)
    size: tuple[int, int] | None = None       # output (width, height) in pixels
    condition: str = "scanner"      # one of CONDITIONS
    #: printed "fit to page": the page's content scaled and moved on the sheet {"scale", "dx_mm", "dy_mm"}
    fit: dict | None = None
    #: phone photo: camera tilt {"x_deg", "y_deg", "focal"} (focal in frame pixels)
    tilt: dict | None = None
    frame: tuple[int, int] | None = None   # phone photo: (width, height) of the frame before the turn
    shade: dict | None = None       # phone photo: a soft shadow {"x", "y", "radius", "strength"} (frame fractions)
    fax_lines: int = 0              # fax: lines of the page dropped or darkened

    def as_dict(self) -> dict:
        d = asdict(self)
        d["shift_mm"] = list(self.shift_mm)
        d["size"] = list(self.size) if self.size else None
        d["frame"] = list(self.frame) if self.frame else None
        return d


def sample_page_damage(rng: np.random.Generator, *, dpi: int, mode: str, quarter_turn: int = 0,
                       jpeg_quality: int | None = None, photocopy: bool | None = None) -> PageDamage:
    """Draw one page's damage. ``quarter_turn`` and ``jpeg_quality`` are decided by the caller
    (they belong to the batch: how the stack was fed, how the scanner was set)."""
    bw = mode == "bw"
    d = PageDamage(dpi=dpi, mode=mode, rotation=quarter_turn % 360, jpeg_quality=jpeg_quality)
    d.skew_deg = round(float(np.clip(rng.normal(0, 1.1), -3.0, 3.0)), 3)
    d.scale = round(float(rng.choice([1.0, rng.uniform(0.95, 1.05)], p=[0.35, 0.65])), 4)
    d.shift_mm = (round(float(np.clip(rng.normal(0, 4), -10, 10)), 2),
                  round(float(np.clip(rng.normal(0, 4), -10, 10)), 2))
    d.toner = round(float(rng.uniform(0.8, 1.2)), 3)
    d.dot_gain = round(float(rng.uniform(0.0, 0.6)), 3)
    if rng.random() < 0.12:
        d.streak = {"x_mm": round(float(rng.uniform(20, 190)), 1), "width_mm": round(float(rng.uniform(1, 6)), 1),
                    "strength": round(float(rng.uniform(0.15, 0.35)), 3)}
    if photocopy is None:
        photocopy = rng.random() < 0.15
    # a 1-bit page of a heavy photocopy turns grey backgrounds black: keep it readable
    d.photocopy = round(float(rng.uniform(0.3, 0.7 if bw else 1.0)), 3) if photocopy else 0.0
    d.light = {"amplitude": round(float(rng.uniform(0.0, 0.12 if bw else 0.28)), 3),
               "angle": round(float(rng.uniform(0, 360)), 1),
               "falloff": round(float(rng.uniform(0.0, 0.15 if bw else 0.3)), 3)}
    max_blur = 0.5 if dpi < 200 else 1.1
    d.blur = round(float(rng.uniform(0.0, max_blur)), 3)
    d.noise = round(float(rng.uniform(1.0, 8.0)), 2)
    d.speckles = int(rng.integers(0, 250))
    d.paper = int(rng.integers(236, 256))
    d.lid = int(rng.choice([int(rng.integers(225, 256)), int(rng.integers(20, 70))], p=[0.85, 0.15]))
    return d


def sample_fit(rng: np.random.Generator) -> dict:
    """A "fit to page" print: 92–95 %, the margins moved (the content off centre by a few mm)."""
    return {"scale": round(float(rng.uniform(0.92, 0.95)), 4),
            "dx_mm": round(float(rng.uniform(-4, 6)), 2), "dy_mm": round(float(rng.uniform(-4, 8)), 2)}


def sample_phone_damage(rng: np.random.Generator, *, mode: str, quarter_turn: int = 0,
                        jpeg_quality: int | None = None) -> PageDamage:
    """A phone photo of the sheet on a table: about 150 dpi on the sheet, the camera
    tilted 1.5–5°, the sheet turned up to ±6° in a frame 12–22 % larger than it, uneven
    light and a shadow, focus blur and sensor noise, JPEG quality 30–70."""
    d = sample_page_damage(rng, dpi=150, mode=mode, quarter_turn=quarter_turn,
                           jpeg_quality=jpeg_quality or int(rng.integers(30, 71)), photocopy=False)
    d.condition = "phone"
    d.skew_deg = round(float(rng.uniform(-6.0, 6.0)), 3)
    d.scale = round(float(rng.uniform(0.97, 1.03)), 4)
    w, h = a4_pixels(d.dpi)
    grow = float(rng.uniform(1.12, 1.22))
    d.frame = (int(round(w * grow)), int(round(h * grow)))
    d.shift_mm = (round(float(rng.uniform(-6, 6)), 2), round(float(rng.uniform(-6, 6)), 2))
    tilt = float(rng.uniform(1.5, 5.0))
    a = float(rng.uniform(0, 2 * math.pi))
    d.tilt = {"x_deg": round(tilt * math.cos(a), 3), "y_deg": round(tilt * math.sin(a), 3),
              "focal": round(float(rng.uniform(0.9, 1.3)) * max(d.frame), 1)}
    d.light = {"amplitude": round(float(rng.uniform(0.1, 0.35)), 3), "angle": round(float(rng.uniform(0, 360)), 1),
               "falloff": round(float(rng.uniform(0.1, 0.35)), 3)}
    d.shade = ({"x": round(float(rng.uniform(0.1, 0.9)), 3), "y": round(float(rng.uniform(0.1, 0.9)), 3),
                "radius": round(float(rng.uniform(0.15, 0.4)), 3), "strength": round(float(rng.uniform(0.15, 0.35)), 3)}
               if rng.random() < 0.7 else None)
    d.blur = round(float(rng.uniform(0.4, 1.1)), 3)
    d.noise = round(float(rng.uniform(4.0, 10.0)), 2)
    d.speckles = int(rng.integers(0, 40))
    d.lid = int(rng.choice([int(rng.integers(60, 150)), int(rng.integers(150, 210))]))   # the table
    return d


def sample_fax_damage(rng: np.random.Generator, *, quarter_turn: int = 0) -> PageDamage:
    """A fax: 1-bit at 100 dpi, a fixed threshold, a little skew, dropped or dark lines."""
    d = sample_page_damage(rng, dpi=100, mode="bw", quarter_turn=quarter_turn, photocopy=False)
    d.condition = "fax"
    d.skew_deg = round(float(np.clip(rng.normal(0, 0.6), -1.5, 1.5)), 3)
    d.scale = round(float(rng.uniform(0.97, 1.0)), 4)
    d.shift_mm = (round(float(rng.uniform(-3, 3)), 2), round(float(rng.uniform(-4, 4)), 2))
    d.blur = round(float(rng.uniform(0.2, 0.5)), 3)
    d.light = {"amplitude": 0.0, "angle": 0.0, "falloff": 0.0}
    d.lid = 255
    d.fax_lines = int(rng.integers(0, 12))
    return d


def camera_tilt(d: PageDamage) -> np.ndarray:
    """3×3 homography of the camera tilted by ``d.tilt`` about the frame's centre
    (``K·R·K⁻¹``: a pure rotation of a pinhole camera of focal ``focal`` pixels)."""
    if not d.tilt:
        return np.eye(3)
    w, h = d.frame or a4_pixels(d.dpi)
    f = d.tilt["focal"]
    kmat = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]], np.float64)
    ax, ay = math.radians(d.tilt["x_deg"]), math.radians(d.tilt["y_deg"])
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    hom = kmat @ ry @ rx @ np.linalg.inv(kmat)
    return hom / hom[2, 2]


# --------------------------------------------------------------------------- geometry

def page_to_scan(d: PageDamage, page_size_pt: tuple[float, float]) -> np.ndarray:
    """3×3 matrix: page points (top-left origin) → scan pixels before the quarter turn.

    The content is first moved on the sheet by a "fit to page" print (``d.fit``); the
    sheet (its centre on the glass's or frame's centre) is scaled, rotated by
    ``skew_deg`` and shifted; a phone's tilt then adds a perspective. Continuous
    coordinates (a pixel covers [i, i+1)).
    """
    k = d.dpi / PT_PER_INCH
    w_px, h_px = d.frame or a4_pixels(d.dpi)
    pw, ph = page_size_pt
    fit = np.eye(3)
    if d.fit:
        s, pt_mm = d.fit["scale"], PT_PER_INCH / MM_PER_INCH
        fit = np.array([[s, 0, (1 - s) * pw / 2 + d.fit["dx_mm"] * pt_mm],
                        [0, s, (1 - s) * ph / 2 + d.fit["dy_mm"] * pt_mm], [0, 0, 1]], np.float64)
    t_in = np.array([[1, 0, -pw / 2], [0, 1, -ph / 2], [0, 0, 1]], np.float64) @ fit
    a = math.radians(d.skew_deg)
    c, s = math.cos(a) * d.scale * k, math.sin(a) * d.scale * k
    rot = np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]], np.float64)   # y down: + is counter-clockwise on screen
    mm = d.dpi / MM_PER_INCH
    t_out = np.array([[1, 0, w_px / 2 + d.shift_mm[0] * mm], [0, 1, h_px / 2 + d.shift_mm[1] * mm], [0, 0, 1]],
                     np.float64)
    m = t_out @ rot @ t_in
    if not d.tilt:
        return m
    # the camera turned to keep the sheet in the middle of the picture: the tilt's
    # perspective, its sheet centre brought back where it was
    m = camera_tilt(d) @ m
    c = m @ np.array([pw / 2, ph / 2, 1.0])
    want = t_out[:2, 2]
    back = np.array([[1, 0, want[0] - c[0] / c[2]], [0, 1, want[1] - c[1] / c[2]], [0, 0, 1]], np.float64)
    return back @ m


def quarter_turn_matrix(rotation: int, size: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]]:
    """3×3 matrix of a clockwise quarter turn of an image of ``size`` (w, h), and the new size."""
    w, h = size
    r = rotation % 360
    if r == 0:
        return np.eye(3), (w, h)
    if r == 90:
        return np.array([[0, -1, h], [1, 0, 0], [0, 0, 1]], np.float64), (h, w)
    if r == 180:
        return np.array([[-1, 0, w], [0, -1, h], [0, 0, 1]], np.float64), (w, h)
    if r == 270:
        return np.array([[0, 1, 0], [-1, 0, w], [0, 0, 1]], np.float64), (h, w)
    raise ValueError(f"rotation must be a multiple of 90, not {rotation}")


_ROTATE = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


def orient(img: np.ndarray, rotation: int) -> np.ndarray:
    """The image turned clockwise by ``rotation`` degrees (exact, no resampling)."""
    r = rotation % 360
    return img if r == 0 else cv2.rotate(img, _ROTATE[r])


def transform_bbox(matrix: np.ndarray, bbox) -> list[float]:
    """Axis-aligned bounds, in output pixels, of a page bbox [x0, top, x1, bottom] (points);
    ``matrix`` is 2×3 (affine) or 3×3 (projective)."""
    x0, t, x1, b = bbox
    pts = np.array([[x0, t, 1], [x1, t, 1], [x1, b, 1], [x0, b, 1]], np.float64).T
    m = np.asarray(matrix, np.float64)
    out = m[:2] @ pts
    if m.shape[0] == 3:
        out = out / (m[2] @ pts)
    return [round(float(out[0].min()), 1), round(float(out[1].min()), 1),
            round(float(out[0].max()), 1), round(float(out[1].max()), 1)]


# --------------------------------------------------------------------------- steps

def _levels(img: np.ndarray, lut: np.ndarray) -> np.ndarray:
    return cv2.LUT(img, lut.astype(np.uint8))


def print_damage(img: np.ndarray, d: PageDamage) -> np.ndarray:
    """The printer: toner density, dot gain, a pale streak. ``img`` is the page at ``d.dpi``."""
    x = np.arange(256, dtype=np.float32) / 255.0
    # toner > 1 darkens the inked parts (gamma on ink coverage), < 1 pales them
    lut = 255.0 * (1.0 - np.power(1.0 - x, 1.0 / d.toner))
    out = _levels(img, np.clip(lut + 0.5, 0, 255))
    if d.dot_gain > 0.05:
        out = cv2.GaussianBlur(out, (0, 0), d.dot_gain)
    if d.streak:
        mm = d.dpi / MM_PER_INCH
        x0 = int(d.streak["x_mm"] * mm)
        x1 = min(out.shape[1], x0 + max(1, int(d.streak["width_mm"] * mm)))
        if x0 < x1:
            band = out[:, x0:x1].astype(np.float32)
            out[:, x0:x1] = (255 - (255 - band) * (1 - d.streak["strength"])).astype(np.uint8)
    return out


def photocopy_damage(img: np.ndarray, d: PageDamage, rng: np.random.Generator) -> np.ndarray:
    """A photocopy of the filled-in sheet: darker and bolder, greyish background, dirty edge."""
    if d.photocopy <= 0:
        return img
    p = d.photocopy
    out = img
    if p > 0.5:   # strokes grow (toner spreads)
        out = cv2.erode(out, np.ones((2, 2), np.uint8))
    x = np.arange(256, dtype=np.float32) / 255.0
    background = 255 - 40 * p
    lut = background * np.power(x, 1.0 + 1.2 * p)
    out = _levels(out, np.clip(lut + 0.5, 0, 255))
    # a grey band along one edge (the copier's lid not closed)
    h, w = out.shape[:2]
    band = int(rng.uniform(0.0, 0.03) * w)
    if band > 0:
        side = int(rng.integers(0, 4))
        sl = [(slice(None), slice(0, band)), (slice(None), slice(w - band, w)),
              (slice(0, band), slice(None)), (slice(h - band, h), slice(None))][side]
        out[sl] = (out[sl].astype(np.float32) * rng.uniform(0.35, 0.7)).astype(np.uint8)
    return out


def _noise_tile(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """A uint8 noise field centred on 128: two coprime uint8 tiles summed (no visible period)."""
    h, w = shape
    tiles = []
    for th, tw in ((251, 257), (263, 241)):
        tile = rng.standard_normal((th, tw), dtype=np.float32) * (sigma / math.sqrt(2)) + 128.0
        tile = np.clip(tile + 0.5, 0, 255).astype(np.uint8)
        tiles.append(cv2.repeat(tile, h // th + 1, w // tw + 1)[:h, :w])
    return cv2.addWeighted(tiles[0], 1.0, tiles[1], 1.0, -128.0)


def _light_field(d: PageDamage, shape: tuple[int, int]) -> np.ndarray:
    """Multiplicative uneven light times the paper's tone (uint8, 255 = white) at full size."""
    h, w = shape
    sh, sw = max(2, h // 16), max(2, w // 16)
    yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float32)
    xx, yy = xx / (sw - 1) - 0.5, yy / (sh - 1) - 0.5
    a = math.radians(d.light.get("angle", 0.0))
    grad = (xx * math.cos(a) + yy * math.sin(a))                      # -0.7..0.7
    amp = d.light.get("amplitude", 0.0)
    fall = d.light.get("falloff", 0.0)
    field = 1.0 - amp * (grad + 0.7) / 1.4 - fall * np.clip(np.abs(xx) * 2 - 0.6, 0, 1) ** 2
    field = np.clip(field * d.paper, 0, 255).astype(np.uint8)
    return cv2.resize(field, (w, h), interpolation=cv2.INTER_LINEAR)


def _shade(d: PageDamage, shape: tuple[int, int]) -> np.ndarray | None:
    """A soft shadow (the phone's or the hand's) as a uint8 multiplier (255 = no shade)."""
    if not d.shade:
        return None
    h, w = shape
    sh, sw = max(2, h // 16), max(2, w // 16)
    yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float32)
    dist = np.hypot(xx / sw - d.shade["x"], (yy / sh - d.shade["y"]) * h / w) / d.shade["radius"]
    field = 1.0 - d.shade["strength"] * np.clip(1.3 - dist, 0, 1).astype(np.float32) / 1.3
    return cv2.resize(np.clip(field * 255, 0, 255).astype(np.uint8), (w, h), interpolation=cv2.INTER_LINEAR)


def fax_lines(img: np.ndarray, d: PageDamage, rng: np.random.Generator) -> np.ndarray:
    """A fax line's faults on a 1-bit page: whole scan lines dropped (white) or dark."""
    out = img
    h = out.shape[0]
    for _ in range(d.fax_lines):
        y = int(rng.integers(0, h))
        if rng.random() < 0.7:
            out[y] = 255
        else:
            x0 = int(rng.integers(0, out.shape[1]))
            out[y, x0:x0 + int(rng.integers(20, 200))] = 0
    return out


def scan_damage(img: np.ndarray, d: PageDamage, rng: np.random.Generator,
                page_size_pt: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """The scanner (or the camera): the sheet placed on the glass (or the table), light,
    blur, noise, dust, then the quarter turn. Returns (image, 3×3 matrix page points →
    output pixels)."""
    size = d.frame or a4_pixels(d.dpi)
    m_cont = page_to_scan(d, page_size_pt)
    # warpAffine works on pixel centres: page px centre = (pt * k - 0.5)
    k = d.dpi / PT_PER_INCH
    px_to_pt = np.array([[1 / k, 0, 0.5 / k], [0, 1 / k, 0.5 / k], [0, 0, 1]], np.float64)
    m_cv = np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1]]) @ m_cont @ px_to_pt
    channels = 1 if img.ndim == 2 else img.shape[2]
    lid = min(255, int(round(d.lid * 255 / max(d.paper, 1))))   # the light field multiplies by the paper tone
    border = (lid,) * channels if channels > 1 else lid
    if d.tilt:
        out = cv2.warpPerspective(img, m_cv, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                  borderValue=border)
    else:
        out = cv2.warpAffine(img, m_cv[:2], size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                             borderValue=border)
    # the sheet's edge casts a thin shadow on a light lid
    if d.lid > 150:
        pw, ph = page_size_pt
        corners = m_cont @ np.array([[0, pw, pw, 0], [0, 0, ph, ph], [1, 1, 1, 1]], np.float64)
        corners = (corners[:2] / corners[2]).T
        shade = (int(lid * 0.6),) * channels if channels > 1 else int(lid * 0.6)
        cv2.polylines(out, [np.round(corners * 16).astype(np.int32)], True, shade,
                      max(1, int(round(d.dpi / 150))), cv2.LINE_AA, 4)
    light = _light_field(d, out.shape[:2])
    shade = _shade(d, out.shape[:2])
    if shade is not None:
        light = cv2.multiply(light, shade, scale=1 / 255)
    if channels > 1:
        light = cv2.merge([light] * channels)
    out = cv2.multiply(out, light, scale=1 / 255)
    if d.blur > 0.15:
        out = cv2.GaussianBlur(out, (0, 0), d.blur)
    if d.noise > 0:
        noise = _noise_tile(rng, out.shape[:2], d.noise)
        if channels > 1:
            noise = cv2.merge([noise] * channels)
        out = cv2.addWeighted(out, 1.0, noise, 1.0, -128.0)
    if d.speckles:
        h, w = out.shape[:2]
        xs = rng.integers(0, w, d.speckles)
        ys = rng.integers(0, h, d.speckles)
        rs = rng.uniform(0.3, 1.6, d.speckles) * d.dpi / 200
        gs = rng.integers(0, 110, d.speckles)
        for x, y, r, g in zip(xs.tolist(), ys.tolist(), rs.tolist(), gs.tolist()):
            cv2.circle(out, (x, y), max(1, int(round(r))), (g,) * channels if channels > 1 else g, -1, cv2.LINE_AA)
    turn, out_size = quarter_turn_matrix(d.rotation, size)
    out = orient(out, d.rotation)
    full = turn @ m_cont
    d.matrix = [[round(float(v), 9) for v in row] for row in full]
    d.size = out_size
    return out, full


def binarize(img: np.ndarray, d: PageDamage) -> np.ndarray:
    """1-bit (0/255) by Otsu's threshold on the damaged grey page, clamped to [110, 200]
    so that a page that is mostly dark (black lid, photocopy) does not lose its marks."""
    grey = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    if d.condition == "fax":      # a fax machine's fixed threshold
        t = int(round(0.62 * d.paper))
    else:
        t, _ = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        t = int(min(max(t, 110), 200))
    d.threshold = t
    _, out = cv2.threshold(grey, t, 255, cv2.THRESH_BINARY)
    return out


def blank_page(d: PageDamage, rng: np.random.Generator, page_size_pt: tuple[float, float],
               show_through: np.ndarray | None = None) -> np.ndarray:
    """An empty sheet (a duplex back side, a separator), maybe with the front showing through."""
    w, h = a4_pixels(d.dpi)
    sheet = np.full((h, w), 255, np.uint8)
    if show_through is not None:
        front = show_through if show_through.ndim == 2 else cv2.cvtColor(show_through, cv2.COLOR_RGB2GRAY)
        front = cv2.resize(np.ascontiguousarray(front[:, ::-1]), (w, h), interpolation=cv2.INTER_AREA)
        strength = rng.uniform(0.03, 0.08)
        sheet = (255 - (255 - front.astype(np.float32)) * strength).astype(np.uint8)
        sheet = cv2.GaussianBlur(sheet, (0, 0), 2.0)
    if d.mode == "color":
        sheet = cv2.merge([sheet] * 3)
    out, _ = scan_damage(sheet, d, rng, page_size_pt)
    return out

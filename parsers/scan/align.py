"""Stage 2 of scan reading: where is the printed page in the image?

The result is a 3×3 matrix ``M`` mapping PDF points of the original page (top-left
origin, y down: the :mod:`forms_service.render.geometry` convention) to image pixels:
``[x_px, y_px, 1] ~ M @ [x_pt, y_pt, 1]``. Pixel coordinates follow OpenCV: ``(0, 0)`` is
the centre of the top-left pixel (so a page rendered at ``k`` px/pt has ``x_px = k·x_pt − ½``).

* :func:`find_marks` finds the four registration marks (black discs with a white hole)
  in the image corners and returns their centres, unordered;
* :func:`estimate_transform` works out which found mark is which (the bottom-right mark
  is moved 10 mm left, so 90°/180°/270° turns are told apart), then fits an affine
  transform (least squares on the matched marks, optionally the QR corners too);
* :func:`align_page` chains both, using the QR's rotation and, when marks are missing,
  the QR symbol corners;
* :func:`fallback_feature_align` registers the scan against a rendering of the
  original page with ORB features at ~100 dpi, for pages whose marks are lost;
* :func:`to_pixels` / :func:`apply` map template boxes / points; :func:`rectify`
  resamples the scan upright at a chosen resolution, pixel for pixel like a rendering
  of the original page at that resolution (:func:`render_px`).

Everything takes plain greyscale ``uint8`` arrays, so each stage is testable alone.
"""

from __future__ import annotations

import math
from itertools import permutations
from typing import Iterable, Sequence

import cv2
import numpy as np

from forms_service.errors import BadDocument
from forms_service.render import geometry

MM_PER_INCH = 25.4
A4_LONG_SIDE_IN = 297 / MM_PER_INCH
INLIER_TOLERANCE_MM = 6.0   # marks are ≥ 190 mm apart; a phone's perspective moves them a few mm
MAX_RESIDUAL_MM = 1.5
CORNER_WINDOW_MM = 60.0
#: an affine fit of the marks and QR corners leaving more than this: the page is seen in
#: perspective (a phone photo), and a homography is fitted when the points allow it
PERSPECTIVE_RESIDUAL_MM = 0.4


class AlignmentFailed(BadDocument):
    rule = "reperes_introuvables"

    def __init__(self, message: str = "Impossible de repérer la page sur l'image numérisée", **kw):
        super().__init__(message, **kw)


def guess_dpi(gray: np.ndarray) -> float:
    """Resolution implied by the image size if it shows about one A4 page."""
    return max(gray.shape[:2]) / A4_LONG_SIDE_IN


def _to_gray(img: np.ndarray) -> np.ndarray:
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.shape[2] == 3 else img[:, :, 0]
    return np.ascontiguousarray(img, dtype=np.uint8)


# --- marks -------------------------------------------------------------------------------


def _mark_candidates(window: np.ndarray, px_per_mm: float) -> list[tuple[float, float]]:
    r_px = geometry.MARK_OUTER_DIAMETER_MM / 2 * px_per_mm
    smooth = cv2.GaussianBlur(window, (0, 0), max(0.6, 0.08 * px_per_mm))
    thr, binary = cv2.threshold(smooth, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    hist = np.bincount(smooth[::3, ::3].ravel(), minlength=256).cumsum()
    paper = float(np.searchsorted(hist, 0.9 * hist[-1]))
    if paper - thr < 30:  # nothing dark enough here: Otsu only split paper noise
        return []
    contours, hierarchy = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_NONE)
    if hierarchy is None:
        return []
    hierarchy = hierarchy[0]
    area0 = math.pi * r_px * r_px
    found = []
    min_points = 0.35 * 2 * math.pi * r_px  # cheap rejection of speckles before any maths
    for i, c in enumerate(contours):
        if len(c) < min_points:
            continue
        area = cv2.contourArea(c)
        if not (0.45 * area0 <= area <= 1.9 * area0):
            continue
        perimeter = cv2.arcLength(c, True)
        if perimeter <= 0 or 4 * math.pi * area / (perimeter * perimeter) < 0.72:
            continue
        holes = []
        child = hierarchy[i][2]
        while child != -1:
            holes.append(child)
            child = hierarchy[child][0]
        if len(holes) != 1 or hierarchy[holes[0]][2] != -1:
            continue  # a ring has exactly one empty hole (a QR finder's hole holds its centre)
        hole = contours[holes[0]]
        hole_area = cv2.contourArea(hole)
        if not (0.08 <= hole_area / area <= 0.45):
            continue
        # discs fill their enclosing circle (~0.9), squares such as QR finder patterns do not (2/pi)
        if area < 0.78 * math.pi * cv2.minEnclosingCircle(c)[1] ** 2:
            continue
        if hole_area < 0.65 * math.pi * cv2.minEnclosingCircle(hole)[1] ** 2:
            continue
        m, mh = cv2.moments(c), cv2.moments(hole)
        if m["m00"] <= 0 or mh["m00"] <= 0:
            continue
        cx, cy = m["m10"] / m["m00"], m["m01"] / m["m00"]
        hx, hy = mh["m10"] / mh["m00"], mh["m01"] / mh["m00"]
        if math.hypot(cx - hx, cy - hy) > 0.3 * r_px:
            continue
        found.append(_refine(smooth, (cx + hx) / 2, (cy + hy) / 2, r_px, paper))
    return found


def _refine(img: np.ndarray, cx: float, cy: float, r: float, paper: float) -> tuple[float, float]:
    """Darkness-weighted centroid around a mark (the ring is symmetric about its centre)."""
    h, w = img.shape
    rr = 1.35 * r
    x0, x1 = max(0, int(cx - rr)), min(w, int(cx + rr) + 2)
    y0, y1 = max(0, int(cy - rr)), min(h, int(cy + rr) + 2)
    patch = img[y0:y1, x0:x1].astype(np.float32)
    ys, xs = np.mgrid[y0:y1, x0:x1]
    weight = np.clip(paper - 20 - patch, 0, None)
    weight[(xs - cx) ** 2 + (ys - cy) ** 2 > rr * rr] = 0
    total = weight.sum()
    if total <= 0:
        return (cx, cy)
    return (float((weight * xs).sum() / total), float((weight * ys).sum() / total))


def find_marks(gray: np.ndarray, dpi_guess: float | None = None) -> np.ndarray:
    """Centres (k×2 float array, image pixels, unordered) of the registration marks found.

    Looks in 60 mm windows at the four image corners, then in the whole image if fewer
    than three marks turned up there. ``dpi_guess`` (default: from the image size,
    assuming about one A4 page) only sets the expected mark size, ±35 %.
    """
    gray = _to_gray(gray)
    dpi = dpi_guess or guess_dpi(gray)
    px_per_mm = dpi / MM_PER_INCH
    h, w = gray.shape
    win = int(CORNER_WINDOW_MM * px_per_mm)
    wx, wy = min(win, w // 2), min(win, h // 2)
    points: list[tuple[float, float]] = []
    for x0, y0 in ((0, 0), (w - wx, 0), (0, h - wy), (w - wx, h - wy)):
        for x, y in _mark_candidates(gray[y0:y0 + wy, x0:x0 + wx], px_per_mm):
            points.append((x + x0, y + y0))
    if len(points) < 3:
        points = _mark_candidates(gray, px_per_mm)
    return np.array(points, dtype=float).reshape(-1, 2)


# --- transform ---------------------------------------------------------------------------


def _similarity(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """2×3 similarity mapping the two points ``p`` onto the two points ``q``."""
    dp, dq = p[1] - p[0], q[1] - q[0]
    zp, zq = complex(*dp), complex(*dq)
    if abs(zp) < 1e-9:
        return np.zeros((2, 3))
    z = zq / zp
    a, b = z.real, z.imag
    t = q[0] - np.array([a * p[0][0] - b * p[0][1], b * p[0][0] + a * p[0][1]])
    return np.array([[a, -b, t[0]], [b, a, t[1]]])


def _fit_affine(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """3×3 least-squares affine (a similarity when there are only 2 points)."""
    if len(src) == 2:
        m = _similarity(src, dst)
    else:
        design = np.hstack([src, np.ones((len(src), 1))])
        sol, *_ = np.linalg.lstsq(design, dst, rcond=None)
        m = sol.T
    return np.vstack([m, [0.0, 0.0, 1.0]])


def apply(matrix: np.ndarray, points: Iterable[Sequence[float]]) -> np.ndarray:
    """Points (n×2) mapped by the 3×3 ``matrix`` (projective division included)."""
    pts = np.asarray(list(points) if not isinstance(points, np.ndarray) else points, dtype=float).reshape(-1, 2)
    homog = np.hstack([pts, np.ones((len(pts), 1))]) @ np.asarray(matrix, dtype=float).T
    return homog[:, :2] / homog[:, 2:3]



def match_marks(found: np.ndarray, expected: np.ndarray, dpi_guess: float | None,
                 rotation: int | None) -> list[tuple[int, int]]:
    """(expected index, found index) pairs of the best similarity hypothesis (vectorised)."""
    if len(found) < 2 or len(expected) < 2:
        return []
    fi = np.array(list(permutations(range(len(found)), 2)))
    ei = np.array(list(permutations(range(len(expected)), 2)))
    # every (found pair, expected pair) combination
    f0, f1 = found[fi[:, 0]][:, None, :], found[fi[:, 1]][:, None, :]
    e0, e1 = expected[ei[:, 0]][None, :, :], expected[ei[:, 1]][None, :, :]
    dq = (f1[..., 0] - f0[..., 0]) + 1j * (f1[..., 1] - f0[..., 1])
    dp = (e1[..., 0] - e0[..., 0]) + 1j * (e1[..., 1] - e0[..., 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        z = dq / dp                                              # rotation·scale, shape (F, E)
    scale = np.abs(z)
    angle = np.degrees(np.angle(z))
    ok = np.isfinite(scale) & (scale > 0) & (np.abs((angle + 45) % 90 - 45) <= 20)
    if dpi_guess:
        ok &= np.abs(scale / (dpi_guess / 72) - 1) <= 0.15
    if rotation is not None:
        ok &= np.abs((angle - rotation + 180) % 360 - 180) <= 20
    if not ok.any():
        return []
    z, scale = z[ok], scale[ok]
    p0 = (e0[..., 0] + 1j * e0[..., 1]).repeat(len(fi), axis=0)[ok]
    q0 = (f0[..., 0] + 1j * f0[..., 1]).repeat(len(ei), axis=1)[ok]
    exp_c = expected[:, 0] + 1j * expected[:, 1]
    found_c = found[:, 0] + 1j * found[:, 1]
    mapped = q0[:, None] + z[:, None] * (exp_c[None, :] - p0[:, None])          # (H, E)
    dist = np.abs(mapped[:, :, None] - found_c[None, None, :]).min(axis=2)      # (H, E)
    tol = (INLIER_TOLERANCE_MM * geometry.MM * scale)[:, None]
    inlier = dist <= tol
    count = inlier.sum(axis=1)
    err = np.where(inlier, dist / scale[:, None], 0).sum(axis=1)
    best = np.lexsort((err, -count))[0]
    nearest = np.abs(mapped[best][:, None] - found_c[None, :]).argmin(axis=1)
    return [(int(e), int(nearest[e])) for e in range(len(expected)) if inlier[best, e]]


def estimate_transform(
    marks_found: np.ndarray | Sequence[Sequence[float]],
    expected_marks_pt: Sequence[Sequence[float]] = geometry.MARK_CENTERS,
    *,
    dpi_guess: float | None = None,
    rotation: int | None = None,
    extra_pairs: Sequence[tuple[Sequence[float], Sequence[float]]] = (),
) -> np.ndarray:
    """3×3 matrix mapping PDF points to image pixels, from the marks found.

    Tries every way of matching two found marks to two expected ones, keeps the
    similarity that brings most expected marks within 3 mm of a found one (then the
    smallest error), and fits an affine transform by least squares on those matches
    plus ``extra_pairs`` ((pt, px) pairs, e.g. :meth:`QrHit.point_pairs`). Spurious
    candidates and one missing mark are tolerated (two with ``extra_pairs``).
    ``dpi_guess`` bounds the scale (±15 %), ``rotation`` (0/90/180/270, clockwise, from
    the QR) the angle (±20°).

    Raises :class:`AlignmentFailed` when fewer than three marks match (without
    ``extra_pairs``), or the fit leaves an error above 1.5 mm. ``rotation=None`` is fine
    without a QR: the moved bottom-right mark tells the quarter turns apart when three or
    four marks are found.
    """
    found = np.asarray(marks_found, dtype=float).reshape(-1, 2)
    expected = np.asarray(expected_marks_pt, dtype=float).reshape(-1, 2)
    extra = [(tuple(map(float, a)), tuple(map(float, b))) for a, b in extra_pairs]
    best_pairs = match_marks(found, expected, dpi_guess, rotation)
    if len(best_pairs) < 3 and not extra:
        # two points always fit a similarity exactly: nothing would show a wrong match
        # (e.g. a 180° turn forced to 0° matches two diagonal marks)
        raise AlignmentFailed(path="reperes")
    if len(best_pairs) + len(extra) < 3:
        raise AlignmentFailed(path="reperes")
    src = np.array([expected[e] for e, _ in best_pairs] + [a for a, _ in extra], dtype=float).reshape(-1, 2)
    dst = np.array([found[f] for _, f in best_pairs] + [b for _, b in extra], dtype=float).reshape(-1, 2)
    matrix, residual_mm = fit_points(src, dst)
    if residual_mm > MAX_RESIDUAL_MM:
        raise AlignmentFailed(
            f"Repères de la page incohérents (écart {residual_mm:.1f} mm)", path="reperes")
    return matrix


def residuals_mm(matrix: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Distance (mm on the page) between where ``matrix`` puts each point and where it was found."""
    scale = math.sqrt(abs(np.linalg.det(np.asarray(matrix, float)[:2, :2])))
    return np.linalg.norm(apply(matrix, src) - dst, axis=1) / max(scale, 1e-9) / geometry.MM


def _spread(src: np.ndarray) -> bool:
    """Whether the points span the page both ways (not all on one edge): a homography's
    perspective terms are then determined by them."""
    return len(src) >= 4 and np.ptp(src[:, 0]) > 0.4 * geometry.PAGE_WIDTH and \
        np.ptp(src[:, 1]) > 0.4 * geometry.PAGE_HEIGHT


def fit_points(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, float]:
    """3×3 matrix (page points → pixels) fitting ``src`` onto ``dst``, and its largest residual (mm).

    Affine by least squares; when that leaves more than :data:`PERSPECTIVE_RESIDUAL_MM`
    and the points span the page (marks at the corners, QR corners), a homography (a
    phone photo is a perspective image, not an affine one), kept when it fits better.
    """
    src, dst = np.asarray(src, float).reshape(-1, 2), np.asarray(dst, float).reshape(-1, 2)
    matrix = _fit_affine(src, dst)
    worst = float(residuals_mm(matrix, src, dst).max())
    if worst > PERSPECTIVE_RESIDUAL_MM and _spread(src):
        hom, _ = cv2.findHomography(src, dst, 0)
        if hom is not None and np.isfinite(hom).all() and abs(hom[2, 2]) > 1e-12:
            hom = hom / hom[2, 2]
            h_worst = float(residuals_mm(hom, src, dst).max())
            if h_worst < worst:
                return hom, h_worst
    return matrix, worst



def align_page(gray: np.ndarray, qr_hits: Sequence = (), dpi_guess: float | None = None) -> np.ndarray:
    """Marks + QR in one call: :func:`find_marks` then :func:`estimate_transform`.

    ``qr_hits`` (from :func:`parsers.scan.identify.find_qr`) give the rotation, and their
    corners are used as extra points when fewer than three marks match (a corner torn,
    stained or outside the scanned area).
    """
    marks = find_marks(gray, dpi_guess)
    ours = [h for h in qr_hits if getattr(h, "info", None) is not None]
    rotation = ours[0].rotation if ours else None
    expected = np.asarray(geometry.MARK_CENTERS, dtype=float)
    extra = []
    if len(match_marks(marks, expected, dpi_guess, rotation)) < 3:
        extra = [pair for h in ours for pair in h.point_pairs()]
    return estimate_transform(marks, expected, dpi_guess=dpi_guess, rotation=rotation, extra_pairs=extra)

# --- feature-based fallback --------------------------------------------------------------


def fallback_feature_align(
    gray: np.ndarray,
    reference_gray: np.ndarray,
    *,
    reference_dpi: float | None = None,
    work_dpi: float = 100.0,
    nfeatures: int = 1500,
    similarity: bool = False,
) -> np.ndarray:
    """3×3 matrix registering ``reference_gray`` (a rendering of the original page) on ``gray``.

    ORB keypoints on both images downsampled to about ``work_dpi`` (the resolutions are
    guessed from the image sizes, assuming about one A4 page each), ratio-tested matches,
    RANSAC affine, then the matrix is rescaled to full resolution (~80–150 ms of one core for a
    200-dpi scan against a 100-dpi reference; errors up to ~0.6 mm on a page of repetitive
    text, so read boxes with some slack). The matrix maps reference pixels to
    image pixels, or PDF points to image pixels if ``reference_dpi`` is given (like
    :func:`estimate_transform`). Raises :class:`AlignmentFailed` with too few matches.

    ``similarity``: a rotation, one scale and a shift only (a sheet is not stretched one way
    more than the other), for a page whose lines moved (a DOCX laid out by another word
    processor), whose matches pull a free affine fit into a stretch.
    """
    img, ref = _to_gray(gray), _to_gray(reference_gray)
    f_img = min(1.0, work_dpi / guess_dpi(img))
    f_ref = min(1.0, work_dpi / guess_dpi(ref))
    small_img = cv2.resize(img, None, fx=f_img, fy=f_img, interpolation=cv2.INTER_AREA) if f_img < 1 else img
    small_ref = cv2.resize(ref, None, fx=f_ref, fy=f_ref, interpolation=cv2.INTER_AREA) if f_ref < 1 else ref
    orb = cv2.ORB_create(nfeatures=nfeatures)
    kp_ref, des_ref = orb.detectAndCompute(small_ref, None)
    kp_img, des_img = orb.detectAndCompute(small_img, None)
    if des_ref is None or des_img is None or len(kp_ref) < 10 or len(kp_img) < 10:
        raise AlignmentFailed(path="reperes")
    matches = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(des_ref, des_img, k=2)
    good = [m[0] for m in matches if len(m) == 2 and m[0].distance < 0.75 * m[1].distance]
    if len(good) < 12:
        raise AlignmentFailed(path="reperes")
    src = np.float32([kp_ref[m.queryIdx].pt for m in good])
    dst = np.float32([kp_img[m.trainIdx].pt for m in good])
    estimate = cv2.estimateAffinePartial2D if similarity else cv2.estimateAffine2D
    m, inliers = estimate(src, dst, method=cv2.RANSAC, ransacReprojThreshold=2.0, maxIters=4000, confidence=0.999)
    if m is None or inliers is None or int(inliers.sum()) < 12:
        raise AlignmentFailed(path="reperes")
    small = np.vstack([m, [0.0, 0.0, 1.0]])
    matrix = np.linalg.inv(_resize_px(f_img)) @ small @ _resize_px(f_ref)
    if reference_dpi:
        matrix = matrix @ render_px(reference_dpi)
    return matrix


def _resize_px(f: float) -> np.ndarray:
    """Pixel coordinates before → after resizing by ``f`` (pixel centres at integers)."""
    c = 0.5 * f - 0.5
    return np.array([[f, 0, c], [0, f, c], [0, 0, 1.0]])


def render_px(dpi: float) -> np.ndarray:
    """PDF points → pixels of the page rendered at ``dpi`` (pypdfium2, pdftoppm)."""
    k = dpi / 72
    return np.array([[k, 0, -0.5], [0, k, -0.5], [0, 0, 1.0]])


# --- using the matrix --------------------------------------------------------------------


def to_pixels(matrix: np.ndarray, bbox_pt: Sequence[float]) -> tuple[float, float, float, float]:
    """Pixel box ``(x0, top, x1, bottom)`` enclosing the PDF box ``bbox_pt`` on the image."""
    x0, top, x1, bottom = bbox_pt
    pts = apply(matrix, [(x0, top), (x1, top), (x1, bottom), (x0, bottom)])
    return (float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max()))


def rectify(gray: np.ndarray, matrix: np.ndarray, dpi: float = 150.0) -> np.ndarray:
    """The page resampled upright: pixel ``(u, v)`` of the result is PDF point ``(u, v) * 72 / dpi``."""
    k = dpi / 72
    size = (math.ceil(geometry.PAGE_WIDTH * k - 1e-6), math.ceil(geometry.PAGE_HEIGHT * k - 1e-6))  # as pdfium
    out_to_img = np.asarray(matrix, dtype=float) @ np.linalg.inv(render_px(dpi))
    if np.allclose(out_to_img[2], (0.0, 0.0, 1.0), atol=1e-12):   # affine (marks, QR): half the cost
        return cv2.warpAffine(_to_gray(gray), out_to_img[:2], size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderValue=255)
    return cv2.warpPerspective(_to_gray(gray), out_to_img, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderValue=255)


# --- content refinement ------------------------------------------------------------------


#: Where the printed content is compared after alignment (fractions of the page): a 6×4 grid.
RESIDUAL_GRID = ((0.1, 0.3, 0.5, 0.7, 0.9), (0.08, 0.24, 0.4, 0.56, 0.72, 0.88))


def content_residuals(flat: np.ndarray, reference: np.ndarray, *, patch: int = 128) -> np.ndarray:
    """How far the rectified page's printed content lies from where it should be, locally.

    ``flat`` is the rectified page, ``reference`` the printed page rendered at the same
    resolution. Patches on a grid (:data:`RESIDUAL_GRID`) holding enough printed matter are
    phase-correlated with the reference. Returns an n×5 array ``(x, y, dx, dy, response)``
    in ``flat`` pixels (empty when nothing could be compared); ~1 ms a patch.
    """
    if flat.shape != reference.shape:
        return np.zeros((0, 5))
    h, w = flat.shape
    half = patch // 2
    window = _hanning(patch)
    out = []
    for fy in RESIDUAL_GRID[1]:
        for fx in RESIDUAL_GRID[0]:
            cy, cx = int(fy * h), int(fx * w)
            if cy - half < 0 or cx - half < 0 or cy + half > h or cx + half > w:
                continue
            a = reference[cy - half:cy + half, cx - half:cx + half]
            if float((a < 128).mean()) < 0.02:      # blank: nothing to compare
                continue
            b = flat[cy - half:cy + half, cx - half:cx + half]
            (dx, dy), response = cv2.phaseCorrelate(a.astype(np.float32), b.astype(np.float32), window)
            out.append((cx, cy, dx, dy, response))
    return np.array(out, float).reshape(-1, 5)


_HANNING: dict[int, np.ndarray] = {}


def _hanning(n: int) -> np.ndarray:
    if n not in _HANNING:
        _HANNING[n] = cv2.createHanningWindow((n, n), cv2.CV_32F)
    return _HANNING[n]


def refine_by_content(flat: np.ndarray, reference: np.ndarray, *, patch: int = 192,
                      max_shift: float = 40.0, min_patches: int = 4) -> np.ndarray | None:
    """3×3 correction ``C`` (reference pixels → ``flat`` pixels) from the page's own content.

    ``flat`` is the page rectified with a first transform, ``reference`` a rendering of the
    printed page at the same resolution. Patches on a 5×3 grid that hold enough printed
    matter are phase-correlated with the reference; their shifts fit an affine correction
    (RANSAC, 2 px). Used when the transform rests on fewer than three registration marks
    (a sheet shifted so far that two marks fall off the glass): marks and QR corners all
    on one edge of the page then leave a tilt of a pixel or more per 100 px far from them.
    ~2 ms per patch. None when fewer than ``min_patches`` patches agree.
    """
    if flat.shape != reference.shape:
        return None
    h, w = flat.shape
    half = patch // 2
    window = cv2.createHanningWindow((patch, patch), cv2.CV_32F)
    src, dst = [], []
    for fy in (0.12, 0.31, 0.5, 0.69, 0.88):
        for fx in (0.2, 0.5, 0.8):
            cy, cx = int(fy * h), int(fx * w)
            if cy - half < 0 or cx - half < 0 or cy + half > h or cx + half > w:
                continue
            a = reference[cy - half:cy + half, cx - half:cx + half].astype(np.float32)
            if float((a < 128).mean()) < 0.01:      # blank: nothing to match on
                continue
            b = flat[cy - half:cy + half, cx - half:cx + half].astype(np.float32)
            (dx, dy), response = cv2.phaseCorrelate(a, b, window)
            if response < 0.08 or abs(dx) > max_shift or abs(dy) > max_shift:
                continue
            src.append((cx - 0.5, cy - 0.5))
            dst.append((cx - 0.5 + dx, cy - 0.5 + dy))
    if len(src) < min_patches:
        return None
    m, inliers = cv2.estimateAffine2D(np.float32(src), np.float32(dst), method=cv2.RANSAC,
                                      ransacReprojThreshold=2.0)
    if m is None or inliers is None or int(inliers.sum()) < min_patches:
        return None
    return np.vstack([m, [0.0, 0.0, 1.0]])


# --- alignment in parts ------------------------------------------------------------------
#
# A page printed from a DOCX that another word processor laid out (a paragraph whose lines
# break elsewhere, a line added) is no single affine image of its issued print: what follows
# the reflowed paragraph sits a line or two lower. The page is then aligned in parts: the
# issued page is cut into horizontal parts (a run of text lines, a table: rows of ink between
# blank gaps), each part is looked for by its printed content a little above and below where
# the whole-page transform put it, and the page is resampled part by part onto the issued
# page's places. A part found clearly (alike, and clearly better than a line away) is an
# anchor; a part found only ambiguously (look-alike rows) is placed by the shift of its
# nearest anchors when it is alike there; a part found nowhere (the reflowed paragraph
# itself, a line pushed onto the next page) is *unplaced*: what lies in it is not read
# confidently (:class:`parsers.scan.fit.PageFit`).

PART_DPI = 100.0          # parts are looked for at this resolution
PART_GAP_MM = 1.0         # blank rows that end a part
PART_MIN_MM = 1.0         # thinner runs of ink (a rule, dots) join the next part
PART_SEARCH_MM = 22.0     # how far up or down a part is looked for (four or five lines)
PART_SIDE_MM = 2.0        # ... and sideways (the whole-page transform's error)
PART_MARGIN_X = 0.06      # page margins left out of a part (share of the width)
PART_ROW_INK = 0.015      # share of a row's pixels inked for it to belong to a part
PART_MATCH = 0.6          # normalised correlation that makes a part an anchor
PART_UNIQUE = 0.08        # ... when its next best place (a line or more away) is this much lower
PART_FOLLOW = 0.5         # a part placed by its anchors' shift must correlate this well there
PART_NEAR_MM = 2.5        # shifts this close are one place
PART_AGREE_MM = 0.5       # an anchor's shift must be shared by a neighbouring anchor within this


class PagePart(tuple):
    """``(top, bottom, dx, dy, placed)``: rows ``top:bottom`` of the issued page (pixels of
    the rectified page), found ``(dx, dy)`` pixels away on it; ``placed`` is ``"anchor"``,
    ``"anchors"`` (by its neighbours' shift) or ``""`` (unplaced)."""

    __slots__ = ()

    def __new__(cls, top, bottom, dx, dy, placed):
        return super().__new__(cls, (int(top), int(bottom), float(dx), float(dy), str(placed)))

    top = property(lambda s: s[0])
    bottom = property(lambda s: s[1])
    dx = property(lambda s: s[2])
    dy = property(lambda s: s[3])
    placed = property(lambda s: s[4])


def page_parts(reference: np.ndarray, px_per_mm: float) -> list[tuple[int, int]]:
    """(top, bottom) rows of the horizontal parts of a printed page: runs of inked rows
    between blank gaps of at least :data:`PART_GAP_MM`; runs thinner than
    :data:`PART_MIN_MM` join the next part."""
    h, w = reference.shape
    inner = reference[:, int(w * PART_MARGIN_X):int(w * (1 - PART_MARGIN_X))]
    # a row crossed only by a table's vertical rules is no ink of a part: table rows apart
    inked = (inner < 160).sum(axis=1) >= max(2, PART_ROW_INK * inner.shape[1])
    gap = max(1, int(round(PART_GAP_MM * px_per_mm)))
    runs, start, blank = [], None, 0
    for y, ink in enumerate(inked):
        if ink:
            if start is None:
                start = y
            blank = 0
        elif start is not None:
            blank += 1
            if blank >= gap:
                runs.append((start, y - blank + 1))
                start, blank = None, 0
    if start is not None:
        runs.append((start, h - blank))
    parts: list[tuple[int, int]] = []
    pending = None
    for top, bottom in runs:
        if pending is not None:
            top = pending
            pending = None
        if bottom - top < PART_MIN_MM * px_per_mm:
            pending = top
            continue
        parts.append((top, bottom))
    if pending is not None and parts:
        parts[-1] = (parts[-1][0], runs[-1][1])
    return parts


def _peak(scores: np.ndarray) -> tuple[float, float, float]:
    """(dy, dx, score) of the best place in a correlation map, sub-pixel (parabola)."""
    iy, ix = np.unravel_index(int(np.argmax(scores)), scores.shape)
    best = float(scores[iy, ix])

    def vertex(a, b, c):
        den = a - 2 * b + c
        return 0.0 if abs(den) < 1e-9 else float(np.clip(0.5 * (a - c) / den, -0.5, 0.5))

    fy = vertex(scores[iy - 1, ix], best, scores[iy + 1, ix]) if 0 < iy < scores.shape[0] - 1 else 0.0
    fx = vertex(scores[iy, ix - 1], best, scores[iy, ix + 1]) if 0 < ix < scores.shape[1] - 1 else 0.0
    return iy + fy, ix + fx, best


def align_in_parts(flat: np.ndarray, reference: np.ndarray, dpi: float = 200.0):
    """The rectified page ``flat`` resampled part by part onto the issued page ``reference``
    (same shape, ``dpi``), and its parts (:class:`PagePart`, rows of ``flat``), or None
    when no part anchors (not this page). See the comment above."""
    if flat.shape != reference.shape:
        return None
    f = PART_DPI / dpi
    small_ref = cv2.resize(reference, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
    small = cv2.resize(flat, (small_ref.shape[1], small_ref.shape[0]), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (3, 3), 0)
    small_ref = cv2.GaussianBlur(small_ref, (3, 3), 0)
    px_mm = PART_DPI / MM_PER_INCH
    h, w = small_ref.shape
    search, side = int(round(PART_SEARCH_MM * px_mm)), int(round(PART_SIDE_MM * px_mm))
    x0, x1 = int(w * PART_MARGIN_X), int(w * (1 - PART_MARGIN_X))
    near = PART_NEAR_MM * px_mm
    found = []   # per part: (top, bottom, score map, origin dy, best (dy, dx, score), unique)
    for top, bottom in page_parts(small_ref, px_mm):
        tmpl = small_ref[top:bottom, x0:x1]
        if float(tmpl.std()) < 1.0:
            continue
        y_lo, y_hi = max(0, top - search), min(h, bottom + search)
        region = small[y_lo:y_hi, x0 - side:x1 + side]
        if region.shape[0] < tmpl.shape[0] or float(region.std()) < 1.0:
            found.append((top, bottom, None, 0, (0.0, 0.0, -1.0), False))
            continue
        scores = cv2.matchTemplate(region, tmpl, cv2.TM_CCOEFF_NORMED)
        py, px, best = _peak(scores)
        rows = np.arange(scores.shape[0])
        others = scores[np.abs(rows - py) > near]
        unique = best >= PART_MATCH and (others.size == 0 or best - float(others.max()) >= PART_UNIQUE)
        found.append((top, bottom, scores, y_lo - top, (py + y_lo - top, px - side, best), unique))
    anchors = [k for k, p in enumerate(found) if p[5]]
    # lines move together: below a reflowed paragraph everything moves by the same amount, so
    # an anchor whose shift no neighbouring anchor shares has locked onto a look-alike row
    # (seed 41, batch 4: a CERS page 2 line found 7.6 mm off; batch 9: two table rows of a
    # CERS page 1, 12.7 and 7.1 mm off)
    agree = PART_AGREE_MM * px_mm
    lone = [k for i, k in enumerate(anchors)
            if not any(0 <= j < len(anchors) and abs(found[k][4][0] - found[anchors[j]][4][0]) <= agree
                       for j in (i - 1, i + 1))]
    for k in lone:
        found[k] = found[k][:5] + (False,)
    anchors = [k for k in anchors if k not in lone]
    if not anchors:
        return None
    parts = []
    for k, (top, bottom, scores, origin, (dy, dx, best), unique) in enumerate(found):
        if unique:
            parts.append((top, bottom, dx, dy, "anchor"))
            continue
        above = next((a for a in reversed(anchors) if a < k), None)
        below = next((a for a in anchors if a > k), None)
        placed = None
        for a in (above, below):
            if a is None or scores is None:
                continue
            ady, adx = found[a][4][0], found[a][4][1]
            iy, ix = int(round(ady - origin)), int(round(adx + side))
            if 0 <= iy < scores.shape[0] and 0 <= ix < scores.shape[1]:
                s = float(scores[max(0, iy - 1):iy + 2, max(0, ix - 1):ix + 2].max())
                if s >= PART_FOLLOW and (placed is None or s > placed[0]):
                    placed = (s, adx, ady)
        if placed is not None:
            parts.append((top, bottom, placed[1], placed[2], "anchors"))
        else:   # where its nearest anchor's shift puts it, unplaced
            a = above if above is not None else below
            parts.append((top, bottom, found[a][4][1], found[a][4][0], ""))
    # back to the rectified page's pixels; each gap split between the parts around it
    scale = 1 / f
    out = []
    for k, (top, bottom, dx, dy, placed) in enumerate(parts):
        t = 0 if k == 0 else (parts[k - 1][1] + top) / 2
        b = h if k == len(parts) - 1 else (bottom + parts[k + 1][0]) / 2
        out.append(PagePart(round(t * scale), round(b * scale), dx * scale, dy * scale, placed))
    big_h, big_w = flat.shape
    map_x = np.tile(np.arange(big_w, dtype=np.float32), (big_h, 1))
    map_y = np.repeat(np.arange(big_h, dtype=np.float32)[:, None], big_w, axis=1)
    for p in out:
        map_x[p.top:p.bottom] += p.dx
        map_y[p.top:p.bottom] += p.dy
    warped = cv2.remap(flat, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=255)
    return warped, out

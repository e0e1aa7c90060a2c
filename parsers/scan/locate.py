"""One page image located: which form page it is, and its rectified image.

The QR codes say form, template version, page and document id; the registration marks
(and the QR corners) give the transform to the page. Without a readable QR code the
marks alone give the transform, and the page is identified by its content: the
stamped footer (OCR), else the blank page it resembles, else its printed title; such
pages are flagged.

A form printed from its DOCX download has neither marks nor footer, and one QR code
in its header, the same on every page, without page number (``QrInfo.is_docx``): its
page is found by its content (:func:`content_match`, feature registration on each page
of the blank form, then refinement on the printed content), and it is read like any
scan once its likeness to that page is clear.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from forms_service.catalogue import FormDefinition, catalogue
from forms_service.errors import UnknownForm
from forms_service.render import geometry
from forms_service.render.qr import QrInfo

from . import align, decide, fit, identify, measure, ocr
from .ingest import PageImage
from .references import References, likeness


@dataclass
class PageResult:
    image: PageImage
    status: str                          # "form" | "blank" | "unknown"
    info: QrInfo | None = None
    form: FormDefinition | None = None
    page: int | None = None
    pages: int | None = None
    rotation: int = 0
    identified_by: str = "qr"
    flat: np.ndarray | None = None       # rectified, flat-fielded, WORK_DPI
    message: str | None = None
    #: identified by content and checked against the issued document's own page
    verified: bool = False
    #: sha1 of the page image as decoded: only the very same image is a duplicate
    digest: str | None = None
    #: largest residual (mm) of the marks and QR corners on the transform, when they gave it
    marks_mm: float | None = None
    #: identified by its content as a page its document holds already: matched to the pages
    #: the upload lacks first (:meth:`ScanBatch.add_page`)
    settle: bool = False
    #: (top, bottom) PDF points of the parts of a page aligned in parts that were found
    #: nowhere (:func:`align.align_in_parts`): what lies there is not read confidently
    unplaced: tuple[tuple[float, float], ...] = ()


def ink_share(gray: np.ndarray) -> float:
    small = cv2.resize(gray, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)
    return float((small < 128).mean())


def _rotation_from_marks(gray: np.ndarray, dpi: float | None) -> tuple[np.ndarray, int] | None:
    """Without a QR code: the marks alone give the transform (and the rotation)."""
    marks = align.find_marks(gray, dpi)
    for rot in (0, 180, 90, 270):
        try:
            return align.estimate_transform(marks, dpi_guess=dpi, rotation=rot), rot
        except align.AlignmentFailed:
            continue
    return None


def page_dpi(img: PageImage, hits) -> float:
    """The page's resolution: from a QR code's size when one was read (a phone's JPEG says
    72 dpi whatever it shows, and a photo's frame is larger than the sheet), else the
    file's when it makes a page of about A4, else guessed from the image size."""
    for h in hits:
        pairs = h.point_pairs()
        if len(pairs) == 4:
            pt = np.array([a for a, _ in pairs], float)
            px = np.array([b for _, b in pairs], float)
            side_pt = np.linalg.norm(np.roll(pt, -1, axis=0) - pt, axis=1).mean()
            side_px = np.linalg.norm(np.roll(px, -1, axis=0) - px, axis=1).mean()
            if side_pt > 0:
                return float(side_px / side_pt * 72.0)
    guess = align.guess_dpi(img.gray)
    if img.dpi and 0.8 <= guess / img.dpi <= 1.25:
        return float(img.dpi)
    return guess


GROSS_MM = 10.0


def _marks_residual(marks: np.ndarray, pairs, matrix: np.ndarray, dpi: float, rotation: int) -> float | None:
    """Largest residual (mm) of the matched marks and the QR corners on ``matrix``."""
    expected = np.asarray(geometry.MARK_CENTERS, float)
    matched = align.match_marks(marks, expected, dpi, rotation)
    src = [expected[e] for e, _ in matched] + [a for a, _ in pairs]
    dst = [marks[f] for _, f in matched] + [b for _, b in pairs]
    if len(src) < 4:
        return None
    res = align.residuals_mm(matrix, np.array(src, float), np.array(dst, float))
    res = res[res < GROSS_MM]    # a point misread (a QR corner on the wrong copy), not a misfit
    return float(res.max()) if len(res) >= 4 else None


def _robust_transform(marks: np.ndarray, pairs, dpi: float, rotation: int) -> np.ndarray | None:
    """When marks and QR corners do not fit together (a QR corner misread, a mark
    mistaken): the marks alone, else a robust fit (RANSAC) of every point, else None."""
    try:
        return align.estimate_transform(marks, dpi_guess=dpi, rotation=rotation)
    except align.AlignmentFailed:
        pass
    expected = np.asarray(geometry.MARK_CENTERS, float)
    matched = align.match_marks(marks, expected, dpi, rotation)
    src = np.array([expected[e] for e, _ in matched] + [a for a, _ in pairs], float).reshape(-1, 2)
    dst = np.array([marks[f] for _, f in matched] + [b for _, b in pairs], float).reshape(-1, 2)
    if len(src) < 3:
        return None
    tol = 1.0 * dpi / 25.4   # 1 mm
    m, inliers = cv2.estimateAffine2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=tol)
    if m is None or inliers is None or int(inliers.sum()) < 3:
        return None
    keep = inliers.ravel().astype(bool)
    matrix, _ = align.fit_points(src[keep], dst[keep])
    return matrix


def locate(img: PageImage, refs: References) -> PageResult:
    """Identify and align one page image."""
    gray = img.gray
    hits = [h for h in identify.find_qr(gray) if h.info is not None]
    dpi = page_dpi(img, hits)
    if not hits:
        return _locate_without_qr(img, refs, dpi)
    hit = hits[0]
    info = hit.info
    try:
        fd = catalogue.get(info.form)
    except UnknownForm:
        return PageResult(img, "unknown", message=f"Formulaire inconnu « {info.form} »")
    if info.is_docx:
        return _locate_docx_print(img, refs, info, fd, hit.rotation)
    pairs = [p for h in hits for p in h.point_pairs()]
    marks = np.zeros((0, 2))
    try:
        marks = align.find_marks(gray, dpi)
        matrix = align.estimate_transform(marks, dpi_guess=dpi, rotation=hit.rotation, extra_pairs=pairs)
    except align.AlignmentFailed:
        matrix = _robust_transform(marks, pairs, dpi, hit.rotation)
        if matrix is None:
            return PageResult(img, "unknown", info, fd, info.page, info.pages, hit.rotation,
                              message="Repères de la page introuvables")
    flat = align.rectify(gray, matrix, measure.WORK_DPI)
    residual = _marks_residual(marks, pairs, matrix, dpi, hit.rotation)
    few_marks = len(align.match_marks(marks, np.asarray(geometry.MARK_CENTERS, float), dpi, hit.rotation)) < 3
    ref = None
    if few_marks or residual is None or residual > fit.BOX_TOLERANCE_MM / 2:
        # marks and QR corners on one edge only (the far side of the page is extrapolated),
        # or a fit they do not quite make (a curl, a perspective the points leave open):
        # the printed content puts it right
        ref = refs.page_of(info.doc_id, fd.id, info.version, info.page)
        fix = align.refine_by_content(flat, ref) if ref is not None else None
        if fix is not None:
            r = align.render_px(measure.WORK_DPI)
            matrix = matrix @ np.linalg.inv(r) @ fix @ r
            flat = align.rectify(gray, matrix, measure.WORK_DPI)
            residual = None     # the content now says how well the page fits (pipeline)
    flat = measure.flatten_light(flat)
    return PageResult(img, "form", info, fd, info.page, info.pages, hit.rotation, "qr", flat,
                      marks_mm=residual)


#: A registration this alike may be the right page slightly off (ORB pairing look-alike rows
#: of a table leaves a scale 1 % wrong: seed 41, batch 4, a CERS page 2 at 0.38, 0.72 once
#: refined): refined on the printed content before it is judged.
REFINE_LIKENESS = 0.2


def registered(gray: np.ndarray, ref: np.ndarray, *, similarity: bool = False):
    """(likeness, matrix, rectified page) of ``gray`` registered on the printed page ``ref``
    (ORB, then refined on the printed content when somewhat alike), or None.
    ``similarity``: see :func:`align.fallback_feature_align`."""
    try:
        matrix = align.fallback_feature_align(gray, ref, reference_dpi=measure.WORK_DPI, similarity=similarity)
    except align.AlignmentFailed:
        return None
    flat = align.rectify(gray, matrix, measure.WORK_DPI)
    score = likeness(flat, ref)
    if REFINE_LIKENESS <= score < decide.MATCH_LIKENESS:
        matrix2, flat2 = _refined(gray, matrix, flat, ref)
        score2 = likeness(flat2, ref)
        if score2 > score:
            matrix, flat, score = matrix2, flat2, score2
    return score, matrix, flat


def registered_in_parts(gray: np.ndarray, ref: np.ndarray):
    """(likeness, matrix, rectified page, parts or None) of ``gray`` registered on ``ref`` as
    :func:`registered` does, then, when somewhat alike only, aligned in parts
    (:func:`align.align_in_parts`: a page printed from the DOCX whose lines another word
    processor broke elsewhere) when that makes it more alike; or None.

    Lines that moved pull a free affine registration into a stretch (seed 47 docx-reflow,
    batch 5, a CERS page 1: 9 % taller than wide, likeness 0.14): a page not alike as a
    whole is registered again as a sheet can be moved (:func:`align.fallback_feature_align`
    ``similarity``), and the more alike of the two is kept."""
    best = None
    for similarity in (False, True):
        found = registered(gray, ref, similarity=similarity)
        if found is None:
            continue
        score, matrix, flat = found
        parts = None
        if REFINE_LIKENESS <= score < decide.MATCH_LIKENESS:
            parted = align.align_in_parts(flat, ref, measure.WORK_DPI)
            if parted is not None and likeness(parted[0], ref) > score:
                score, flat, parts = likeness(parted[0], ref), parted[0], parted[1]
        if best is None or score > best[0]:
            best = (score, matrix, flat, parts)
        if best[0] >= decide.MATCH_LIKENESS and best[3] is None:   # alike as a whole: done
            break
    return best


def _refined(gray: np.ndarray, matrix: np.ndarray, flat: np.ndarray, ref: np.ndarray):
    """(matrix, rectified page) corrected on the printed content, or the same when it cannot be."""
    fix = align.refine_by_content(flat, ref)
    if fix is None:
        return matrix, flat
    r = align.render_px(measure.WORK_DPI)
    matrix = matrix @ np.linalg.inv(r) @ fix @ r
    return matrix, align.rectify(gray, matrix, measure.WORK_DPI)


def _misplaced(flat: np.ndarray, ref: np.ndarray) -> bool:
    """Whether the printed content lies off its place by more than a box's tolerance in two
    places or more once the whole page is aligned (lines moved: a page to align in parts)."""
    res = align.content_residuals(flat, ref)
    res = res[res[:, 4] >= fit.MIN_RESPONSE] if len(res) else res
    off = np.hypot(res[:, 2], res[:, 3]) / measure.PX_PER_MM if len(res) else np.zeros(0)
    return int((off > fit.BOX_TOLERANCE_MM).sum()) >= 2   # one patch off: handwriting over it


def unplaced_parts(parts) -> tuple[tuple[float, float], ...]:
    """(top, bottom) PDF points of the parts of a page aligned in parts that were found nowhere."""
    return tuple((p.top / measure.K, p.bottom / measure.K) for p in parts if not p.placed)


def content_match(gray: np.ndarray, candidates: list[tuple[object, np.ndarray]], *, keep_scores: bool = False,
                  in_parts: bool = False):
    """The candidate page ``gray`` shows, registered on its content, or None.

    ``candidates``: (key, reference page at WORK_DPI). Each is registered (ORB features,
    ~0.1 s), refined on the printed content when it is somewhat alike
    (:data:`REFINE_LIKENESS`), and compared (:func:`references.likeness`); the best is
    taken when it is alike enough (``decide.MATCH_LIKENESS``) and clearly better than the
    next (``decide.MATCH_MARGIN``). Returns (key, matrix from PDF points to image pixels,
    rectified and flat-fielded page). ``keep_scores``: (that or None, [(likeness, key)]
    best first), the best guesses of a page not matched.

    ``in_parts`` (a page printed from a DOCX, whose lines another word processor may have
    broken elsewhere): the page is also aligned in parts (:func:`align.align_in_parts`) where
    its content is off its place, the best two candidates judged so when no page is alike
    as a whole; the result then has a fourth item, the unplaced parts (PDF points).
    """
    scored = []
    for key, ref in candidates:
        found = registered(gray, ref)
        if found is not None:
            scored.append([found[0], key, found[1], ref, found[2], None])
    scored.sort(key=lambda t: -t[0])

    def clear() -> bool:
        best = scored[0]
        return best[0] >= decide.MATCH_LIKENESS and (len(scored) == 1 or best[0] - scored[1][0] >= decide.MATCH_MARGIN)

    if in_parts and scored and not clear():
        for entry in scored[:2]:
            if entry[0] < REFINE_LIKENESS:
                continue
            parted = align.align_in_parts(entry[4], entry[3], measure.WORK_DPI)
            if parted is not None:
                score = likeness(parted[0], entry[3])
                if score > entry[0]:
                    entry[0], entry[4], entry[5] = score, parted[0], parted[1]
        scored.sort(key=lambda t: -t[0])
    scores = [(s, key) for s, key, *_ in scored]
    if not scored or not clear():
        return (None, scores) if keep_scores else None
    _, key, matrix, ref, flat, parts = scored[0]
    if parts is None:
        matrix, flat = _refined(gray, matrix, flat, ref)
        if in_parts and _misplaced(flat, ref):
            parted = align.align_in_parts(flat, ref, measure.WORK_DPI)
            if parted is not None and likeness(parted[0], ref) >= likeness(flat, ref):
                flat, parts = parted
    found = (key, matrix, measure.flatten_light(flat))
    if in_parts:
        found += (unplaced_parts(parts or ()),)
    return (found, scores) if keep_scores else found


def _locate_docx_print(img: PageImage, refs: References, info: QrInfo, fd: FormDefinition,
                       rotation: int) -> PageResult:
    """A page printed from the DOCX download: which page of the form, by its content."""
    # the issued DOCX as printed (pre-filled text included), else the blank form
    pages = refs.printed_pages(info.doc_id) or refs.blank_pages(fd.id)
    found = content_match(img.gray, list(enumerate(pages, start=1)), in_parts=True)
    if found is None:
        # pages alike (a CERP's table pages): matched in the batch among the pages its
        # documents lack (ScanBatch.match_pending), as a page whose QR code was lost
        return PageResult(img, "unknown", None, fd, None, None, rotation,
                          message="Page imprimée depuis le DOCX non reconnue : son contenu ne ressemble "
                                  "clairement à aucune page du formulaire")
    page, _, flat, unplaced = found
    return PageResult(img, "form", QrInfo(info.form, info.version, page, len(pages), info.doc_id), fd,
                      page, len(pages), rotation, "content", flat,
                      "Page imprimée depuis le DOCX : identifiée par son contenu", verified=True,
                      unplaced=unplaced)


def _locate_without_qr(img: PageImage, refs: References, dpi: float) -> PageResult:
    gray = img.gray
    if decide.is_blank(ink_share(gray)):
        return PageResult(img, "blank", message="Page blanche")
    found = _rotation_from_marks(gray, dpi)
    if found is None:
        return PageResult(img, "unknown", message="Page non reconnue : ni QR code, ni repères")
    matrix, rot = found
    flat = measure.flatten_light(align.rectify(gray, matrix, measure.WORK_DPI))
    footer = ocr.read_footer(flat)   # the footer line says what the QR code says
    if footer is not None:
        # a document id misread (0 for D, 5 for S…) names no issued document: the near one;
        # one that names nothing the page can be read with: the page then joins the document
        # of its form in the upload that lacks it (ScanBatch._join_orphans)
        doc_id = refs.footer_document_id(footer["doc_id"], footer["form"], footer["version"])
        info = QrInfo(footer["form"], footer["version"], footer["page"], footer["pages"], doc_id)
        return PageResult(img, "form", info, catalogue.get(info.form), info.page, info.pages, rot,
                          "content", flat, "QR code illisible : page identifiée par son pied de page")
    match = refs.match_reference(flat)
    if match is None:
        title = ocr.read_title(flat)
        if title is not None:
            fd = catalogue.get(title)
            return PageResult(img, "form", None, fd, 1, fd.pages, rot, "content", flat,
                              "QR code illisible : formulaire identifié par son titre")
        return PageResult(img, "unknown", flat=flat, rotation=rot,
                          message="Page non reconnue : QR code illisible et contenu inconnu")
    fd, page, pages = match
    return PageResult(img, "form", None, fd, page, pages, rot, "content", flat,
                      "QR code illisible : page identifiée par son contenu")

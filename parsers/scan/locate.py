"""One page image located: which form page it is, and its rectified image.

The QR codes say form, template version, page and document id; the registration marks
(and the QR corners) give the transform to the page. Without a readable QR code the
marks alone give the transform, and the page is identified by its content: the
stamped footer (OCR), else the blank page it resembles, else its printed title; such
pages are flagged.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from forms_service.catalogue import FormDefinition, catalogue
from forms_service.errors import UnknownForm
from forms_service.render import geometry
from forms_service.render.qr import QrInfo

from . import align, decide, identify, measure, ocr
from .ingest import PageImage
from .references import References


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


def locate(img: PageImage, refs: References) -> PageResult:
    """Identify and align one page image."""
    gray = img.gray
    hits = [h for h in identify.find_qr(gray) if h.info is not None]
    dpi = img.dpi or align.guess_dpi(gray)
    if not hits:
        return _locate_without_qr(img, refs, dpi)
    hit = hits[0]
    info = hit.info
    try:
        fd = catalogue.get(info.form)
    except UnknownForm:
        return PageResult(img, "unknown", message=f"Formulaire inconnu « {info.form} »")
    pairs = [p for h in hits for p in h.point_pairs()]
    marks = np.zeros((0, 2))
    try:
        marks = align.find_marks(gray, dpi)
        matrix = align.estimate_transform(marks, dpi_guess=dpi, rotation=hit.rotation, extra_pairs=pairs)
    except align.AlignmentFailed:
        if len(pairs) < 3:
            return PageResult(img, "unknown", info, fd, info.page, info.pages, hit.rotation,
                              message="Repères de la page introuvables")
        src = np.array([a for a, _ in pairs], float)
        dst = np.array([b for _, b in pairs], float)
        m, _ = cv2.estimateAffine2D(src, dst)
        matrix = np.vstack([m, [0, 0, 1]])
    flat = align.rectify(gray, matrix, measure.WORK_DPI)
    if len(align.match_marks(marks, np.asarray(geometry.MARK_CENTERS, float), dpi, hit.rotation)) < 3:
        # marks and QR corners on one edge only: the far side of the page is extrapolated;
        # the printed content puts it right
        ref = refs.page_of(info.doc_id, fd.id, info.version, info.page)
        fix = align.refine_by_content(flat, ref) if ref is not None else None
        if fix is not None:
            r = align.render_px(measure.WORK_DPI)
            matrix = matrix @ np.linalg.inv(r) @ fix @ r
            flat = align.rectify(gray, matrix, measure.WORK_DPI)
    flat = measure.flatten_light(flat)
    return PageResult(img, "form", info, fd, info.page, info.pages, hit.rotation, "qr", flat)


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
        info = QrInfo(footer["form"], footer["version"], footer["page"], footer["pages"], footer["doc_id"])
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

"""How well a rectified page fits its original, locally: is the page where we think?

After alignment (:mod:`align`: marks, QR corners, an affine or a homography), the
printed content of the rectified page is compared with what was printed
(:func:`align.content_residuals`: patches on a grid, phase-correlated with the issued
page rendered at the same resolution). A patch whose content lies more than a box's
tolerance from where it should be says that the model did not explain the page there
(a perspective, a curl, a local shift). :class:`PageFit` answers, for a box, how far the
page may be off around it; :mod:`pipeline` then reads the box confidently only when the
page fits there and its printed square was found again where it should be, and sends it
to review otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import align, measure

#: A box is read confidently only where the page fits within this (its square is looked
#: for ±1.2 mm around its place, and a neighbour box is ~5 mm away).
BOX_TOLERANCE_MM = 0.8
#: Phase correlation peaks weaker than this say nothing (handwriting over the patch, too
#: little printed matter).
MIN_RESPONSE = 0.3
#: Patches this close to a box tell how well the page fits there (the lower median of two or
#: more of them: a lone patch may lock onto the next table rule, a false peak).
NEAR_MM = 60.0
#: Where the page does not fit around a box (a phone photo's perspective or curl, up to ~3 mm),
#: the box is looked for again where the content near it lies (:meth:`PageFit.shift_at`):
#: when those patches agree within this (mm)…
SHIFT_AGREE_MM = 1.0
#: …and move it no more than this (mm; well under the ~5 mm between two boxes' squares)
SHIFT_MAX_MM = 3.5


@dataclass
class PageFit:
    points: np.ndarray          # n×2, rectified pixels: where the content was compared
    shift_mm: np.ndarray        # n: how far it lies from where it should be
    #: largest residual of the marks / QR corners fit (mm), when the page was aligned by them
    marks_mm: float | None = None
    #: (top, bottom) PDF points of the parts of a page aligned in parts found nowhere
    #: (:func:`align.align_in_parts`: a reflowed paragraph, a line pushed off the page)
    unplaced: tuple[tuple[float, float], ...] = ()
    #: n×2, rectified pixels: where the content lies against where it should be (dx, dy)
    vectors: np.ndarray | None = None

    def unplaced_at(self, bbox_pt: list[float]) -> bool:
        """Whether a box (PDF points) lies in a part of the page that was not found."""
        return in_unplaced(bbox_pt, self.unplaced)

    @property
    def worst_mm(self) -> float:
        return float(self.shift_mm.max()) if len(self.shift_mm) else 0.0

    def misfit_at(self, bbox_pt: list[float]) -> float | None:
        """The largest misfit (mm) of the content compared near a box (PDF points), or None
        when nothing printed near it could be compared."""
        if not len(self.points):
            return None
        cx = (bbox_pt[0] + bbox_pt[2]) / 2 * measure.K
        cy = (bbox_pt[1] + bbox_pt[3]) / 2 * measure.K
        d = np.hypot(self.points[:, 0] - cx, self.points[:, 1] - cy) / measure.PX_PER_MM
        near = d <= NEAR_MM
        if near.sum() < 2:
            return None
        near_shifts = np.sort(self.shift_mm[near])
        return float(near_shifts[(len(near_shifts) - 1) // 2])   # the lower median

    def misfit_only(self, bbox_pt: list[float]) -> bool:
        """Whether a box's only doubt is the page's local misfit around it (the marks fit,
        the part of the page was found): what :meth:`shift_at` may explain."""
        off = self.misfit_at(bbox_pt)
        return off is not None and off > BOX_TOLERANCE_MM and not self.unplaced_at(bbox_pt) and \
            (self.marks_mm is None or self.marks_mm <= BOX_TOLERANCE_MM)

    def shift_at(self, bbox_pt: list[float]) -> tuple[float, float] | None:
        """Where the printed content near a box lies against where it should be (pixels,
        dx, dy: the median of the patches within NEAR_MM), when they agree within
        SHIFT_AGREE_MM and it is no more than SHIFT_MAX_MM; else None."""
        if self.vectors is None or not len(self.points):
            return None
        cx = (bbox_pt[0] + bbox_pt[2]) / 2 * measure.K
        cy = (bbox_pt[1] + bbox_pt[3]) / 2 * measure.K
        near = np.hypot(self.points[:, 0] - cx, self.points[:, 1] - cy) / measure.PX_PER_MM <= NEAR_MM
        if near.sum() < 2:
            return None
        v = self.vectors[near]
        med = np.median(v, axis=0)
        if np.hypot(*(v - med).T).max() > SHIFT_AGREE_MM * measure.PX_PER_MM or \
                np.hypot(*med) > SHIFT_MAX_MM * measure.PX_PER_MM:
            return None
        return float(med[0]), float(med[1])

    def fits_at(self, bbox_pt: list[float]) -> bool:
        """Whether the printed content near a box was found within half a box's tolerance."""
        if self.unplaced_at(bbox_pt):
            return False
        off = self.misfit_at(bbox_pt)
        return off is not None and off <= BOX_TOLERANCE_MM / 2 and \
            (self.marks_mm is None or self.marks_mm <= BOX_TOLERANCE_MM)

    def doubt(self, bbox_pt: list[float]) -> str | None:
        """Why a box cannot be read confidently where it is (French), or None."""
        if self.unplaced_at(bbox_pt):
            return ("Partie de la page non retrouvée (texte décalé par un traitement de texte) : "
                    "à vérifier d'après l'image")
        if self.marks_mm is not None and self.marks_mm > BOX_TOLERANCE_MM:
            return (f"Page mal repérée (écart de {self.marks_mm:.1f} mm sur les repères) : "
                    "à vérifier d'après l'image")
        off = self.misfit_at(bbox_pt)
        if off is not None and off > BOX_TOLERANCE_MM:
            return f"Page déformée à cet endroit (écart de {off:.1f} mm) : à vérifier d'après l'image"
        return None


def in_unplaced(bbox_pt: list[float], unplaced: tuple[tuple[float, float], ...]) -> bool:
    """Whether a box or zone (PDF points) overlaps the unplaced parts (top, bottom) of its page."""
    return any(bbox_pt[1] < bottom and bbox_pt[3] > top for top, bottom in unplaced)


def page_fit(flat: np.ndarray, reference: np.ndarray | None, marks_mm: float | None = None,
             unplaced: tuple[tuple[float, float], ...] = ()) -> PageFit:
    """The local fit of a rectified page (``flat``, WORK_DPI) on what was printed."""
    if reference is None or reference.shape != flat.shape:
        return PageFit(np.zeros((0, 2)), np.zeros(0), marks_mm, unplaced)
    res = align.content_residuals(flat, reference)
    res = res[res[:, 4] >= MIN_RESPONSE] if len(res) else res
    shift = np.hypot(res[:, 2], res[:, 3]) / measure.PX_PER_MM if len(res) else np.zeros(0)
    return PageFit(res[:, :2] if len(res) else np.zeros((0, 2)), shift, marks_mm, unplaced,
                   res[:, 2:4] if len(res) else np.zeros((0, 2)))

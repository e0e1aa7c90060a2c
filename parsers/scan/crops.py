"""Crops of what a person must look at (uncertain boxes, handwriting, signatures).

Written as PNG under ``<storage_dir>/crops/<document key>/``; the record's evidence
names the file. A crop that cannot be written is logged and left out: the field still
goes to review, with its page and box.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from forms_service.logging_setup import get_logger

from . import measure

log = get_logger(__name__)


class Crops:
    def __init__(self, storage_dir: Path, doc_key: str):
        self.base = Path(storage_dir) / "crops" / doc_key
        self.doc_key = doc_key

    def save(self, flat: np.ndarray, bbox_pt: list[float], path: str, page: int) -> str | None:
        """The crop of ``bbox_pt`` (PDF points, 1.5 mm of margin) on a rectified page, or None."""
        x0, top, x1, bottom = (int(round(v * measure.K)) for v in bbox_pt)
        pad = int(1.5 * measure.PX_PER_MM)
        crop = flat[max(0, top - pad):bottom + pad, max(0, x0 - pad):x1 + pad]
        if crop.size == 0:
            return None
        ok, buf = cv2.imencode(".png", crop)
        if not ok:
            return None
        target = self.base / f"p{page}-{path}.png"
        try:
            self.base.mkdir(parents=True, exist_ok=True)
            target.write_bytes(buf.tobytes())
        except OSError as exc:
            log.warning("crop_not_written", doc_key=self.doc_key, page=page, error=type(exc).__name__)
            return None
        return str(target)

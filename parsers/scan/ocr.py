"""Identify a page whose QR codes are both unreadable, by reading printed text.

The stamped footer line says everything the QR code says
(``fiche-liaison · modèle 0123456789ab · page 2/3 · doc 01J…``), in small print
at a known place: OCR of that band alone gives form, version, page and
document id. When the footer is lost too, the page's title (its first lines)
names the form. Tesseract runs on these crops only, with one thread
(``OMP_THREAD_LIMIT=1``: 8× faster here than its default threading).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import unicodedata

import cv2
import numpy as np

from forms_service.catalogue import catalogue
from forms_service.render import geometry
from forms_service.render.footer import parse_footer

from .measure import K

TIMEOUT = 15


def available() -> bool:
    return shutil.which("tesseract") is not None


def _tesseract(img: np.ndarray, psm: int) -> str:
    ok, png = cv2.imencode(".png", img)
    if not ok:
        return ""
    env = dict(os.environ, OMP_THREAD_LIMIT="1")
    try:
        out = subprocess.run(["tesseract", "stdin", "stdout", "-l", "fra", "--psm", str(psm)],
                             input=png.tobytes(), capture_output=True, timeout=TIMEOUT, env=env)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.decode("utf-8", "replace")


def _crop(flat: np.ndarray, box_pt, pad_pt: float = 2.0, scale: float = 2.0) -> np.ndarray:
    x0, top, x1, bottom = box_pt
    c = flat[max(0, int((top - pad_pt) * K)):int((bottom + pad_pt) * K),
             max(0, int((x0 - pad_pt) * K)):int((x1 + pad_pt) * K)]
    return cv2.resize(c, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC) if c.size else c


def read_footer(flat: np.ndarray) -> dict | None:
    """Form, version, page, pages, document id from the footer of a rectified page."""
    if not available():
        return None
    footer = parse_footer(_tesseract(_crop(flat, geometry.FOOTER_BOX, scale=3.0), psm=7), ocr=True)
    if footer is None or footer.form not in {fd.id for fd in catalogue.forms()}:
        return None
    return {"form": footer.form, "version": footer.version.translate(_HEX_LOOKALIKES), "page": footer.page,
            "pages": footer.pages, "doc_id": footer.doc_id.translate(_CROCKFORD_LOOKALIKES)}


#: What OCR reads for digits a document id (a ULID, Crockford's base 32: no I, L, O, U)
#: and a version (hexadecimal) cannot hold — seed 13, batch 5, page 4: « …PNZO… » for
#: « …PNZ0… » made a document of its own, with no issued document.
_CROCKFORD_LOOKALIKES = str.maketrans({"O": "0", "I": "1", "L": "1"})
_HEX_LOOKALIKES = str.maketrans({"o": "0", "i": "1", "l": "1"})


def _norm(text: str) -> str:
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", " ", text).strip()


def read_title(flat: np.ndarray) -> str | None:
    """The form id whose title is printed at the top of the page (first pages only)."""
    if not available():
        return None
    top = geometry.CONTENT_BOX[1]
    band = (geometry.CONTENT_BOX[0], top, geometry.CONTENT_BOX[2], top + 60)
    text = _norm(_tesseract(_crop(flat, band, scale=1.5), psm=6))
    best, best_len = None, 0
    for fd in catalogue.forms():
        t = _norm(fd.title)
        words = [w for w in t.split() if len(w) > 3]
        if words and sum(w in text for w in words) >= max(2, int(0.7 * len(words))) and len(t) > best_len:
            best, best_len = fd.id, len(t)
    return best

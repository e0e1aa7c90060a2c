"""PDF pages as grey images, through PDFium: one lock, one open/close, one render.

pypdfium2 is not thread-safe, even across documents: every use in the process goes
through :data:`PDFIUM_LOCK` (``open_pdf`` holds it while the document is open).
Used by the readers (digital PDFs, scans, the reference pages a scan is compared
with) and the scan bench.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import BadDocument

#: The one lock around PDFium in the process.
PDFIUM_LOCK = threading.RLock()


@contextmanager
def open_pdf(source: bytes | str | Path, max_pages: int | None = None) -> Iterator["pdfium.PdfDocument"]:  # noqa: F821
    """The document (bytes or a path), open while the lock is held; closed after.

    A PDF PDFium cannot open is a :class:`BadDocument` (encrypted, or unreadable), as is
    one with more than ``max_pages`` pages.
    """
    import pypdfium2 as pdfium

    with PDFIUM_LOCK:
        try:
            doc = pdfium.PdfDocument(str(source) if isinstance(source, Path) else source)
        except pdfium.PdfiumError as exc:
            if "password" in str(exc).lower():
                raise BadDocument("PDF chiffré : impossible de le lire sans mot de passe",
                                  rule="pdf_chiffre") from None
            raise BadDocument("PDF illisible ou corrompu", rule="pdf_corrompu") from None
        try:
            if max_pages is not None and len(doc) > max_pages:
                raise BadDocument(f"Trop de pages ({len(doc)} ; {max_pages} au plus)", rule="trop_de_pages")
            yield doc
        finally:
            doc.close()


def grey(page, dpi: float) -> np.ndarray:
    """One page rendered at ``dpi``: a 2-D contiguous uint8 array (255 = white)."""
    arr = page.render(scale=dpi / 72, grayscale=True).to_numpy()
    return np.ascontiguousarray(arr if arr.ndim == 2 else arr[:, :, 0], dtype=np.uint8)


def grey_pages(source: bytes | str | Path, dpi: float) -> list[np.ndarray]:
    """Every page of a PDF rendered grey at ``dpi``."""
    with open_pdf(source) as doc:
        return [grey(doc[i], dpi) for i in range(len(doc))]

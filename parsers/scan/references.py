"""What a scanned page is compared with: the blank form's pages and the issued document's.

- the **blank pages** (the shipped fillable PDFs, ``<templates_dir>/pdf/<form>.pdf``) tell
  a page without QR code by its content and, for a document not issued by the service,
  which ink is printed;
- the **printed pages** (the issued document's stored PDF) hold the pre-filled text too,
  so that it is not taken for handwriting, and the places of its ☐/☒ glyphs.

Pages are rendered at :data:`measure.WORK_DPI` and cached by file (and mtime).
"""

from __future__ import annotations

import json
import threading
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from forms_service.catalogue import FormDefinition, catalogue
from forms_service.errors import BadDocument
from forms_service.logging_setup import get_logger

from forms_service.pdfpages import grey, grey_pages, open_pdf

from ..pdf_text import box_glyphs
from ..store import Store
from . import decide, measure

ULID_LENGTH = 26                  # a document id

log = get_logger(__name__)

ISSUED_RENDER_DPI = 100.0    # the printed page is a mask (dilated 1 mm): half the resolution will do


#: characters of a document id OCR may misread (0/D, 5/S, 8/B…) and still name its document
OCR_ID_SLIPS = 3


class References:
    """The reference pages of one batch: the store's issued documents, the caller's templates.

    The issued document of each id is read from the store once per batch.
    """

    def __init__(self, store: Store):
        self.store = store
        self._issued: dict[str, dict | None] = {}
        self._converted: dict[str, tuple[str, float] | None] = {}
        #: (form, version) → the issued ids a misread id is matched among, read once per batch
        self._ids: dict[tuple[str, str | None], list[str]] = {}
        self._lock = threading.Lock()

    def issued_document(self, document_id: str | None) -> dict | None:
        if not document_id:
            return None
        with self._lock:
            if document_id in self._issued:
                return self._issued[document_id]
        doc = self.store.issued_document(document_id)   # DatabaseUnavailable goes up
        with self._lock:
            self._issued[document_id] = doc
        return doc

    def known_version(self, form_id: str, version: str | None) -> bool:
        """Whether ``version`` is a template version of the form this service knows: its
        layout stored, or the current one."""
        if not version:
            return False
        if self.store.stored_layout(form_id, version) is not None:
            return True
        if self.store.settings is None:
            return False
        from forms_service.render.pipeline import template_version
        try:
            return version == template_version(catalogue.get(form_id), self.store.settings)
        except Exception:   # an unknown form, templates unreadable: not known
            return False

    def footer_document_id(self, read_id: str, form_id: str, version: str | None) -> str | None:
        """The document a footer read by OCR names: the issued one it names or nearly names
        (:meth:`known_document_id`); else the id as read when it is a whole id and the
        version read is one this service knows (a document not issued here, read with its
        version's layout); else None: the page joins the document of its form in the upload
        that lacks it (``ScanBatch._join_orphans``). An id cut short (seed 37, stack 902:
        « 01KH6K »), or a whole id whose version names nothing either (seed 53, stack 902,
        page 2: « 01KJFBXWJ0BEKP0SMNSE425THA » for « 01KJFSXWJ069KP03MN3E425THA », and
        « 570ca0865321 » for « 570ca0956321 »: the footer's OCR slipped on both), is not the
        page's document id."""
        found = self.known_document_id(read_id, form_id, version)
        if found is None and len(read_id) == ULID_LENGTH and self.known_version(form_id, version):
            return read_id
        return found

    def known_document_id(self, read_id: str, form_id: str, version: str | None) -> str | None:
        """The issued document a document id read by OCR names: itself when issued, else the
        one issued id of the form and version that differs from it in at most
        :data:`OCR_ID_SLIPS` characters (seed 31, batch 17: « D1KGNJHK31HJCMJCS6GKX7MJG5 »
        read for « 01KGNJHK31HJCMJC56GKX7MJG5 », a page in no record), else None.

        Two ULIDs differ in about 15 of their 16 random characters, so a near miss names
        one document; the page is then checked against that document's printed page
        (:meth:`ScanBatch.match_pending`) before its boxes are read confidently.
        """
        if self.issued_document(read_id) is not None:
            return read_id
        found = self._near_id(read_id, form_id, version)
        if found is None and version:
            # the template version is read by OCR too (12 hex digits: b/6, 0/D…): the id
            # names the document whatever the version read (seed 31, batch 17, page 1: the
            # version read named no issued document of the id), the issued document then
            # says its own version and layout
            found = self._near_id(read_id, form_id, None)
        return found

    def _near_id(self, read_id: str, form_id: str, version: str | None) -> str | None:
        """The one issued id of the form (and version) within OCR_ID_SLIPS of ``read_id``."""
        key = (form_id, version)
        with self._lock:
            ids = self._ids.get(key)
        if ids is None:
            ids = self.store.issued_ids(form_id, version)   # DatabaseUnavailable goes up
            with self._lock:
                self._ids[key] = ids
        near = [(d, i) for i in ids if len(i) == len(read_id)
                for d in [sum(a != b for a, b in zip(i, read_id))] if d <= OCR_ID_SLIPS]
        near.sort()
        if not near or (len(near) > 1 and near[1][0] == near[0][0]):
            return None
        return near[0][1]

    def _issued_pdf(self, document_id: str | None) -> tuple[str, float] | None:
        """(path, mtime) of the issued document as a PDF: its stored PDF, or its stored DOCX
        converted once by the store's pool (a form printed from the DOCX download)."""
        doc = self.issued_document(document_id)
        if not doc or not doc.get("file_path"):
            return None
        path = Path(doc["file_path"])
        if doc.get("format") == "pdf":
            return str(path), path.stat().st_mtime
        if doc.get("format") != "docx" or self.store.pool is None:
            return None
        with self._lock:
            if document_id in self._converted:
                return self._converted[document_id]
        converted = None
        try:
            pdf = self.store.pool.convert(path.read_bytes())
            out = Path(self.store.settings.var_dir) / "cache" / "printed-docx" / f"{document_id}.pdf"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(pdf)
            converted = (str(out), out.stat().st_mtime)
        except Exception as exc:   # LibreOffice missing or failing: the blank form serves
            log.warning("issued_docx_not_converted", document_id=document_id, error=type(exc).__name__)
        with self._lock:
            self._converted[document_id] = converted
        return converted

    def printed_page(self, document_id: str | None, page: int) -> np.ndarray | None:
        """Page ``page`` of the issued document as printed (its stored PDF), or None."""
        pages = self.printed_pages(document_id)
        return pages[page - 1] if pages and 1 <= page <= len(pages) else None

    def printed_pages(self, document_id: str | None) -> tuple[np.ndarray, ...] | None:
        """The issued document's pages as printed, at WORK_DPI, or None."""
        try:
            found = self._issued_pdf(document_id)
            if found is None:
                return None
            return _issued_pages(*found)
        except (OSError, BadDocument) as exc:
            # the stored file moved or is damaged: the blank form serves instead (its
            # pre-filled text then reads as handwriting, sent to review, never dropped)
            log.warning("issued_pdf_unreadable", document_id=document_id, error=type(exc).__name__)
            return None

    def printed_glyphs(self, document_id: str | None) -> list[tuple[int, list[float]]] | None:
        """(page, bbox) of the ☐/☒ glyphs of the issued document's stored PDF, or None."""
        try:
            found = self._issued_pdf(document_id)
            if found is None:
                return None
            return list(_printed_glyphs(*found))
        except (OSError, BadDocument) as exc:   # moved or damaged: the layout's own places serve
            log.warning("issued_pdf_unreadable", document_id=document_id, error=type(exc).__name__)
            return None

    def reference_page(self, form_id: str, version: str | None, page: int) -> np.ndarray | None:
        """Page ``page`` of the blank form, if shipped for this template version."""
        ref_version, pages = _reference_pages(str(self.store.settings.templates_dir), form_id)
        if not pages or (version and ref_version and version != ref_version) or not (1 <= page <= len(pages)):
            return None
        return pages[page - 1]

    def blank_pages(self, form_id: str) -> tuple[np.ndarray, ...]:
        """Every page of the blank form (whatever its template version), at WORK_DPI."""
        return _reference_pages(str(self.store.settings.templates_dir), form_id)[1]

    def page_of(self, document_id: str | None, form_id: str, version: str | None,
                page: int) -> np.ndarray | None:
        """What was printed on a page: the issued document's own, else the blank form's."""
        ref = self.printed_page(document_id, page)
        return ref if ref is not None else self.reference_page(form_id, version, page)

    def match_reference(self, flat: np.ndarray) -> tuple[FormDefinition, int, int] | None:
        """The form page a rectified page looks like most (correlation at low resolution)."""
        small = cv2.resize(flat, None, fx=0.15, fy=0.15, interpolation=cv2.INTER_AREA).astype(np.float32)
        # ignore the margins (QR codes, footer): they differ between documents
        h, w = small.shape
        inner = small[int(h * 0.1):int(h * 0.9), int(w * 0.08):int(w * 0.92)]
        best, best_score = None, 0.0
        templates_dir = str(self.store.settings.templates_dir)
        for fd in catalogue.forms():
            if fd.kind != "form":
                continue
            _, pages = _reference_pages(templates_dir, fd.id)
            for i, ref in enumerate(pages):
                r = cv2.resize(ref, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
                r = r[int(h * 0.1):int(h * 0.9), int(w * 0.08):int(w * 0.92)]
                score = float(cv2.matchTemplate(inner, r, cv2.TM_CCOEFF_NORMED).max())
                if score > best_score:
                    best, best_score = (fd, i + 1, len(pages)), score
        return best if best_score >= decide.REFERENCE_LIKENESS else None


def likeness(flat: np.ndarray, ref: np.ndarray) -> float:
    """Normalised correlation of two pages at 50 dpi, margins (QR codes, footer) left out."""
    if flat is None or ref is None or flat.shape != ref.shape:
        return 0.0
    a = cv2.resize(flat, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA).astype(np.float32)
    b = cv2.resize(ref, (a.shape[1], a.shape[0]), interpolation=cv2.INTER_AREA).astype(np.float32)
    h, w = a.shape
    inner = (slice(int(h * 0.1), int(h * 0.9)), slice(int(w * 0.08), int(w * 0.92)))
    return float(cv2.matchTemplate(a[inner], b[inner], cv2.TM_CCOEFF_NORMED).max())


@lru_cache(maxsize=64)
def _reference_pages(templates_dir: str, form_id: str) -> tuple[str | None, tuple[np.ndarray, ...]]:
    """(template version, pages at WORK_DPI) of the blank fillable PDF of a form, if shipped."""
    base = Path(templates_dir) / "pdf"
    path = base / f"{form_id}.pdf"
    if not path.exists():
        return None, ()
    version = None
    try:
        manifest = json.loads((base / "manifest.json").read_text())
        entry = manifest.get(form_id) or manifest.get("forms", {}).get(form_id) or {}
        version = entry.get("template_version") if isinstance(entry, dict) else None
    except (OSError, ValueError):
        log.warning("blank_pdf_manifest_unreadable", form_id=form_id)
    pages = grey_pages(path, measure.WORK_DPI)
    return version, tuple(pages)


@lru_cache(maxsize=8)
def _issued_pages(file_path: str, mtime: float) -> tuple[np.ndarray, ...]:
    """The issued document's own PDF at WORK_DPI: what was printed, pre-filled text included.

    Rendered at ISSUED_RENDER_DPI and scaled up to the page's size at WORK_DPI (4× cheaper
    than rendering at WORK_DPI; the result is only compared after a dilation).
    """
    pages = []
    with open_pdf(file_path) as doc:
        for i in range(len(doc)):
            page = doc[i]
            w, h = page.get_size()
            arr = grey(page, ISSUED_RENDER_DPI)
            k = measure.WORK_DPI / 72
            size = (int(np.ceil(w * k - 1e-6)), int(np.ceil(h * k - 1e-6)))   # as pdfium, as rectify
            pages.append(cv2.resize(arr, size, interpolation=cv2.INTER_LINEAR))
    return tuple(pages)


@lru_cache(maxsize=8)
def _printed_glyphs(file_path: str, mtime: float) -> tuple:
    return tuple(box_glyphs(Path(file_path).read_bytes()))

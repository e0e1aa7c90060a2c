"""The scan pipeline: identify → align → measure → decide → reconcile.

Each stage is a module with plain inputs and outputs (arrays, boxes, numbers);
this module only runs them in order over the pages of a file, groups the
pages by document (several forms and beneficiaries may share one file, pages
in any order, turned), and builds one record per document.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from forms_service.catalogue import FormDefinition, catalogue
from forms_service.errors import BadDocument, FormsError, UnknownForm
from forms_service.render import geometry
from forms_service.render.qr import QrInfo

from .. import store
from ..acroform import field_of
from ..record import Reading, make_record
from . import align, decide, identify, measure, ocr
from .ingest import PageImage, images_of

BLANK_INK = 0.0015          # share of dark pixels under which a page is blank


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


def _ink_share(gray: np.ndarray) -> float:
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


def locate(img: PageImage) -> PageResult:
    """Identify and align one page image."""
    gray = img.gray
    hits = [h for h in identify.find_qr(gray) if h.info is not None]
    dpi = img.dpi or align.guess_dpi(gray)
    if not hits:
        if _ink_share(gray) < BLANK_INK:
            return PageResult(img, "blank", message="Page blanche")
        found = _rotation_from_marks(gray, dpi)
        if found is None:
            return PageResult(img, "unknown", message="Page non reconnue : ni QR code, ni repères")
        matrix, rot = found
        flat = measure.flatten_light(align.rectify(gray, matrix, measure.WORK_DPI))
        footer = ocr.read_footer(flat)   # the footer line says what the QR code says
        if footer is not None:
            info = QrInfo(footer["form"], footer["version"], footer["page"], footer["pages"],
                          footer["doc_id"])
            return PageResult(img, "form", info, catalogue.get(info.form), info.page, info.pages, rot,
                              "content", flat, "QR code illisible : page identifiée par son pied de page")
        match = match_reference(flat)
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
    if len(align._match_marks(marks, np.asarray(geometry.MARK_CENTERS, float), dpi, hit.rotation)) < 3:
        # marks and QR corners on one edge only: the far side of the page is extrapolated;
        # the printed content puts it right
        ref = printed_page(info.doc_id, info.page)
        if ref is None:
            ref = reference_page(fd.id, info.version, info.page)
        fix = align.refine_by_content(flat, ref) if ref is not None else None
        if fix is not None:
            r = align.render_px(measure.WORK_DPI)
            matrix = matrix @ np.linalg.inv(r) @ fix @ r
            flat = align.rectify(gray, matrix, measure.WORK_DPI)
    flat = measure.flatten_light(flat)
    return PageResult(img, "form", info, fd, info.page, info.pages, hit.rotation, "qr", flat)


# -- references: the blank pages, for pages without QR and for handwriting --------

_REF_LOCK = threading.Lock()


@lru_cache(maxsize=64)
def _reference_pages(form_id: str) -> tuple[str | None, tuple[np.ndarray, ...]]:
    """(template version, pages at WORK_DPI) of the blank fillable PDF of a form, if shipped."""
    from forms_service.config import Settings
    from ..pdf_text import PDFIUM_LOCK
    import json
    import pypdfium2 as pdfium
    base = Path(Settings.from_env().templates_dir) / "pdf"
    path = base / f"{form_id}.pdf"
    if not path.exists():
        return None, ()
    version = None
    try:
        manifest = json.loads((base / "manifest.json").read_text())
        entry = manifest.get(form_id) or manifest.get("forms", {}).get(form_id) or {}
        version = entry.get("template_version") if isinstance(entry, dict) else None
    except (OSError, ValueError):
        pass
    pages = []
    with PDFIUM_LOCK:
        doc = pdfium.PdfDocument(str(path))
        try:
            for i in range(len(doc)):
                arr = doc[i].render(scale=measure.WORK_DPI / 72, grayscale=True).to_numpy()
                pages.append(np.ascontiguousarray(arr if arr.ndim == 2 else arr[:, :, 0]))
        finally:
            doc.close()
    return version, tuple(pages)


ISSUED_RENDER_DPI = 100.0    # the printed page is a mask (dilated 1 mm): half the resolution will do


@lru_cache(maxsize=8)
def _issued_pages(file_path: str, mtime: float) -> tuple[np.ndarray, ...]:
    """The issued document's own PDF at WORK_DPI: what was printed, pre-filled text included.

    Rendered at ISSUED_RENDER_DPI and scaled up to the page's size at WORK_DPI (4× cheaper
    than rendering at WORK_DPI; the result is only compared after a dilation).
    """
    from ..pdf_text import PDFIUM_LOCK
    import pypdfium2 as pdfium
    pages = []
    with PDFIUM_LOCK:
        doc = pdfium.PdfDocument(file_path)
        try:
            for i in range(len(doc)):
                page = doc[i]
                w, h = page.get_size()
                arr = page.render(scale=ISSUED_RENDER_DPI / 72, grayscale=True).to_numpy()
                arr = np.ascontiguousarray(arr if arr.ndim == 2 else arr[:, :, 0])
                k = measure.WORK_DPI / 72
                size = (int(np.ceil(w * k - 1e-6)), int(np.ceil(h * k - 1e-6)))   # as pdfium, as rectify
                pages.append(cv2.resize(arr, size, interpolation=cv2.INTER_LINEAR))
        finally:
            doc.close()
    return tuple(pages)


def printed_page(document_id: str | None, page: int) -> np.ndarray | None:
    """Page ``page`` of the issued document as printed (its stored PDF), or None."""
    doc = store.issued_document(document_id)
    if not doc or doc.get("format") != "pdf" or not doc.get("file_path"):
        return None
    path = Path(doc["file_path"])
    try:
        pages = _issued_pages(str(path), path.stat().st_mtime)
    except Exception:   # file moved or unreadable: fall back on the blank form
        return None
    return pages[page - 1] if 1 <= page <= len(pages) else None


def reference_page(form_id: str, version: str | None, page: int) -> np.ndarray | None:
    ref_version, pages = _reference_pages(form_id)
    if not pages or (version and ref_version and version != ref_version) or not (1 <= page <= len(pages)):
        return None
    return pages[page - 1]


def match_reference(flat: np.ndarray) -> tuple[FormDefinition, int, int] | None:
    """The form page a rectified page looks like most (correlation at low resolution)."""
    small = cv2.resize(flat, None, fx=0.15, fy=0.15, interpolation=cv2.INTER_AREA).astype(np.float32)
    # ignore the margins (QR codes, footer): they differ between documents
    h, w = small.shape
    inner = small[int(h * 0.1):int(h * 0.9), int(w * 0.08):int(w * 0.92)]
    best, best_score = None, 0.0
    for fd in catalogue.forms():
        if fd.kind != "form":
            continue
        _, pages = _reference_pages(fd.id)
        for i, ref in enumerate(pages):
            r = cv2.resize(ref, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
            r = r[int(h * 0.1):int(h * 0.9), int(w * 0.08):int(w * 0.92)]
            score = float(cv2.matchTemplate(inner, r, cv2.TM_CCOEFF_NORMED).max())
            if score > best_score:
                best, best_score = (fd, i + 1, len(pages)), score
    return best if best_score >= 0.55 else None


# -- reading one document's pages ------------------------------------------------------

@dataclass
class DocPages:
    form: FormDefinition
    version: str | None
    document_id: str | None
    pages: dict[int, PageResult] = field(default_factory=dict)
    page_count: int | None = None


def _crop_path(doc_key: str, path: str, page: int) -> Path | None:
    try:
        from forms_service.config import Settings
        base = Path(Settings.from_env().storage_dir) / "crops" / doc_key
        base.mkdir(parents=True, exist_ok=True)
        return base / f"p{page}-{path}.png"
    except OSError:
        return None


def _save_crop(flat: np.ndarray, bbox_pt: list[float], doc_key: str, path: str, page: int) -> str | None:
    x0, top, x1, bottom = (int(round(v * measure.K)) for v in bbox_pt)
    pad = int(1.5 * measure.PX_PER_MM)
    crop = flat[max(0, top - pad):bottom + pad, max(0, x0 - pad):x1 + pad]
    target = _crop_path(doc_key, path, page)
    if target is None or crop.size == 0:
        return None
    ok, buf = cv2.imencode(".png", crop)
    if ok:
        target.write_bytes(buf.tobytes())
        return str(target)
    return None


def _layout(doc: DocPages) -> dict | None:
    data_dump = None
    lists = [f for f in doc.form.fields if f.type == "list"]
    if lists and doc.page_count and not store.issued_document(doc.document_id):
        data_dump = _rows_for_pages(doc.form, doc.page_count)
    layout = store.layout_for(doc.form, doc.version, doc.document_id, data_dump)
    glyphs = printed_glyphs(doc.document_id)
    if layout and glyphs:   # where the issued PDF printed its boxes (data can move them)
        layout = store.fit_layout(layout, glyphs)
    return layout


def printed_glyphs(document_id: str | None) -> list[tuple[int, list[float]]] | None:
    """(page, bbox) of the ☐/☒ glyphs of the issued document's stored PDF, or None."""
    doc = store.issued_document(document_id)
    if not doc or doc.get("format") != "pdf" or not doc.get("file_path"):
        return None
    path = Path(doc["file_path"])
    try:
        return list(_printed_glyphs(str(path), path.stat().st_mtime))
    except Exception:
        return None


@lru_cache(maxsize=8)
def _printed_glyphs(file_path: str, mtime: float) -> tuple:
    from .. import pdf_text
    return tuple(pdf_text.box_glyphs(Path(file_path).read_bytes()))


def _rows_for_pages(fd: FormDefinition, pages: int) -> dict | None:
    """Without the issued document, the row counts that make the printed page count."""
    from forms_service.config import Settings
    from forms_service.render import layout as layout_mod
    for extra in range(0, 12):
        f = next(f for f in fd.fields if f.type == "list")
        rows = (f.rows_per_page or 8) * (1 + extra)
        dump = fd.model.model_validate({f.path: [{}] * rows}).model_dump(mode="python")
        try:
            lay = layout_mod.layout_for(fd, settings=Settings.from_env(), pool=store._pool(Settings.from_env()),
                                        data_dump=dump)
        except Exception:
            return None
        if len(lay.get("pages", [])) >= pages:
            return dump
    return None


def read_document(doc: DocPages, name: str) -> dict:
    fd = doc.form
    layout = _layout(doc)
    readings: dict[str, Reading] = {}
    doc_key = doc.document_id or hashlib.sha1(f"{name}{sorted(doc.pages)}".encode()).hexdigest()[:16]
    if layout is None:
        raise BadDocument(f"Mise en page inconnue pour {fd.id} (modèle {doc.version})",
                          rule="mise_en_page_inconnue")
    boxes_by_path: dict[str, list[dict]] = {}
    for b in layout["boxes"]:
        boxes_by_path.setdefault(b["path"], []).append(b)
    for path, boxes in boxes_by_path.items():
        f = field_of(fd, path)
        if f is None:
            continue
        # a group's boxes may run over two pages (a long list of actions): each box is
        # read on its own page
        missing = sorted({b["page"] for b in boxes if b["page"] not in doc.pages})
        if missing:
            readings[path] = Reading(None, 0.0, True, [],
                                     "Page(s) manquante(s) : " + ", ".join(map(str, missing)))
            continue
        states, ev = {}, []
        for b in boxes:
            page = b["page"]
            pr = doc.pages[page]
            ink = measure.measure_box(pr.flat, b["bbox"])
            st = decide.box_state(ink)
            key = True if b["value"] is True else b["value"]
            states[key] = st
            e = {"page": page, "bbox": b["bbox"], "state": st.state}
            if st.state in ("uncertain", "corrected"):
                crop = _save_crop(pr.flat, b["bbox"], doc_key, f"{path}.{b['value']}", page)
                if crop:
                    e["crop"] = crop
            ev.append(e)
        codes = [True] if f.type == "bool" else [b["value"] for b in boxes]
        d = decide.decide_group(f.type, states, codes)
        by_content = [doc.pages[p] for p in sorted({b["page"] for b in boxes})
                      if doc.pages[p].identified_by == "content" and not doc.pages[p].verified]
        if by_content:
            d.needs_review, d.reason = True, d.reason or by_content[0].message
        readings[path] = Reading(d.value, d.confidence, d.needs_review,
                                 [e for e in ev if e["state"] != "empty"] or ev[:1], d.reason)
    masks: dict[int, np.ndarray | None] = {}
    for z in layout.get("zones", []):
        pr = doc.pages.get(z["page"])
        if pr is None:
            continue
        if z["page"] not in masks:
            # ink the printed page does not have: the issued document itself (pre-filled
            # text is not handwriting), else the blank form; once per page
            ref = printed_page(doc.document_id, z["page"])
            if ref is None:
                ref = reference_page(fd.id, doc.version, z["page"])
            masks[z["page"]] = measure.printed_mask(ref) if ref is not None and ref.shape == pr.flat.shape \
                else None
        ink = measure.measure_zone(pr.flat, z["bbox"], None, printed=masks[z["page"]])
        ev = {"page": z["page"], "bbox": z["bbox"]}
        if z["kind"] == "signature":
            d = decide.signature_state(ink)
            if d.needs_review:
                crop = _save_crop(pr.flat, z["bbox"], doc_key, z["path"], z["page"])
                if crop:
                    ev["crop"] = crop
            readings[f"{z['path']}.signee"] = Reading(d.value, d.confidence, d.needs_review, [ev], d.reason)
        else:
            written = ink.ink > 0.002 and ink.width_mm > 3
            zf = field_of(fd, z["path"])
            if written:   # a crop for the person who types it in
                crop = _save_crop(pr.flat, z["bbox"], doc_key, z["path"], z["page"])
                if crop:
                    ev["crop"] = crop
                readings[z["path"]] = Reading(None, 0.0, True, [ev],
                                              "Texte manuscrit : à saisir d'après l'image")
            elif zf is not None and zf.type in ("choice", "multi"):
                pass   # a code written in a cell (not a box): what was printed, by reconciliation
            else:
                readings[z["path"]] = Reading(None, 1.0, False, [ev])
    from ..parse import reconcile
    readings = reconcile(fd, readings, doc.document_id, "scan")
    # handwriting over a pre-filled value still needs a look; a pre-filled value alone does not
    pages = [{"number": n, "file": pr.image.file, "file_page": pr.image.file_page, "rotation": pr.rotation,
              "identified_by": pr.identified_by} for n, pr in sorted(doc.pages.items())]
    return make_record(fd, source="scan", readings=readings, pages=pages, document_id=doc.document_id,
                       template_version=doc.version)


class ScanBatch:
    """The scanned pages of one or more files, grouped by document across the files.

    A person uploads one JPEG per page, or a multi-page PDF, or both: pages are matched
    to their document by their QR code wherever they are, and one record is made per
    document. A file whose reading fails adds none of its pages (it gets an error entry).
    Page images are dropped once located; the rectified page (~4 MB at 200 dpi) is kept
    until its document is read.
    """

    def __init__(self) -> None:
        self.docs: dict[tuple, DocPages] = {}
        self.order: list[tuple] = []
        self.extra: list[dict] = []
        self.pending: list[PageResult] = []
        self.pages = 0

    def add_file(self, name: str, data: bytes, kind: str, *, max_pages: int = 200) -> None:
        """Locate every page of a file (raises BadDocument, adding nothing, when it cannot be read)."""
        located = []
        for img in images_of(name, data, kind, max_pages):
            pr = locate(img)
            keep = pr.status == "unknown" and pr.info is None   # no QR: matched later, on its image
            pr.image = PageImage(img.file, img.file_page, img.gray if keep else _NO_IMAGE, img.dpi)
            located.append(pr)
        if not located:
            raise BadDocument("Aucune page lisible", rule="aucune_page")
        for pr in located:
            self.add_page(pr)

    def add_page(self, pr: PageResult) -> None:
        name, file_page = pr.image.file, pr.image.file_page
        self.pages += 1
        if pr.status == "unknown" and pr.info is None and pr.image.gray.size:
            self.pending.append(pr)
            return
        if pr.status != "form":
            self.extra.append({"file": name, "file_page": file_page, "page_status": pr.status,
                               "message": pr.message})
            return
        info = pr.info
        if info is not None:
            key = (pr.form.id, info.version, info.doc_id)
            version, doc_id = info.version, info.doc_id
        else:   # identified by content: joins the previous document of that form
            prev = next((k for k in reversed(self.order) if k[0] == pr.form.id), None)
            key = prev or (pr.form.id, None, None)
            version, doc_id = key[1], key[2]
        doc = self.docs.get(key)
        if doc is None:
            doc = self.docs[key] = DocPages(pr.form, version, doc_id, page_count=pr.pages)
            self.order.append(key)
        if pr.page in doc.pages:   # the same page twice (two scans of one sheet)
            self.extra.append({"file": name, "file_page": file_page, "page_status": "duplicate",
                               "message": f"Page {pr.page} déjà lue pour ce document"})
            return
        doc.pages[pr.page] = pr

    def match_pending(self) -> None:
        """Pages without a readable QR code, matched to the pages the batch's documents miss.

        A page whose QR codes and registration marks were cut off by the scanner (an
        enlarged or shifted sheet) or smudged is registered (ORB features) on each page
        that a document of the same upload lacks — the issued document's own page — and
        taken by the one it resembles clearly best. A page identified by its content
        alone (marks, no QR) is checked against its document's issued page the same way.
        Such pages are read like the others, without review.
        """
        for pr in self.pending:
            found = self._match(pr)
            if found is None:
                self.extra.append({"file": pr.image.file, "file_page": pr.image.file_page,
                                   "page_status": "unknown", "message": pr.message})
                continue
            key, page, matrix, flat = found
            doc = self.docs[key]
            # clockwise quarter turn of the page in the image: where the page's x axis points
            rot = int(round(np.degrees(np.arctan2(matrix[1, 0], matrix[0, 0])) / 90.0)) % 4 * 90
            doc.pages[page] = PageResult(
                PageImage(pr.image.file, pr.image.file_page, _NO_IMAGE, pr.image.dpi), "form", None, doc.form,
                page, doc.page_count, rot, "content", flat,
                "QR code illisible : page identifiée par son contenu", verified=True)
        self.pending = []
        for doc in self.docs.values():
            for n, pr in doc.pages.items():
                if pr.identified_by == "content" and not pr.verified and doc.document_id:
                    ref = printed_page(doc.document_id, n)
                    if ref is not None and _likeness(pr.flat, ref) >= MATCH_LIKENESS:
                        pr.verified = True

    def _match(self, pr: PageResult):
        candidates = [(k, n) for k in self.order for n in range(1, (self.docs[k].page_count or 0) + 1)
                      if n not in self.docs[k].pages and self.docs[k].document_id]
        scored = []
        for key, n in candidates[:MAX_CANDIDATES]:
            ref = printed_page(self.docs[key].document_id, n)
            if ref is None:
                continue
            try:
                matrix = align.fallback_feature_align(pr.image.gray, ref, reference_dpi=measure.WORK_DPI)
            except align.AlignmentFailed:
                continue
            flat = align.rectify(pr.image.gray, matrix, measure.WORK_DPI)
            scored.append((_likeness(flat, ref), key, n, matrix, flat, ref))
        if not scored:
            return None
        scored.sort(key=lambda t: -t[0])
        best = scored[0]
        if best[0] < MATCH_LIKENESS or (len(scored) > 1 and best[0] - scored[1][0] < MATCH_MARGIN):
            return None
        _, key, n, matrix, flat, ref = best
        fix = align.refine_by_content(flat, ref)
        if fix is not None:
            r = align.render_px(measure.WORK_DPI)
            matrix = matrix @ np.linalg.inv(r) @ fix @ r
            flat = align.rectify(pr.image.gray, matrix, measure.WORK_DPI)
        return key, n, matrix, measure.flatten_light(flat)

    def results(self) -> list[dict]:
        """One record per document (or an error entry naming its first file), then the
        pages that are no form (blank, unknown, duplicate)."""
        self.match_pending()
        out = []
        for k in self.order:
            doc = self.docs[k]
            first = min(doc.pages.values(), key=lambda pr: (pr.image.file, pr.image.file_page)).image.file
            try:
                out.append(read_document(doc, first))
            except FormsError as exc:
                out.append({"file": first, "error": {"rule": exc.problems[0].rule, "message": exc.message}})
            except Exception as exc:  # a reader's bug: this document only
                out.append({"file": first, "error": {"rule": "document_illisible",
                                                     "message": f"Document illisible ({exc.__class__.__name__})"}})
        return out + self.extra


_NO_IMAGE = np.zeros((0, 0), np.uint8)
MATCH_LIKENESS = 0.5        # correlation (50 dpi, page interior) of a page with its issued page
MATCH_MARGIN = 0.08         # ahead of the next candidate
MAX_CANDIDATES = 12         # pages tried for one page without QR (~0.1 s each)


def _likeness(flat: np.ndarray, ref: np.ndarray) -> float:
    """Normalised correlation of two pages at 50 dpi, margins (QR codes, footer) left out."""
    if flat is None or ref is None or flat.shape != ref.shape:
        return 0.0
    a = cv2.resize(flat, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA).astype(np.float32)
    b = cv2.resize(ref, (a.shape[1], a.shape[0]), interpolation=cv2.INTER_AREA).astype(np.float32)
    h, w = a.shape
    a, b = a[int(h * 0.1):int(h * 0.9), int(w * 0.08):int(w * 0.92)], b[int(h * 0.1):int(h * 0.9), int(w * 0.08):int(w * 0.92)]
    return float(cv2.matchTemplate(a, b, cv2.TM_CCOEFF_NORMED).max())


def parse_scan(name: str, data: bytes, kind: str, *, max_pages: int = 200) -> list[dict]:
    batch = ScanBatch()
    batch.add_file(name, data, kind, max_pages=max_pages)
    return batch.results()

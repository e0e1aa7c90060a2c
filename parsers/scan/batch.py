"""Scanned pages grouped by document across the files of one upload.

A person uploads one JPEG per page, or a multi-page PDF, or both: pages are matched
to their document by their QR code wherever they are, and one record is made per
document (:func:`parsers.scan.pipeline.read_document`). Pages whose QR codes were lost
are matched to the pages their batch's documents lack, by their likeness to the
issued page.

A stack of copies of one issued document (photocopies of one printed form, each filled
in) carries the same QR codes on every copy: a page whose number its document already
holds starts the next copy, one record per copy in page order, each flagged as a copy
(``"copies": {"number", "of"}``). Only the very same page image is a duplicate.
"""

from __future__ import annotations

import hashlib

import cv2
import numpy as np

from forms_service.catalogue import catalogue
from forms_service.errors import BadDocument, DatabaseUnavailable, FormsError

from ..failures import error_of, log_failure
from ..store import Store
from . import align, decide, measure
from .ingest import PageImage, images_of
from .locate import PageResult, content_match, locate, registered, registered_in_parts, unplaced_parts
from .pipeline import DocPages, read_document
from .references import References, likeness

MAX_CANDIDATES = 12         # pages tried for one page without QR (~0.1 s each)
_NO_IMAGE = np.zeros((0, 0), np.uint8)


class ScanBatch:
    """The scanned pages of one or more files, grouped by document across the files.

    A file whose reading fails adds none of its pages (it gets an error entry). Page
    images are dropped once located; the rectified page (~4 MB at 200 dpi) is kept
    until its document is read.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.refs = References(store)
        self.docs: dict[tuple, DocPages] = {}
        self.order: list[tuple] = []
        self.extra: list[dict] = []
        self.pending: list[PageResult] = []
        self.pages = 0
        #: file name → {file page: SHA-256 of the page's grey pixels}, for the scans whose
        #: pages are images of their own (image files, a scanner's JPEG-per-page PDF)
        self.page_digests: dict[str, dict[int, str]] = {}

    def files(self) -> list[str]:
        """The names of the files whose pages the batch holds."""
        names = {pr.image.file for d in self.docs.values() for pr in d.pages.values()}
        names |= {pr.image.file for pr in self.pending} | {e["file"] for e in self.extra}
        return sorted(names)

    def add_file(self, name: str, data: bytes, kind: str, *, max_pages: int = 200) -> None:
        """Locate every page of a file (raises BadDocument, adding nothing, when it cannot be read)."""
        located = []
        digests: dict[int, str] = {}   # the pages that are pictures of their own (PageImage.own_image)
        for img in images_of(name, data, kind, max_pages):
            pr = locate(img, self.refs)
            pr.digest = hashlib.sha256(np.ascontiguousarray(img.gray)).hexdigest()
            if img.own_image:
                digests[img.file_page] = pr.digest
            keep = pr.status == "unknown" and pr.info is None   # no QR: matched later, on its image
            pr.image = PageImage(img.file, img.file_page, img.gray if keep else _NO_IMAGE, img.dpi)
            located.append(pr)
        if not located:
            raise BadDocument("Aucune page lisible", rule="aucune_page")
        if digests:
            self.page_digests[name] = digests
        for pr in located:
            self.add_page(pr)

    def add_page(self, pr: PageResult, *, settled: bool = False) -> None:
        name, file_page = pr.image.file, pr.image.file_page
        if not settled:
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
            version, doc_id = self._issued_version(info), info.doc_id
            key = (pr.form.id, version, doc_id, 0)
        else:   # identified by content: joins the previous document of that form
            prev = next((k for k in reversed(self.order) if k[0] == pr.form.id), None)
            key = prev or (pr.form.id, None, None, 0)
            version, doc_id = key[1], key[2]
        copies = [k for k in self.order if k[:3] == key[:3]]
        if any(pr.digest is not None and self.docs[k].pages.get(pr.page) is not None
               and self.docs[k].pages[pr.page].digest == pr.digest for k in copies):
            self.extra.append({"file": name, "file_page": file_page, "page_status": "duplicate",
                               "message": f"Page {pr.page} déjà lue pour ce document (image identique)"})
            return
        # the copy most recently started that lacks this page (copies come one after the other)
        target = next((k for k in reversed(copies) if pr.page not in self.docs[k].pages), None)
        if target is None and copies and pr.identified_by == "content" and pr.flat is not None and not settled:
            # a page number read from the content (a fax's footer, a look-alike page) that its
            # document holds already: first matched to the pages the upload lacks (seed 31,
            # batch 30: a CERP's page 5 taken for page 4 started a copy of its own)
            pr.settle = True
            self.pending.append(pr)
            return
        if target is None and copies and doc_id is None:   # no document id: nothing says it is another copy
            self.extra.append({"file": name, "file_page": file_page, "page_status": "duplicate",
                               "message": f"Page {pr.page} déjà lue pour ce document"})
            return
        if target is None:   # a new copy of the issued document (or its first)
            target = key[:3] + (len(copies),)
            self.docs[target] = DocPages(pr.form, version, doc_id, page_count=pr.pages, copy=len(copies))
            self.order.append(target)
        self.docs[target].pages[pr.page] = pr

    def _issued_version(self, info) -> str:
        """The template version of the document ``info`` names: the issued document's own.
        A footer read by OCR can slip on the version's 12 hex digits (« 570ca0865321 » for
        « 570ca0956321 », seed 53, stack 902) with the document id read right: the page
        would start a document of its own, of a version with no layout."""
        issued = self.refs.issued_document(info.doc_id)
        if issued and issued.get("form") == info.form and issued.get("template_version"):
            return issued["template_version"]
        return info.version

    def match_pending(self) -> None:
        """Pages without a readable QR code, matched to the pages the batch's documents miss.

        A page whose QR codes and registration marks were cut off by the scanner (an
        enlarged or shifted sheet) or smudged is registered (ORB features) on each page
        that a document of the same upload lacks — the issued document's own page — and
        taken by the one it resembles clearly best. A page identified by its content
        alone (marks, no QR) is checked against its document's issued page the same way.
        Such pages are read like the others, without review.
        """
        self._join_orphans()
        for pr in self.pending:
            found = self._match(pr)
            if found is None and pr.settle:   # no page of the upload it is: as identified
                self.add_page(pr, settled=True)
                continue
            if found is None:
                guess = self._match_blank(pr)
                if isinstance(guess, PageResult):
                    self._add_unissued(guess)
                    continue
                message = pr.message or "Page non reconnue"
                if guess:
                    message += " ; au plus près : " + ", ".join(guess)
                self.extra.append({"file": pr.image.file, "file_page": pr.image.file_page,
                                   "page_status": "unknown", "message": message})
                continue
            key, page, matrix, flat, unplaced = found
            doc = self.docs[key]
            # clockwise quarter turn of the page in the image: where the page's x axis points
            rot = pr.rotation if matrix is None else \
                int(round(np.degrees(np.arctan2(matrix[1, 0], matrix[0, 0])) / 90.0)) % 4 * 90
            doc.pages[page] = PageResult(
                PageImage(pr.image.file, pr.image.file_page, _NO_IMAGE, pr.image.dpi), "form", None, doc.form,
                page, doc.page_count, rot, "content", flat,
                "QR code illisible : page identifiée par son contenu", verified=True, unplaced=unplaced)
        self.pending = []
        for doc in self.docs.values():
            for n, pr in doc.pages.items():
                if pr.identified_by != "content" or pr.verified:
                    continue
                if doc.document_id:
                    ref = self.refs.printed_page(doc.document_id, n)
                    if ref is not None and likeness(pr.flat, ref) >= decide.MATCH_LIKENESS:
                        pr.verified = True
                else:   # no document id (a fax whose QR codes and footer are lost): its blank page
                    pr.verified = self._clearly_blank_page(pr.flat, doc.form.id, n)

    def _join_orphans(self) -> None:
        """Pages identified by their content alone (no QR code: a fax's first page), that
        came before any page of their document, join the document of the same form in the
        upload that lacks exactly those pages (checked against its issued pages below)."""
        for key in [k for k in self.order if k[2] is None]:
            orphan = self.docs[key]
            home = next((k for k in self.order if k[0] == key[0] and k[2] is not None
                         and not set(orphan.pages) & set(self.docs[k].pages)
                         and all(n <= (self.docs[k].page_count or 0) for n in orphan.pages)), None)
            if home is not None:
                self.docs[home].pages.update(orphan.pages)
                del self.docs[key]
                self.order.remove(key)

    def _match(self, pr: PageResult):
        candidates = [(k, n) for k in self.order for n in range(1, (self.docs[k].page_count or 0) + 1)
                      if n not in self.docs[k].pages and self.docs[k].document_id]
        scored = []
        for key, n in candidates[:MAX_CANDIDATES]:
            ref = self.refs.printed_page(self.docs[key].document_id, n)
            if ref is None:
                continue
            if pr.flat is not None and pr.flat.shape == ref.shape:
                # aligned by its marks already (a fax whose QR codes are lost): compared as is
                score = likeness(pr.flat, ref)
                if score >= decide.MATCH_LIKENESS:
                    scored.append((score, key, n, None, pr.flat, ref, None))
                    continue
            if not pr.image.gray.size:   # its image was let go (located by its marks): as is only
                continue
            if self._from_docx(key):
                # printed from the DOCX download: its lines may break elsewhere (another word
                # processor), so it is aligned in parts as a page identified in its header is
                # (seed 47 docx-reflow, batch 3: a CERS page 1 whose QR code was lost, 0.41
                # as a whole, 0.65 in parts, was read nowhere)
                found = registered_in_parts(pr.image.gray, ref)
            else:   # refined on the content when somewhat alike; aligned as a whole
                whole = registered(pr.image.gray, ref)
                found = None if whole is None else (*whole, None)
            if found is None:
                continue
            scored.append((found[0], key, n, found[1], found[2], ref, found[3]))
        if not scored:
            return None
        scored.sort(key=lambda t: -t[0])
        best = scored[0]
        if best[0] < decide.MATCH_LIKENESS or (len(scored) > 1 and best[0] - scored[1][0] < decide.MATCH_MARGIN):
            return None
        _, key, n, matrix, flat, ref, parts = best
        if matrix is None:   # the marks' alignment, kept
            return key, n, None, flat, ()
        if parts is not None:   # aligned in parts: what lies in a part found nowhere goes to review
            return key, n, matrix, measure.flatten_light(flat), unplaced_parts(parts)
        fix = align.refine_by_content(flat, ref)
        if fix is not None:
            r = align.render_px(measure.WORK_DPI)
            matrix = matrix @ np.linalg.inv(r) @ fix @ r
            flat = align.rectify(pr.image.gray, matrix, measure.WORK_DPI)
        return key, n, matrix, measure.flatten_light(flat), ()

    def _from_docx(self, key: tuple) -> bool:
        """Whether the batch's document ``key`` was issued as a DOCX (printed by whoever opened it)."""
        issued = self.refs.issued_document(self.docs[key].document_id)
        return bool(issued) and issued.get("format") == "docx"

    def _clearly_blank_page(self, flat: np.ndarray | None, form_id: str, page: int) -> bool:
        """Whether a page identified by its content alone, with no document id to check it
        against (seed 43, batch 3: a faxed Annexe 3 whose QR codes and footer were lost, taken
        for its form by a rough correlation and never checked: 52 of its 60 boxes to review),
        is that page of the blank form as clearly as :meth:`_match_blank` asks of a page it
        identifies: alike enough, and clearly more than any other page of any form."""
        if flat is None:
            return False
        scored = sorted(((likeness(flat, ref), (fd.id, n)) for fd in catalogue.forms() if fd.kind == "form"
                         for n, ref in enumerate(self.refs.blank_pages(fd.id), start=1) if ref.shape == flat.shape),
                        key=lambda t: -t[0])
        return bool(scored) and scored[0][1] == (form_id, page) and scored[0][0] >= decide.MATCH_LIKENESS and \
            (len(scored) == 1 or scored[0][0] - scored[1][0] >= decide.MATCH_MARGIN)

    def _add_unissued(self, pr: PageResult) -> None:
        """A page identified among the blank forms: a document of its form without id (the
        first such one that lacks its page), never joined to an issued document it was not
        matched with."""
        copies = [k for k in self.order if k[0] == pr.form.id and k[2] is None]
        target = next((k for k in copies if pr.page not in self.docs[k].pages), None)
        if target is None:
            target = (pr.form.id, None, None, len(copies))
            self.docs[target] = DocPages(pr.form, None, None, page_count=pr.pages, copy=len(copies))
            self.order.append(target)
        self.docs[target].pages[pr.page] = pr

    def _match_blank(self, pr: PageResult) -> PageResult | list[str]:
        """A page no document of the upload lacks (a one-page form whose QR codes and marks
        were lost, a fax): identified by its content among the blank pages of every form
        (:func:`locate.content_match`), aligned on the printed content, read like a page
        identified by its footer (no document id: what was printed reads from the blank
        form). Else the best guesses, French, for the person who looks at it."""
        candidates = [((fd, n, len(pages)), ref) for fd in catalogue.forms() if fd.kind == "form"
                      for pages in [self.refs.blank_pages(fd.id)] for n, ref in enumerate(pages, start=1)]
        if not candidates:
            return []
        if pr.flat is not None:   # aligned by its marks: compared as is, cheaply
            scored = sorted(((likeness(pr.flat, ref), key) for key, ref in candidates if ref.shape == pr.flat.shape),
                            key=lambda t: -t[0])
            if scored and scored[0][0] >= decide.MATCH_LIKENESS and \
                    (len(scored) == 1 or scored[0][0] - scored[1][0] >= decide.MATCH_MARGIN):
                (fd, n, pages) = scored[0][1]
                return PageResult(PageImage(pr.image.file, pr.image.file_page, _NO_IMAGE, pr.image.dpi), "form",
                                  None, fd, n, pages, pr.rotation, "content", pr.flat,
                                  "QR code illisible : page identifiée par son contenu", verified=True,
                                  digest=pr.digest)
        found = content_match(pr.image.gray, candidates, keep_scores=True)
        if found is not None and found[0] is not None:
            (fd, n, pages), matrix, flat = found[0]
            rot = int(round(np.degrees(np.arctan2(matrix[1, 0], matrix[0, 0])) / 90.0)) % 4 * 90
            return PageResult(PageImage(pr.image.file, pr.image.file_page, _NO_IMAGE, pr.image.dpi), "form",
                              None, fd, n, pages, rot, "content", flat,
                              "QR code illisible : page identifiée par son contenu", verified=True,
                              digest=pr.digest)
        scores = found[1] or _rough_scores(pr.image.gray, candidates)
        return [f"{fd.short_title}, page {n} (ressemblance {format(score, '.2f').replace('.', ',')})"
                for score, (fd, n, _) in scores[:2]]

    def results(self) -> list[dict]:
        """One record per document (or an error entry naming its first file), then the
        pages that are no form (blank, unknown, duplicate).

        A database that cannot be read fails the whole batch (DatabaseUnavailable):
        no document of it can be reconciled.
        """
        self.match_pending()
        out = []
        copies = {}
        for k in self.order:
            copies[k[:3]] = copies.get(k[:3], 0) + 1
        for k in self.order:
            doc = self.docs[k]
            first = min(doc.pages.values(), key=lambda pr: (pr.image.file, pr.image.file_page)).image.file
            try:
                record = read_document(doc, first, self.store, self.refs)
                if copies[k[:3]] > 1 and k[2] is not None:   # one of several copies of one issued document
                    record["copies"] = {"number": k[3] + 1, "of": copies[k[:3]]}
                out.append(record)
            except DatabaseUnavailable:
                raise
            except Exception as exc:  # this document only; a reader's bug is logged
                if not isinstance(exc, FormsError):
                    log_failure("scan_document_failed", exc, form_id=doc.form.id, document_id=doc.document_id)
                out.append({"file": first, "error": error_of(exc)})
        return out + self.extra


def _rough_scores(gray: np.ndarray, candidates: list[tuple[object, np.ndarray]]) -> list[tuple[float, object]]:
    """[(likeness, key)], best first, of a page nothing registered on any candidate: the
    whole image against each page at low resolution, unaligned (a guess for a person)."""
    scored = []
    for key, ref in candidates:
        h, w = int(ref.shape[0] * 0.15), int(ref.shape[1] * 0.15)
        a = cv2.resize(gray, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
        b = cv2.resize(ref, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
        scored.append((float(cv2.matchTemplate(a, b, cv2.TM_CCOEFF_NORMED).max()), key))
    return sorted(scored, key=lambda t: -t[0])

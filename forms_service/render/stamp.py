"""Stamp every page of a rendered PDF with what makes it identify itself once scanned.

Each page gets, in its margins (positions in :mod:`forms_service.render.geometry`):
the four registration marks, the page's QR code twice (vector paths, one Form
XObject drawn at both corners) and the footer line
``fiche-liaison · modèle 0123456789ab · page 2/3 · doc 01J…``.

The page's own content is wrapped in ``q … Q`` and left untouched, so its text stays
extractable and its graphics state cannot leak into the overlay; annotations and
AcroForm fields are not touched. The overlay is tagged ``/Artifact`` (pagination) so
that assistive technologies skip it in tagged PDFs. The marks are one Form XObject
shared by all pages of the document; their content stream is built once per process.

Cost (``python -m pytest tests/test_stamp.py -k speed -s``; 2 cores, Python 3.11, pikepdf
10.18, medians): ~1.1–1.6 ms per page on a 20-page PDF, ~2.4 ms per page on a 3-page one
(open and save included). The QR symbol comes from zxing-cpp's encoder (0.5 ms), the
service's one QR encoder.
"""

from __future__ import annotations

import io
import math
from functools import lru_cache

import pikepdf
from pikepdf import Array, Dictionary, Name, Stream

from forms_service.errors import TemplateError
from forms_service.render import geometry as g
from forms_service.render.footer import format_footer
from forms_service.render.qr import payload, qr_matrix

_MARKS_NAME = Name("/RsaStampMarks")
_FONT_NAME = Name("/RsaStampFont")
_FONT = "Helvetica"
_KAPPA = 4 * (math.sqrt(2) - 1) / 3


footer_text = format_footer   # the footer line (French, user-facing): see render/footer.py


def _fmt(v: float) -> str:
    s = f"{v:.3f}".rstrip("0").rstrip(".")
    return s if s not in ("", "-0") else "0"


def _circle(cx: float, cy: float, r: float) -> str:
    k = _KAPPA * r
    f = _fmt
    return (
        f"{f(cx + r)} {f(cy)} m "
        f"{f(cx + r)} {f(cy + k)} {f(cx + k)} {f(cy + r)} {f(cx)} {f(cy + r)} c "
        f"{f(cx - k)} {f(cy + r)} {f(cx - r)} {f(cy + k)} {f(cx - r)} {f(cy)} c "
        f"{f(cx - r)} {f(cy - k)} {f(cx - k)} {f(cy - r)} {f(cx)} {f(cy - r)} c "
        f"{f(cx + k)} {f(cy - r)} {f(cx + r)} {f(cy - k)} {f(cx + r)} {f(cy)} c h\n"
    )


@lru_cache(maxsize=1)
def _marks_content() -> bytes:
    """Marks drawn in PDF user space of an A4 page (origin bottom-left, y up)."""
    parts = ["0 g\n"]
    for x, y in g.MARK_CENTERS:
        cy = g.PAGE_HEIGHT - y
        parts.append(_circle(x, cy, g.MARK_OUTER_RADIUS))
        parts.append(_circle(x, cy, g.MARK_INNER_RADIUS))
    parts.append("f*\n")
    return "".join(parts).encode("ascii")


def _qr_content(text: str) -> bytes:
    """The symbol as one filled path in module units (origin bottom-left of the symbol).

    Horizontal runs of dark modules become rectangles; one ``f`` fills them all, so
    there are no anti-aliasing seams between rows.
    """
    m = qr_matrix(text)
    n = m.shape[0]
    out = ["0 g\n"]
    for r in range(n):
        row = m[r]
        y = n - 1 - r
        c = 0
        while c < n:
            if row[c]:
                start = c
                while c < n and row[c]:
                    c += 1
                out.append(f"{start} {y} {c - start} 1 re\n")
            else:
                c += 1
    out.append("f\n")
    return "".join(out).encode("ascii")


def _pdf_string(text: str) -> bytes:
    raw = text.encode("cp1252")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def _footer_ops(text: str, llx: float, lly: float) -> bytes:
    from reportlab.pdfbase.pdfmetrics import stringWidth

    x0, _, x1, _ = g.FOOTER_BOX
    size = g.FOOTER_FONT_SIZE
    width = stringWidth(text, _FONT, size)
    if width > x1 - x0:
        size = max(g.FOOTER_MIN_FONT_SIZE, size * (x1 - x0) / width)
        width = stringWidth(text, _FONT, size)
    x = max(x0, (g.PAGE_WIDTH - width) / 2)
    y = g.PAGE_HEIGHT - g.FOOTER_BASELINE
    return (
        b"BT 0 g " + str(_FONT_NAME).encode() + f" {_fmt(size)} Tf {_fmt(llx + x)} {_fmt(lly + y)} Td ".encode()
        + _pdf_string(text) + b" Tj ET\n"
    )


def _page_origin(page: pikepdf.Page, index: int) -> tuple[float, float]:
    """Lower-left corner of the visible page, after checking it is an unrotated A4."""
    box = [float(v) for v in page.cropbox]
    llx, lly = min(box[0], box[2]), min(box[1], box[3])
    w, h = abs(box[2] - box[0]), abs(box[3] - box[1])
    rotate = int(page.obj.get("/Rotate", 0)) % 360
    tol = g.PAGE_SIZE_TOLERANCE
    if rotate != 0 or abs(w - g.PAGE_WIDTH) > tol or abs(h - g.PAGE_HEIGHT) > tol:
        raise TemplateError(
            f"La page {index + 1} n'est pas au format A4 portrait ({w:.1f} × {h:.1f} pt, rotation {rotate}°)",
            path=f"pages.{index}")
    return llx, lly


def stamp_pdf(pdf: bytes, form: str, version: str, doc_id: str) -> bytes:
    """``pdf`` with marks, QR codes and footer added to every page.

    Raises ``ValueError`` for fields that cannot go in the QR payload (see
    :func:`forms_service.render.qr.payload`) or a PDF already stamped, and
    :class:`~forms_service.errors.TemplateError` if a page is not an unrotated A4.
    """
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        stamp_document(doc, form, version, doc_id)
        out = io.BytesIO()
        doc.save(out)
        return out.getvalue()


def stamp_document(doc: pikepdf.Pdf, form: str, version: str, doc_id: str) -> None:
    """:func:`stamp_pdf` on an open document, changed in place (the fast path stamps the
    document it writes before its one save)."""
    pages = len(doc.pages)
    payload(form, version, 1, max(pages, 1), doc_id)  # validates all fields up front
    marks = Stream(doc, _marks_content())
    marks.Type = Name.XObject
    marks.Subtype = Name.Form
    marks.BBox = Array([0, 0, g.PAGE_WIDTH, g.PAGE_HEIGHT])
    marks = doc.make_indirect(marks)
    font = doc.make_indirect(Dictionary(Type=Name.Font, Subtype=Name.Type1, BaseFont=Name("/" + _FONT),
                                        Encoding=Name.WinAnsiEncoding))
    n = g.QR_MODULES
    s = _fmt(g.QR_MODULE)
    for page in doc.pages:  # checked before any page is stamped: pages may share resources
        xobjects = page.resources.get("/XObject")
        if xobjects is not None and _MARKS_NAME in xobjects:
            raise ValueError("PDF already stamped")
    for i, page in enumerate(doc.pages):
        llx, lly = _page_origin(page, i)
        text = payload(form, version, i + 1, pages, doc_id)
        qr = Stream(doc, _qr_content(text))
        qr.Type = Name.XObject
        qr.Subtype = Name.Form
        qr.BBox = Array([0, 0, n, n])
        qr_name = Name(f"/RsaStampQr{i + 1}")  # resource dicts may be shared between pages
        page.add_resource(marks, Name.XObject, _MARKS_NAME)
        page.add_resource(font, Name.Font, _FONT_NAME)
        page.add_resource(doc.make_indirect(qr), Name.XObject, qr_name)
        ops = [b"/Artifact <</Type /Pagination>> BDC\n",
               f"q 1 0 0 1 {_fmt(llx)} {_fmt(lly)} cm ".encode(), str(_MARKS_NAME).encode(), b" Do Q\n"]
        for x0, _, _, bottom in (g.QR_TOP_RIGHT, g.QR_BOTTOM_LEFT):
            ops += [f"q {s} 0 0 {s} {_fmt(llx + x0)} {_fmt(lly + g.PAGE_HEIGHT - bottom)} cm ".encode(),
                    str(qr_name).encode(), b" Do Q\n"]
        ops += [_footer_ops(footer_text(form, version, i + 1, pages, doc_id), llx, lly), b"EMC\n"]
        page.contents_add(Stream(doc, b"q\n"), prepend=True)
        page.contents_add(Stream(doc, b"\nQ\n" + b"".join(ops)))

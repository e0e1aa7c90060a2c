"""The page stamp: QR payloads, DOCX QR image, and stamped PDFs read back at 150 dpi.

Timing (``python -m pytest tests/test_stamp.py -k speed -s``) prints the stamping cost
per page; measured on the 2-core dev machine: ~1.4 ms per page on a 20-page PDF, ~2 ms
per page on a 3-page one (open + save included).
"""

from __future__ import annotations

import io
import statistics
import time

import numpy as np
import pikepdf
import pytest

from forms_service.errors import TemplateError
from forms_service.render import geometry as g
from forms_service.render.qr import QrInfo, parse_payload, payload, qr_matrix, qr_png, qr_png_size_mm
from forms_service.render.stamp import footer_text, stamp_pdf
from parsers.scan.identify import find_qr

FORM, VERSION, DOC = "fiche-liaison", "0123456789ab", "01J9ZKQ8X2M4N6P8R0T2V4W6Y8"


def make_pdf(pages: int = 3, *, field: bool = True, size=(g.PAGE_WIDTH, g.PAGE_HEIGHT)) -> bytes:
    """A plain reportlab PDF: body text inside the content box, one AcroForm text field per page."""
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=size)
    x0, top, _, _ = g.CONTENT_BOX
    for p in range(pages):
        c.setFont("Helvetica", 11)
        for k in range(40):
            c.drawString(x0, size[1] - top - 14 - 16 * k, f"Page {p + 1} ligne {k + 1} : bénéficiaire du RSA, démarches")
        if field:
            c.acroForm.textfield(name=f"nom_{p + 1}", x=300, y=700, width=200, height=18, value=f"Dupont {p + 1}")
        c.showPage()
    c.save()
    return buf.getvalue()


def render(pdf: bytes, dpi: int = 150) -> list[np.ndarray]:
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(pdf)
    try:
        return [doc[i].render(scale=dpi / 72, grayscale=True).to_numpy().copy() for i in range(len(doc))]
    finally:
        doc.close()


@pytest.fixture(scope="module")
def source() -> bytes:
    return make_pdf(3)


@pytest.fixture(scope="module")
def stamped(source) -> bytes:
    return stamp_pdf(source, FORM, VERSION, DOC)


# --- payload -----------------------------------------------------------------------------


def test_payload_round_trip():
    text = payload(FORM, VERSION, 2, 3, DOC)
    assert text == f"RSA1|{FORM}|{VERSION}|2/3|{DOC}"
    assert parse_payload(text) == QrInfo(FORM, VERSION, 2, 3, DOC)
    docx = payload(FORM, VERSION, None, None, DOC)
    assert docx == f"RSA1|{FORM}|{VERSION}||{DOC}" and docx.count("|") == 4
    assert parse_payload(docx) == QrInfo(FORM, VERSION, None, None, DOC)
    assert parse_payload(docx).is_docx


@pytest.mark.parametrize("text", [
    "", "RSA1", "RSA2|fiche-liaison|0123456789ab|1/3|ABC",
    "RSA1|fiche-liaison|0123456789ab|1/3",                  # 4 fields
    "RSA1|fiche-liaison|0123456789ab|1/3|ABC|x",            # 6 fields
    "RSA1|Fiche|0123456789ab|1/3|ABC",                      # form id case
    "RSA1|fiche-liaison|0123456789AB|1/3|ABC",              # version case
    "RSA1|fiche-liaison|0123456789a|1/3|ABC",               # version length
    "RSA1|fiche-liaison|0123456789ab|4/3|ABC",              # page > pages
    "RSA1|fiche-liaison|0123456789ab|0/3|ABC",
    "RSA1|fiche-liaison|0123456789ab|01/3|ABC",
    "RSA1|fiche-liaison|0123456789ab|1/|ABC",
    "RSA1|fiche-liaison|0123456789ab|1/3|",
    "RSA1|fiche-liaison|0123456789ab|1/3|AB-C",
    "RSA1|fiche-liaison|0123456789ab|1/3|" + "A" * 27,
])
def test_parse_payload_is_strict(text):
    assert parse_payload(text) is None


def test_payload_rejects_bad_fields():
    for args in [("Fiche", VERSION, 1, 1, DOC), (FORM, "xyz", 1, 1, DOC), (FORM, VERSION, 1, 1, "a b"),
                 (FORM, VERSION, 2, 1, DOC), (FORM, VERSION, 1, None, DOC), ("a" * 32, VERSION, 1, 1, DOC)]:
        with pytest.raises(ValueError):
            payload(*args)


def test_longest_payload_fits_version_5_at_level_m():
    import zxingcpp

    text = payload("a" * 31, VERSION, 999, 999, "Z" * 26)
    assert len(text) == 84
    m = qr_matrix(text)
    assert m.shape == (37, 37)
    img = np.kron(np.pad(~m, 4, constant_values=True), np.ones((4, 4), bool)).astype(np.uint8) * 255
    (code,) = zxingcpp.read_barcodes(img, formats=zxingcpp.QRCode)
    assert code.text == text and code.ec_level == "M"


def test_docx_qr_png():
    import zxingcpp
    from PIL import Image

    text = payload(FORM, VERSION, None, None, DOC)
    png = qr_png(text)
    img = Image.open(io.BytesIO(png))
    dpi_x = img.info["dpi"][0]
    width_mm = img.size[0] / dpi_x * 25.4
    assert width_mm == pytest.approx(qr_png_size_mm(), abs=0.1)
    assert width_mm / (37 + 8) >= 0.5 - 1e-3
    (code,) = zxingcpp.read_barcodes(img.convert("L"), formats=zxingcpp.QRCode)
    assert parse_payload(code.text) == QrInfo(FORM, VERSION, None, None, DOC)
    assert code.ec_level in ("M", "Q", "H")
    with pytest.raises(ValueError):
        qr_png(text, module_mm=0.4)


# --- stamped PDFs ------------------------------------------------------------------------


def test_every_page_identifies_itself_at_150_dpi(stamped):
    pages = render(stamped, 150)
    assert len(pages) == 3
    for i, gray in enumerate(pages):
        hits = find_qr(gray)
        assert {h.slot for h in hits} == {"top_right", "bottom_left"}
        for h in hits:
            assert h.info == QrInfo(FORM, VERSION, i + 1, 3, DOC)
            assert h.rotation == 0
            assert h.ec_level in ("M", "Q", "H")


def test_qr_is_vector_with_half_millimetre_modules(stamped):
    with pikepdf.open(io.BytesIO(stamped)) as doc:
        page = doc.pages[0]
        xobjects = page.resources.XObject
        assert "/RsaStampQr1" in xobjects and not page.get_images()  # no raster image anywhere
        assert xobjects["/RsaStampQr1"].BBox == [0, 0, 37, 37]
        content = b"".join(s.read_bytes() for s in page.obj.Contents)
    module = f"{g.QR_MODULE:.3f}".rstrip("0").encode()
    assert content.count(module + b" 0 0 " + module) == 2   # drawn twice, 0.5 mm modules
    assert g.QR_MODULE / g.MM == pytest.approx(0.5)


def test_one_qr_painted_over_the_other_still_reads(stamped):
    dpi = 150
    for slot, kept in (("top_right", "bottom_left"), ("bottom_left", "top_right")):
        gray = render(stamped, dpi)[1]
        x0, top, x1, bottom = (v * dpi / 72 for v in g.outset(g.QR_BOXES[slot], g.mm(3)))
        gray[int(top):int(bottom) + 1, int(x0):int(x1) + 1] = 255
        hits = find_qr(gray)
        assert [h.slot for h in hits] == [kept]
        assert hits[0].info.page == 2


def test_existing_text_still_extractable(source, stamped):
    import pdfplumber
    import pypdfium2 as pdfium

    with pdfplumber.open(io.BytesIO(source)) as before, pdfplumber.open(io.BytesIO(stamped)) as after:
        assert len(after.pages) == 3
        for i, (b, a) in enumerate(zip(before.pages, after.pages)):
            text_b, text_a = b.extract_text(), a.extract_text()
            assert f"Page {i + 1} ligne 40 : bénéficiaire du RSA, démarches" in text_a
            assert text_a.startswith(text_b)  # same text, same order, the footer after it
            assert footer_text(FORM, VERSION, i + 1, 3, DOC) in text_a
            words_b = [(w["text"], round(w["x0"], 2), round(w["top"], 2)) for w in b.extract_words()]
            words_a = [(w["text"], round(w["x0"], 2), round(w["top"], 2)) for w in a.extract_words()]
            assert words_a[:len(words_b)] == words_b  # positions unchanged
    doc = pdfium.PdfDocument(stamped)
    try:
        text = doc[0].get_textpage().get_text_range()
    finally:
        doc.close()
    assert "Page 1 ligne 1 : bénéficiaire du RSA" in text and "modèle 0123456789ab" in text


def test_acroform_fields_survive(source, stamped):
    from pypdf import PdfReader

    before = {k: v.get("/V") for k, v in PdfReader(io.BytesIO(source)).get_fields().items()}
    after = {k: v.get("/V") for k, v in PdfReader(io.BytesIO(stamped)).get_fields().items()}
    assert before == after == {f"nom_{i}": f"Dupont {i}" for i in (1, 2, 3)}
    with pikepdf.open(io.BytesIO(stamped)) as doc:
        assert len(doc.Root.AcroForm.Fields) == 3
        assert all(len(p.Annots) == 1 for p in doc.pages)


def test_stamp_stays_in_reserved_boxes():
    """Rendered ink of a stamped blank page lies only in geometry.RESERVED_BOXES."""
    dpi = 100
    blank = stamp_pdf(make_pdf(1, field=False), FORM, VERSION, DOC)
    plain = render(make_pdf(1, field=False), dpi)[0]
    gray = render(blank, dpi)[0]
    ink = (gray < 200) & (plain > 200)
    allowed = np.zeros_like(ink)
    for x0, top, x1, bottom in g.RESERVED_BOXES.values():
        k = dpi / 72
        allowed[int(top * k):int(np.ceil(bottom * k)) + 1, int(x0 * k):int(np.ceil(x1 * k)) + 1] = True
    assert ink.sum() > 1000
    assert not (ink & ~allowed).any()
    cx0, ctop, cx1, cbottom = (v * dpi / 72 for v in g.CONTENT_BOX)
    assert not ink[int(ctop) + 1:int(cbottom), int(cx0) + 1:int(cx1)].any()


def test_shared_resources_and_restamp_rejected():
    """LibreOffice's pages share one /Resources dictionary; every page still gets its own QR."""
    with pikepdf.open(io.BytesIO(make_pdf(3, field=False))) as doc:
        shared = doc.make_indirect(doc.pages[0].obj.Resources)
        for p in doc.pages:
            p.obj.Resources = shared
        buf = io.BytesIO()
        doc.save(buf)
    out = stamp_pdf(buf.getvalue(), FORM, VERSION, DOC)
    for i, gray in enumerate(render(out, 150)):
        assert {h.info.page for h in find_qr(gray)} == {i + 1}
    with pytest.raises(ValueError, match="already stamped"):
        stamp_pdf(out, FORM, VERSION, DOC)


def test_longest_footer_stays_in_its_box():
    import pdfplumber

    form, doc_id = "formulaire-" + "x" * 20, "Z" * 26
    out = stamp_pdf(make_pdf(1, field=False), form, "f" * 12, doc_id)
    with pdfplumber.open(io.BytesIO(out)) as pdf:
        chars = [c for c in pdf.pages[0].chars if c["top"] > g.CONTENT_BOX[3]]
    assert "".join(c["text"] for c in chars) == footer_text(form, "f" * 12, 1, 1, doc_id)
    x0, top, x1, bottom = g.FOOTER_BOX
    assert all(x0 - 0.5 <= c["x0"] and c["x1"] <= x1 + 0.5 and top - 0.5 <= c["top"] and c["bottom"] <= bottom + 0.5
               for c in chars)
    assert min(c["size"] for c in chars) >= g.FOOTER_MIN_FONT_SIZE - 0.01


def test_non_a4_page_rejected():
    with pytest.raises(TemplateError):
        stamp_pdf(make_pdf(1, size=(612, 792)), FORM, VERSION, DOC)
    with pytest.raises(ValueError):
        stamp_pdf(make_pdf(1), FORM, "not-a-version", DOC)


def test_stamp_speed(source):
    big = make_pdf(20, field=False)
    for pdf, pages in ((source, 3), (big, 20)):
        stamp_pdf(pdf, FORM, VERSION, DOC)
        runs = []
        for _ in range(15):
            t = time.perf_counter()
            stamp_pdf(pdf, FORM, VERSION, DOC)
            runs.append(time.perf_counter() - t)
        per_page = statistics.median(runs) / pages * 1000
        print(f"\nstamp_pdf: {pages} pages, median {statistics.median(runs) * 1000:.1f} ms, {per_page:.2f} ms/page")
        assert per_page < 15  # generous bound for a loaded CI machine; typical is ~1.5-2 ms

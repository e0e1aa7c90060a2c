"""RenderService against a real LibreOffice pool (one per test session, started once).

Every form whose template exists renders to DOCX and PDF, from its sample and blank;
every page of every PDF identifies itself by its QR code at 150 dpi; the fiche de
liaison has its 3 pages and the spec's labels on the right page; user text prints
literally; dates print dd/mm/yyyy; what was issued is recorded (database, file,
audit trail without personal data).

The pool is ``pdf.get_pool`` for a fixed set of options, so the three render test
modules (service, API, CLI) share the same started pool.
"""

from __future__ import annotations

import io
import json
import re
import threading
import zipfile
from pathlib import Path

import pypdfium2 as pdfium
import pytest

from forms_service.catalogue import catalogue
from forms_service.errors import NotAForm, TemplateError, UnknownForm, ValidationFailed
from forms_service.config import Settings
from forms_service.render.pdf import libreoffice_available, pdf_page_count

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
SPEC = ROOT.parent / "shared" / "spec" / "fiche-liaison.md"

needs_libreoffice = pytest.mark.skipif(
    not libreoffice_available(),
    reason="LibreOffice is not installed (no soffice): PDF rendering tests skipped")

_PDFIUM_LOCK = threading.Lock()  # pypdfium2 is not thread-safe


# ---------------------------------------------------------------------- shared helpers

def rendered_forms() -> list:
    """Forms (kind form) whose DOCX template exists."""
    from forms_service.render.pipeline import template_path

    settings = Settings.from_env(environ={})
    out = []
    for fd in catalogue.forms():
        try:
            template_path(fd, settings)
        except TemplateError:
            continue
        out.append(fd)
    return out


def sample(form_id: str) -> dict | None:
    path = SAMPLES / f"{form_id}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("\u2019", "'").replace("\xad", "")).strip()


def pdf_pages_text(pdf: bytes) -> list[str]:
    with _PDFIUM_LOCK:
        doc = pdfium.PdfDocument(pdf)
        try:
            return [doc[i].get_textpage().get_text_range() for i in range(len(doc))]
        finally:
            doc.close()


def page_images(pdf: bytes, dpi: int = 150) -> list:
    """Every page rasterised in grey (2-D uint8 arrays)."""
    with _PDFIUM_LOCK:
        doc = pdfium.PdfDocument(pdf)
        try:
            out = []
            for i in range(len(doc)):
                img = doc[i].render(scale=dpi / 72, grayscale=True).to_numpy()
                out.append(img[..., 0] if img.ndim == 3 else img)
            return out
        finally:
            doc.close()


def qr_texts(gray) -> list[str]:
    """QR payloads of a page image: the scan team's reader if present, else zxing-cpp."""
    import zxingcpp

    return [r.text for r in zxingcpp.read_barcodes(gray, formats=zxingcpp.BarcodeFormat.QRCode)]


def assert_pages_identify(pdf: bytes, form_id: str, version: str, doc_id: str) -> None:
    images = page_images(pdf)
    pages = len(images)
    for number, gray in enumerate(images, start=1):
        expected = f"RSA1|{form_id}|{version}|{number}/{pages}|{doc_id}"
        assert expected in qr_texts(gray), f"page {number}: no QR {expected}"


def docx_text(content: bytes) -> str:
    import docx

    document = docx.Document(io.BytesIO(content))
    parts = [p.text for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            parts += [cell.text for cell in row.cells]
    return "\n".join(parts)


_HEADING = re.compile(r"(?<![\w'’])([A-ZÉÈÊÀÇ][A-ZÉÈÊÀÇ'’/ –-]{8,}[A-ZÉÈÊÀÇ])(?![\w'’])")


def spec_labels(text: str) -> dict[int, list[str]]:
    """``{page: [label, ...]}`` from the spec: the option labels of its tables (and their
    printed group headings) and the upper-case section headings, under ``## Page N``."""
    pages: dict[int, list[str]] = {}
    page = None
    for line in text.splitlines():
        m = re.match(r"##\s+Page\s+(\d+)", line)
        if m:
            page = int(m.group(1))
            continue
        if line.startswith("#"):
            page = None
        if page is None:
            continue
        out = pages.setdefault(page, [])
        if line.lstrip().startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if all(re.fullmatch(r":?-+:?", c) for c in cells) or cells[-1] == "label":
                continue
            out.append(re.sub(r"\s*\((?:\+ |footnote ).*$", "", cells[-1]))   # "(+ text `x`)"
            if len(cells) >= 3:
                out += [g.strip() for g in cells[0].split(" / ")
                        if g.strip() and not g.strip().startswith("…")]
        else:
            prose = re.sub(r'`[^`]*`|"[^"]*"', " ", line)   # not codes nor quoted sentences
            out += [h.strip(" -–/") for h in _HEADING.findall(prose)]
    return {p: list(dict.fromkeys(v)) for p, v in pages.items() if v}


# ---------------------------------------------------------------------- fixtures

@pytest.fixture
def service(make_app, lo_pool):
    from forms_service.render.service import get_service

    return get_service(make_app(PDF_POOL=lo_pool))


@pytest.fixture
def docx_service(make_app):
    """A service whose PDFs are impossible: DOCX only, no LibreOffice needed."""
    from forms_service.render.service import get_service

    return get_service(make_app(PDF_SOFFICE="/nonexistent/soffice"))


FORMS = rendered_forms()
FORM_IDS = [fd.id for fd in FORMS if fd.kind == "form"]
REFERENCE_IDS = [fd.id for fd in FORMS if fd.kind == "reference"]


# ---------------------------------------------------------------------- every form

@needs_libreoffice
@pytest.mark.parametrize("form_id", FORM_IDS)
@pytest.mark.parametrize("which", ["sample", "blank"])
def test_every_form_renders_docx_and_pdf(service, form_id, which):
    data = sample(form_id) if which == "sample" else None
    if which == "sample" and data is None:
        pytest.skip(f"no samples/{form_id}.json")
    fd = catalogue.get(form_id)
    docx = service.render(form_id, data, fmt="docx")
    assert docx.content[:2] == b"PK" and docx.filename.endswith(".docx")
    pdf = service.render(form_id, data, fmt="pdf")
    assert pdf.content.startswith(b"%PDF-") and pdf.filename.endswith(".pdf")
    assert pdf.document_id != docx.document_id
    if fd.pages:
        assert pdf_page_count(pdf.content) == fd.pages
    assert_pages_identify(pdf.content, fd.id, pdf.template_version, pdf.document_id)


@needs_libreoffice
@pytest.mark.parametrize("form_id", REFERENCE_IDS)
def test_reference_lists_render_their_codes(service, form_id):
    fd = catalogue.get(form_id)
    pdf = service.render(form_id, None, fmt="pdf")
    text = norm(" ".join(pdf_pages_text(pdf.content)))
    for entry in fd.entries()[:5]:
        assert norm(entry.label) in text
        # Annexe 1's codes are internal (niveau_1…): issue 16 stopped printing them; the
        # ROME and action codes of Annexes 4 and 6 are the seed's own and stay printed
        if form_id != "annexe-1":
            assert norm(entry.code) in text
    assert_pages_identify(pdf.content, fd.id, pdf.template_version, pdf.document_id)
    assert pdf.findings == []


def test_reference_list_takes_no_data(docx_service):
    ref = REFERENCE_IDS[0]
    assert docx_service.render(ref, {}).content[:2] == b"PK"
    with pytest.raises(NotAForm):
        docx_service.render(ref, {"code": "x"})


@needs_libreoffice
def test_fiche_de_liaison_has_three_pages_with_the_spec_labels_on_the_right_page(service):
    doc = service.render("annexe-7", sample("fiche-liaison") or {}, fmt="pdf")
    assert doc.form_id == "fiche-liaison"
    texts = [norm(t) for t in pdf_pages_text(doc.content)]
    assert len(texts) == 3
    if not SPEC.exists():
        pytest.skip(f"spec not found ({SPEC}): labels not checked")
    labels = spec_labels(SPEC.read_text(encoding="utf-8"))
    assert set(labels) == {1, 2, 3} and sum(map(len, labels.values())) > 60
    # Issue 16 redistributed the space over the three pages (page 3 was crammed): a label may
    # move to the next or previous page, never further, and the spec's order is kept.
    misplaced, order = {}, []
    for page, page_labels in sorted(labels.items()):
        for label in page_labels:
            found = [i + 1 for i, t in enumerate(texts) if norm(label) in t]
            near = [p for p in found if abs(p - page) <= 1]
            if not near:
                misplaced[label] = found
            else:
                order.append(min(near, key=lambda p: abs(p - page)))
    assert not misplaced, f"labels missing or two pages away from the spec's (found on): {misplaced}"
    assert order == sorted(order), "the labels' pages do not follow the spec's order"


@needs_libreoffice
def test_docx_download_carries_its_qr_in_the_header(service, lo_pool):
    doc = service.render("fiche-liaison", sample("fiche-liaison"), fmt="docx")
    with zipfile.ZipFile(io.BytesIO(doc.content)) as z:
        assert z.read("word/media/rsa_qr.png").startswith(b"\x89PNG")
    pdf = lo_pool.convert(doc.content)  # as Word or LibreOffice would print it
    expected = f"RSA1|fiche-liaison|{doc.template_version}||{doc.document_id}"
    assert expected in qr_texts(page_images(pdf)[0])


# ---------------------------------------------------------------------- what prints

HOSTILE = "Tom & Jerry <b>gras</b> > {{ x }} {% if %} {{ document.id }}"


@needs_libreoffice
def test_user_text_prints_literally(service):
    data = {"mds": "MDS & <Arras>", "objet_detail": HOSTILE, "objet": ["demande_appui"]}
    docx = service.render("fiche-liaison", data, fmt="docx")
    assert "MDS & <Arras>" in docx_text(docx.content)
    assert HOSTILE in docx_text(docx.content)
    pdf = service.render("fiche-liaison", data, fmt="pdf")
    page1 = norm(pdf_pages_text(pdf.content)[0])
    assert norm(HOSTILE) in page1 and "MDS & <Arras>" in page1


def test_user_text_is_escaped_in_the_docx_xml(docx_service):
    doc = docx_service.render("fiche-liaison", {"objet_detail": HOSTILE})
    with zipfile.ZipFile(io.BytesIO(doc.content)) as z:
        xml = z.read("word/document.xml").decode()
    assert "Tom &amp; Jerry &lt;b&gt;gras&lt;/b&gt; &gt; {{ x }} {% if %}" in xml


@needs_libreoffice
def test_dates_print_day_month_year(service):
    data = {"beneficiaire": {"date_naissance": "1985-03-07", "rsa_depuis": "2010-12-01"}}
    text = norm(pdf_pages_text(service.render("fiche-liaison", data, fmt="pdf").content)[0])
    assert "07/03/1985" in text and "01/12/2010" in text
    assert "1985-03-07" not in text


# ---------------------------------------------------------------------- checks

def test_wrong_types_unknown_codes_and_bad_dates_name_their_paths(docx_service):
    data = {"beneficiaire": {"nom": 12, "date_naissance": "07/03/1985"},
            "objet": ["inconnu"], "champ": 1}
    with pytest.raises(ValidationFailed) as err:
        docx_service.render("fiche-liaison", data)
    found = {(p.path, p.rule) for p in err.value.problems}
    assert {("beneficiaire.nom", "type_invalide"), ("beneficiaire.date_naissance", "date_invalide"),
            ("objet.0", "code_inconnu"), ("champ", "champ_inconnu")} <= found
    assert err.value.http_status == 422 and err.value.exit_code == 1


def test_text_longer_than_its_printed_box_is_refused(docx_service):
    fd = catalogue.get("fiche-liaison")
    assert fd.fixed_layout
    limit = fd.field("beneficiaire.nom").max_length
    with pytest.raises(ValidationFailed) as err:
        docx_service.render("fiche-liaison", {"beneficiaire": {"nom": "N" * (limit + 1)}})
    assert [(p.path, p.rule) for p in err.value.problems] == [("beneficiaire.nom", "longueur_maximale")]


def test_findings_do_not_block_unless_strict(docx_service):
    doc = docx_service.render("fiche-liaison", {"objet": ["autre"]})
    rules = {p.rule for p in doc.findings}
    assert {"page1_champ_obligatoire", "objet_autre_non_precise"} <= rules
    with pytest.raises(ValidationFailed) as err:
        docx_service.render("fiche-liaison", {"objet": ["autre"]}, strict=True)
    assert {p.rule for p in err.value.problems} == {p.rule for p in doc.findings
                                                   if p.severity == "error"}


def test_strict_accepts_a_valid_sample(docx_service):
    data = sample("fiche-liaison")
    if data is None:
        pytest.skip("no samples/fiche-liaison.json")
    doc = docx_service.render("fiche-liaison", data, strict=True)
    assert all(p.severity != "error" for p in doc.findings)


def test_unknown_form(docx_service):
    with pytest.raises(UnknownForm):
        docx_service.render("annexe-99", {})


# ---------------------------------------------------------------------- records

def test_issued_document_is_recorded_without_personal_data_in_logs(docx_service, log_lines):
    from forms_service import db

    data = {"beneficiaire": {"nom": "WATTEBLED", "num_caf": "4817263"}}
    doc = docx_service.render("annexe-7", data, actor="mds-arras")
    assert re.fullmatch(rf"fiche-liaison_\d{{4}}-\d\d-\d\d_{doc.document_id}\.docx", doc.filename)
    with docx_service.app.app_context(), db.session() as s:
        row = s.get(db.IssuedDocument, doc.document_id)
        assert row.form_id == "fiche-liaison" and row.format == "docx"
        assert row.created_by == "mds-arras"
        assert row.template_version == doc.template_version
        assert row.data["beneficiaire"]["nom"] == "WATTEBLED"
        assert row.layout == {"blank_layout": {"form_id": "fiche-liaison",
                                               "template_version": doc.template_version}}
        assert Path(row.file_path).read_bytes() == doc.content
        assert Path(row.file_path).is_relative_to(docx_service.settings.storage_dir.resolve())
        assert s.get(db.TemplateVersion, ("fiche-liaison", doc.template_version)) is not None
        events = s.query(db.AuditEvent).filter_by(document_id=doc.document_id).all()
    assert [(e.actor, e.action, e.form_id) for e in events] == [
        ("mds-arras", "document.rendu", "fiche-liaison")]
    assert "WATTEBLED" not in json.dumps(events[0].detail)
    logged = log_lines.raw()
    assert "WATTEBLED" not in logged and "4817263" not in logged
    assert doc.document_id in logged


@needs_libreoffice
def test_pdf_records_the_template_version_with_its_blank_layout(service):
    from forms_service import db

    doc = service.render("fiche-liaison", {}, fmt="pdf")
    with service.app.app_context(), db.session() as s:
        tv = s.get(db.TemplateVersion, ("fiche-liaison", doc.template_version))
        assert tv is not None and len(tv.template_sha) == 64
        assert tv.layout and tv.layout["boxes"]
        assert s.get(db.IssuedDocument, doc.document_id).format == "pdf"


@needs_libreoffice
def test_batch_renders_in_order_and_refuses_a_bad_item_before_rendering(service):
    from forms_service import db
    from forms_service.render.service import batch_findings, batch_zip

    items = [sample("fiche-liaison") or {}, {}, {"mds": "MDS de Lens"}]
    docs = service.render_batch("fiche-liaison", items, fmt="pdf", actor="lot")
    assert docs[1].findings and len({d.document_id for d in docs}) == 3
    assert "MDS de Lens" in pdf_pages_text(docs[2].content)[0]
    with zipfile.ZipFile(io.BytesIO(batch_zip(docs))) as z:
        names = z.namelist()
        assert names[-1] == "findings.json" and len(names) == 4
        assert [n[:4] for n in names[:3]] == ["001_", "002_", "003_"]
        assert json.loads(z.read("findings.json")) == batch_findings(docs)
    with service.app.app_context(), db.session() as s:
        count = s.query(db.IssuedDocument).count()
    with pytest.raises(ValidationFailed) as err:
        service.render_batch("fiche-liaison", [{}, {"mds": 1}, {"objet": ["x"]}], fmt="pdf")
    assert [p.path for p in err.value.problems] == ["items.1.mds", "items.2.objet.0"]
    with service.app.app_context(), db.session() as s:
        assert s.query(db.IssuedDocument).count() == count  # nothing rendered


def test_batch_is_bounded(docx_service):
    from forms_service.errors import PayloadTooLarge
    from forms_service.render.service import MAX_BATCH

    with pytest.raises(PayloadTooLarge):
        docx_service.render_batch("fiche-liaison", [{}] * (MAX_BATCH + 1))


# ---------------------------------------------------------------------- fillable

@needs_libreoffice
def test_fillable_pdf(service):
    from pypdf import PdfReader

    data = {"mds": "MDS de l'Arrageois", "objet": ["passage_ep"]}
    doc = service.render("fiche-liaison", data, fmt="pdf", fillable=True)
    fields = PdfReader(io.BytesIO(doc.content)).get_fields() or {}
    assert fields, "no AcroForm field"
    assert any(f.get("/V") == "MDS de l'Arrageois" for f in fields.values())
    assert_pages_identify(doc.content, "fiche-liaison", doc.template_version, doc.document_id)


# ---------------------------------------------------------------------- renderer

def test_compiled_renderer_gives_plain_docxtpl_text(docx_service):
    """The cached compiled renderer (static entries compressed once, listing resolution
    skipped when no text holds a line break or tab) prints what ``DocxTemplate.render``
    prints, paragraph by paragraph, breaks and tabs included."""
    from forms_service.render.context import build_context
    from forms_service.render.docx import DocxRenderer, render_plain
    from forms_service.render.pipeline import template_path
    from forms_service.validation import parse_model

    cases = [(fd, sample(fd.id) if fd.kind == "form" else None) for fd in FORMS]
    # Line breaks and tabs in user text go through docxtpl's listing resolution.
    cases.append((catalogue.get("fiche-liaison"),
                  {"objet_detail": "Ligne 1\nLigne 2\tfin & <b>", "mds": "A\tB"}))
    for fd, data in cases:
        dump = parse_model(fd, data or {}).model_dump(mode="python") if fd.kind == "form" else {}
        ctx = build_context(fd, dump, document={"id": "X", "version": "v", "qr": ""},
                            departement={"nom": "Département", "logo": ""})
        path = template_path(fd, docx_service.settings)
        ours, plain = DocxRenderer().render(path, ctx), render_plain(path, ctx)
        assert paragraphs(ours) == paragraphs(plain), fd.id
        assert any(paragraphs(ours)), fd.id
        if data and "objet_detail" in data and "\n" in data["objet_detail"]:
            assert "Ligne 1\nLigne 2\tfin & <b>" in paragraphs(ours)


def paragraphs(content: bytes, part: str = "word/document.xml") -> list[str]:
    """The text of each paragraph of a DOCX part."""
    from lxml import etree

    w = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
    with zipfile.ZipFile(io.BytesIO(content)) as z:
        root = etree.fromstring(z.read(part))
    marks = {w + "br": "\n", w + "tab": "\t"}
    return ["".join(marks.get(e.tag, e.text or "" if e.tag == w + "t" else "") for e in p.iter())
            for p in root.iter(w + "p")]

"""Fillable PDFs: the AcroForm placed by the layout map, and the committed templates/pdf.

The committed ``templates/pdf/<form>.pdf`` are checked as they are (fields, names,
positions, metadata), filled and read back with pypdf and with ``pdftk fill_form``.
``test_committed_templates_are_not_stale`` fails when an input changed (template,
definition, render sources) until ``python -m forms_service.render.fillable_cli --build``
is run and its output committed. Tests needing LibreOffice are skipped only when
``soffice`` is missing; the pdftk ones only when ``pdftk`` is.
"""

from __future__ import annotations

import datetime as dt
import io
import shutil
import subprocess
from xml.sax.saxutils import quoteattr, escape

import pikepdf
import pytest
from pypdf import PdfReader, PdfWriter

from forms_service.catalogue import catalogue
from forms_service.config import DEFAULT_TEMPLATES_DIR, Settings
from forms_service.errors import TemplateError
from forms_service.render import fillable as F
from forms_service.render import templates_pdf as T
from forms_service.render import layout as L
from forms_service.render.stamp import stamp_pdf

PDF_DIR = DEFAULT_TEMPLATES_DIR / "pdf"
needs_pdftk = pytest.mark.skipif(shutil.which("pdftk") is None, reason="pdftk is not installed")


def default_settings(tmp) -> Settings:
    return Settings.from_env({"var_dir": tmp, "departement_logo": None}, environ={})


@pytest.fixture(scope="session")
def pool(layout_pool):
    return layout_pool


@pytest.fixture(scope="session")
def settings(tmp_path_factory):
    return default_settings(tmp_path_factory.mktemp("fillable-settings"))


@pytest.fixture(scope="session")
def layouts(pool, settings):
    """Fresh blank layouts of the forms (what the committed PDFs must carry)."""
    return {fd.id: L.build_layout_and_pdf(fd, settings=settings, pool=pool)
            for fd in T.template_forms(settings)}


def committed(form: str) -> bytes:
    path = PDF_DIR / f"{form}.pdf"
    assert path.exists(), f"{path} missing: run python -m forms_service.render.fillable_cli --build"
    return path.read_bytes()


def expected_names(layout: dict) -> set[str]:
    names = {F.field_name(b) for b in layout["boxes"]}
    return names | {z["path"] for z in layout["zones"] if z["kind"] == "text"}


def terminal_fields(pdf_bytes: bytes) -> dict:
    """{qualified name: field} of the terminal fields, by pypdf."""
    fields = PdfReader(io.BytesIO(pdf_bytes)).get_fields() or {}
    return {k: v for k, v in fields.items() if v.get("/FT") in ("/Btn", "/Tx")}


# ----------------------------------------------------------------- without LibreOffice

SMALL_LAYOUT = {
    "form": "fiche-liaison", "template_version": "0123456789ab",
    "pages": [{"number": 1, "width": 595.3, "height": 841.9}],
    "boxes": [
        {"page": 1, "path": "suspension.motifs", "value": "refus_controle", "label": "", "bbox": [50, 50, 60, 60]},
        {"page": 1, "path": "suspension.motifs", "value": "autres", "label": "", "bbox": [50, 70, 60, 80]},
        {"page": 1, "path": "suspension.demandee", "value": True, "label": "", "bbox": [50, 90, 60, 100]},
        {"page": 1, "path": "referent.type", "value": "solidarite", "label": "", "bbox": [70, 90, 80, 100]},
        {"page": 1, "path": "referent.type", "value": "solidarite", "label": "", "bbox": [90, 90, 100, 100]},
    ],
    "zones": [
        {"page": 1, "path": "beneficiaire.rsa_depuis", "kind": "text", "bbox": [100, 100, 300, 114]},
        {"page": 1, "path": "objet_detail", "kind": "text", "bbox": [100, 120, 500, 200]},
        {"page": 1, "path": "signature_referent", "kind": "signature", "bbox": [100, 300, 300, 340]},
    ],
}


def one_page_pdf() -> bytes:
    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(595.3, 841.9))
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


def test_field_hierarchy_names_values_and_flags():
    data = {"suspension": {"demandee": True, "motifs": ["autres"]},
            "referent": {"type": "solidarite"},
            "beneficiaire": {"rsa_depuis": "2023-04-01"}, "objet_detail": "Texte (long) é"}
    out = F.make_fillable(one_page_pdf(), SMALL_LAYOUT, form="fiche-liaison", version="0123456789ab",
                          document_id="01J0000000000000000000000A", data_dump=data)
    fields = terminal_fields(out)
    assert set(fields) == {"suspension.motifs.refus_controle", "suspension.motifs.autres",
                           "suspension.demandee", "referent.type.solidarite",
                           "beneficiaire.rsa_depuis", "objet_detail"}
    assert fields["suspension.motifs.autres"]["/V"] == "/Yes"
    assert fields["suspension.motifs.refus_controle"]["/V"] == "/Off"
    assert fields["suspension.demandee"]["/V"] == "/Yes"
    assert fields["beneficiaire.rsa_depuis"]["/V"] == "01/04/2023"
    assert fields["objet_detail"]["/V"] == "Texte (long) é"
    with pikepdf.open(io.BytesIO(out)) as pdf:
        by_name = {}

        def walk(f, prefix=""):
            name = f"{prefix}.{f.T}" if prefix else str(f.T)
            if "/Kids" in f and any("/T" in k for k in f.Kids):
                for k in f.Kids:
                    walk(k, name)
            else:
                by_name[name] = f

        for f in pdf.Root.AcroForm.Fields:
            walk(f)
        assert [str(f.T) for f in pdf.Root.AcroForm.Fields] == ["suspension", "referent", "beneficiaire",
                                                                 "objet_detail"]
        # a box printed twice: one field, two widgets, both on the page
        twice = by_name["referent.type.solidarite"]
        assert len(twice.Kids) == 2 and all(k.AS == "/Yes" for k in twice.Kids)
        assert int(by_name["objet_detail"].get("/Ff", 0)) & F.FF_MULTILINE
        assert not int(by_name["beneficiaire.rsa_depuis"].get("/Ff", 0)) & F.FF_MULTILINE
        assert len(pdf.pages[0].Annots) == 7   # 5 boxes + 2 text fields; no signature field
        box = by_name["suspension.demandee"]
        assert [round(float(v), 2) for v in box.Rect] == [50, 841.9 - 100, 60, 841.9 - 90]
        assert set(box.AP.N.keys()) == {"/Yes", "/Off"}
        assert pdf.docinfo["/RsaForm"] == "fiche-liaison"
        assert pdf.docinfo["/RsaTemplateVersion"] == "0123456789ab"
        assert pdf.docinfo["/RsaDocumentId"] == "01J0000000000000000000000A"
        meta = pdf.open_metadata()
        assert meta.get(f"{{{F.XMP_NS}}}form") == "fiche-liaison"
        assert meta.get(f"{{{F.XMP_NS}}}documentId") == "01J0000000000000000000000A"


def test_layout_of_another_version_is_refused():
    with pytest.raises(TemplateError):
        F.make_fillable(one_page_pdf(), SMALL_LAYOUT, form="fiche-liaison", version="ffffffffffff",
                        document_id="X")


def test_a_name_both_field_and_parent_is_refused():
    layout = dict(SMALL_LAYOUT, zones=[{"page": 1, "path": "suspension", "kind": "text",
                                        "bbox": [100, 100, 300, 114]}])
    with pytest.raises(TemplateError):
        F.make_fillable(one_page_pdf(), layout, form="fiche-liaison", version="0123456789ab",
                        document_id="X")


def test_text_value_formats_like_the_print():
    assert F.text_value(dt.date(2024, 2, 3)) == "03/02/2024"
    assert F.text_value("2024-02-03", "date") == "03/02/2024"
    assert F.text_value(None) == "" and F.text_value(True) == "Oui" and F.text_value(12) == "12"


def test_committed_templates_are_not_stale(tmp_path):
    stale = T.stale_templates(default_settings(tmp_path))
    assert stale == [], (f"templates/pdf is stale for {stale}: run "
                         "`.venv/bin/python -m forms_service.render.fillable_cli --build` and commit templates/pdf")


def test_manifest_covers_every_form_with_a_template(tmp_path):
    settings = default_settings(tmp_path)
    manifest = T.read_manifest(settings)
    forms = {fd.id for fd in T.template_forms(settings)}
    assert "fiche-liaison" in forms
    assert set(manifest["forms"]) == forms
    for form, entry in manifest["forms"].items():
        assert entry["inputs"] == T.inputs_hash(catalogue.get(form), settings)


def test_stale_when_an_input_changes(tmp_path):
    """Another template version (here: another département name) makes every PDF stale."""
    settings = Settings.from_env({"var_dir": tmp_path, "departement_logo": None,
                                  "departement_name": "Département de test"}, environ={})
    assert set(T.stale_templates(settings)) == {fd.id for fd in T.template_forms(settings)}


# ----------------------------------------------------------------- the committed PDFs

def test_committed_pdfs_carry_the_current_layout(layouts):
    for form, (layout, _) in layouts.items():
        data = committed(form)
        fields = terminal_fields(data)
        assert set(fields) == expected_names(layout), form
        with pikepdf.open(io.BytesIO(data)) as pdf:
            assert len(pdf.pages) == len(layout["pages"])
            assert pdf.docinfo["/RsaForm"] == form
            assert pdf.docinfo["/RsaTemplateVersion"] == layout["template_version"]
            assert pdf.docinfo["/RsaDocumentId"] == F.BLANK_DOCUMENT_ID
            rects = {}
            for i, page in enumerate(pdf.pages):
                for a in page.get("/Annots", []):
                    rects.setdefault(i + 1, []).append([round(float(v), 1) for v in a.Rect])
        for b in layout["boxes"]:
            x0, top, x1, bottom = b["bbox"]
            want = [round(x0, 1), round(841.89 - bottom, 1), round(x1, 1), round(841.89 - top, 1)]
            assert any(all(abs(p - q) <= 0.15 for p, q in zip(r, want)) for r in rects[b["page"]]), (form, b)
        assert all(v.get("/V") in ("/Off", "", None) for v in fields.values()), form


def test_pypdf_fills_and_reads_back(layouts):
    for form, (layout, _) in layouts.items():
        box = layout["boxes"][-1]
        zone = next(z for z in layout["zones"] if z["kind"] == "text")
        writer = PdfWriter(clone_from=io.BytesIO(committed(form)))
        writer.update_page_form_field_values(
            None, {F.field_name(box): "/Yes", zone["path"]: "Écrit à Arras (62)"}, auto_regenerate=False)
        out = io.BytesIO()
        writer.write(out)
        fields = terminal_fields(out.getvalue())
        assert fields[F.field_name(box)]["/V"] == "/Yes", form
        assert fields[zone["path"]]["/V"] == "Écrit à Arras (62)", form
        ticked = [k for k, v in fields.items() if v.get("/V") == "/Yes"]
        assert ticked == [F.field_name(box)], form


def _xfdf(values: dict[str, str]) -> str:
    tree: dict = {}
    for name, value in values.items():
        node = tree
        parts = name.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value

    def emit(node: dict) -> str:
        out = ""
        for k, v in node.items():
            inner = emit(v) if isinstance(v, dict) else f"<value>{escape(v)}</value>"
            out += f"<field name={quoteattr(k)}>{inner}</field>"
        return out

    return ('<?xml version="1.0" encoding="UTF-8"?>\n<xfdf xmlns="http://ns.adobe.com/xfdf/" '
            f'xml:space="preserve"><fields>{emit(tree)}</fields></xfdf>\n')


@needs_pdftk
def test_pdftk_lists_fills_and_reads_back(layouts, tmp_path):
    layout, _ = layouts["fiche-liaison"]
    src = tmp_path / "fiche-liaison.pdf"
    src.write_bytes(committed("fiche-liaison"))
    dump = subprocess.run(["pdftk", str(src), "dump_data_fields_utf8"], capture_output=True,
                          text=True, check=True, timeout=120).stdout
    names = {line.split(": ", 1)[1] for line in dump.splitlines() if line.startswith("FieldName: ")}
    assert names == expected_names(layout)
    assert "suspension.motifs.refus_controle" in names and "signature_referent" not in names
    values = {"suspension.motifs.refus_controle": "Yes", "suspension.demandee": "Yes",
              "beneficiaire.nom": "Lefèvre", "signature_referent.date": "02/01/2025"}
    xfdf = tmp_path / "values.xfdf"
    xfdf.write_text(_xfdf(values), encoding="utf-8")
    out = tmp_path / "filled.pdf"
    subprocess.run(["pdftk", str(src), "fill_form", str(xfdf), "output", str(out)],
                   capture_output=True, check=True, timeout=120)
    fields = terminal_fields(out.read_bytes())
    assert fields["suspension.motifs.refus_controle"]["/V"] == "/Yes"
    assert fields["suspension.demandee"]["/V"] == "/Yes"
    assert fields["suspension.motifs.autres"]["/V"] == "/Off"
    assert fields["beneficiaire.nom"]["/V"] == "Lefèvre"
    assert fields["signature_referent.date"]["/V"] == "02/01/2025"


def test_prefilled_fillable_from_data(layouts, settings):
    layout, blank = layouts["fiche-liaison"]
    fd = catalogue.get("fiche-liaison")
    data = fd.model.model_validate({
        "mds": "MDS Arras", "beneficiaire": {"nom": "Lefèvre", "rsa_depuis": "2023-04-01"},
        "suspension": {"demandee": True, "motifs": ["refus_controle"]}}).model_dump(mode="json")
    stamped = stamp_pdf(blank, fd.id, layout["template_version"], "01J0000000000000000000000B")
    out = F.make_fillable(stamped, layout, form=fd.id, version=layout["template_version"],
                          document_id="01J0000000000000000000000B", data_dump=data)
    fields = terminal_fields(out)
    assert fields["suspension.motifs.refus_controle"]["/V"] == "/Yes"
    assert fields["suspension.motifs.autres"]["/V"] == "/Off"
    assert fields["beneficiaire.rsa_depuis"]["/V"] == "01/04/2023"
    assert fields["mds"]["/V"] == "MDS Arras"
    assert F.read_metadata(out)["document_id"] == "01J0000000000000000000000B"


def test_fillable_page_looks_like_the_print(layouts, tmp_path):
    """Rendered by poppler: a ticked field shows a cross in its box, an unticked one
    stays an empty square (the widget's own appearance, no reader regeneration)."""
    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm is not installed")
    import numpy as np
    from PIL import Image

    layout, _ = layouts["fiche-liaison"]
    box = next(b for b in layout["boxes"] if b["path"] == "suspension.motifs")
    other = next(b for b in layout["boxes"] if b["path"] == "suspension.motifs" and b is not box)
    writer = PdfWriter(clone_from=io.BytesIO(committed("fiche-liaison")))
    writer.update_page_form_field_values(None, {F.field_name(box): "/Yes"}, auto_regenerate=False)
    src = tmp_path / "f.pdf"
    writer.write(src)
    dpi = 150
    subprocess.run(["pdftoppm", "-r", str(dpi), "-f", str(box["page"]), "-l", str(box["page"]),
                    "-png", "-singlefile", str(src), str(tmp_path / "p")], check=True, timeout=120)
    img = np.asarray(Image.open(tmp_path / "p.png").convert("L"), dtype=float)

    def darkness(b):
        x0, top, x1, bottom = (int(round(v * dpi / 72)) for v in b["bbox"])
        inner = img[top + 3:bottom - 3, x0 + 3:x1 - 3]
        return float((inner < 128).mean())

    assert darkness(box) > 0.08 > 0.01 >= darkness(other)

"""The print style (issue 16), checked on real LibreOffice prints of every form: blank, with
its sample, and filled to every ``max_length`` (``render/template_print_check.py``).

The checks themselves are tested on prints made to fail (a 6 pt run in a template, a
word too long for its column), so that none of them passes by construction.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import pytest

from forms_service.catalogue import catalogue
from forms_service.config import Settings
from forms_service.render import layout as L
from forms_service.render import template_print_check as P
from forms_service.render.pipeline import render_docx, template_path, template_version
from forms_service.render.template_metrics import long_text
from forms_service.render.template_tables import longest_value
from forms_service.render.templates_pdf import template_forms
from forms_service.validation import validate

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = Settings.from_env({"var_dir": "var", "departement_logo": None}, environ={})
FORMS = [fd.id for fd in template_forms(SETTINGS)]
REFERENCES = [fd.id for fd in catalogue.forms() if fd.kind == "reference"]


@pytest.fixture(scope="module")
def pool(layout_pool):
    return layout_pool


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    return Settings.from_env({"var_dir": tmp_path_factory.mktemp("print-var"), "departement_logo": None},
                             environ={})


def _dump(fd, data: dict) -> tuple[dict, dict]:
    report = validate(fd, data)
    assert report.model_valid, report.problems
    return report.instance.model_dump(mode="python"), dict(report.derived)


def _print(fd, data: dict, settings, pool) -> bytes:
    dump, derived = _dump(fd, data)
    version = template_version(fd, settings)
    docx = render_docx(fd, dump, settings=settings, document_id="TEST", version=version,
                       derived=derived, for_pdf=True)
    return pool.convert(docx)


def max_length_data(fd) -> dict:
    """Every top-level text field at its ``max_length`` (lists left to their samples)."""
    data: dict = {}
    for f in fd.fields:
        if f.type == "text" and f.max_length and f.printed:
            node = data
            *head, last = f.path.split(".")
            for k in head:
                node = node.setdefault(k, {})
            node[last] = long_text(f.max_length)
    return data


@pytest.fixture(scope="module")
def blanks(pool, settings):
    return {form: L.build_layout_and_pdf(catalogue.get(form), settings=settings, pool=pool) for form in FORMS}


@pytest.mark.parametrize("form", FORMS)
def test_blank_print_passes_every_check(blanks, form):
    fd = catalogue.get(form)
    layout, pdf = blanks[form]
    assert P.check_print(fd, pdf, layout) == []


@pytest.mark.parametrize("form", FORMS)
def test_sample_print_passes_every_check(pool, settings, blanks, form):
    fd = catalogue.get(form)
    sample = json.loads((ROOT / "samples" / f"{form}.json").read_text())
    pdf = _print(fd, sample, settings, pool)
    problems = P.check_print(fd, pdf, None)
    assert problems == []


@pytest.mark.parametrize("form", [f for f in FORMS if catalogue.get(f).fixed_layout])
def test_fixed_forms_keep_their_pages_filled_to_every_max_length(pool, settings, form):
    fd = catalogue.get(form)
    pdf = _print(fd, max_length_data(fd), settings, pool)
    problems = P.check_print(fd, pdf, None)
    assert [p for p in problems if p.rule == "impression_nombre_de_pages"] == [], problems


@pytest.mark.parametrize("form", REFERENCES)
def test_reference_lists_print_legibly(pool, settings, form):
    fd = catalogue.get(form)
    docx = render_docx(fd, {}, settings=settings, document_id="TEST", version=template_version(fd, settings),
                       for_pdf=True)
    assert P.check_print(fd, pool.convert(docx), None) == []


def _longest_rows(fd, data: dict) -> dict:
    """``data`` with every row of its lists at the longest values their cells allow: each
    text at its ``max_length`` in long words, each code the one of its list's longest label."""
    from forms_service.catalogue import references
    for f in fd.fields:
        if f.type != "list" or not data.get(f.path):
            continue
        for row in data[f.path]:
            for c in f.item_fields:
                if c.type == "text" and c.max_length:
                    row[c.path] = long_text(c.max_length)
                elif c.type == "code" and c.options_from:
                    row[c.path] = longest_value(c).split(" – ")[0]
                    assert row[c.path] in references.by_code(c.options_from)
    return data


def _spot(item: dict) -> tuple:
    """Where a map puts a box (its square) or a zone (its page and bottom-right corner: a zone's
    left and top edges stop at the printed text next to it, values included)."""
    x0, top, x1, bottom = item["bbox"]
    return (item["page"], round(x0), round(top), round(x1), round(bottom)) if "value" in item \
        else (item["page"], round(x1), round(bottom))


@pytest.mark.parametrize("form", ["cers", "cerp"])
def test_list_rows_at_their_longest_values_keep_every_zone_where_the_blank_map_says(pool, settings, form):
    """Issue 16: a PAP row filled to every ``max_length`` grew from 22 to 28.3 mm (the
    organismes' 80 characters in a 17 mm column), so every row and zone under it left the
    blank's map. Every list row of the sample filled to its longest values (long words, the
    longest code label), printed, mapped: each box and zone is where the blank's map says."""
    fd = catalogue.get(form)
    data = _longest_rows(fd, json.loads((ROOT / "samples" / f"{form}.json").read_text()))
    dump, derived = _dump(fd, data)
    blank, _ = L.build_layout_and_pdf(fd, settings=settings, pool=pool, data_dump=dump)
    version = template_version(fd, settings)
    printed = pool.convert(render_docx(fd, dump, settings=settings, document_id="TEST", version=version,
                                       derived=derived, for_pdf=True))
    filled = L.layout_of_print(fd, printed, settings=settings, pool=pool, data_dump=dump, version=version)
    where = {(z["path"], z.get("value"), z["kind"] if "kind" in z else "box"): _spot(z)
             for z in blank["zones"] + blank["boxes"]}
    moved = [(key, spot, _spot(z)) for z in filled["zones"] + filled["boxes"]
             for key in [(z["path"], z.get("value"), z["kind"] if "kind" in z else "box")]
             for spot in [where.get(key)] if spot is None or any(abs(a - b) > 1 for a, b in zip(spot, _spot(z)))]
    assert len(filled["boxes"]) == len(blank["boxes"]) and len(filled["zones"]) == len(blank["zones"])
    assert moved == []


def test_docx_check_finds_a_list_row_too_low_for_its_longest_value(tmp_path):
    """``templates check``: the PAP's rows at 18 mm (the template's 22 mm edited in Word) no
    longer hold the engagements' 100 characters at their column's width."""
    fd = catalogue.get("cers")
    assert P.check_list_rows(fd, template_path(fd, SETTINGS)) == []
    out = tmp_path / "low.docx"
    twips = str(round(22 / 25.4 * 1440)).encode()
    with zipfile.ZipFile(template_path(fd, SETTINGS)) as zin, zipfile.ZipFile(out, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "word/document.xml":
                data = data.replace(b'w:val="' + twips + b'"', b'w:val="' + str(round(18 / 25.4 * 1440)).encode() + b'"')
            zout.writestr(item, data)
    problems = P.check_list_rows(fd, out)
    assert problems and {p.rule for p in problems} == {"impression_ligne_de_liste_trop_basse"}
    assert any("Engagements du référent" in p.message and "18.0" in p.message for p in problems), problems


def test_every_template_has_no_run_under_7_pt():
    for fd in catalogue.forms():
        assert P.check_docx(template_path(fd, SETTINGS)) == [], fd.id


def test_fiche_de_liaison_zones_are_the_seeds(blanks):
    """Room to write: the seed's lines where they fit (docs/printing.md lists the cuts),
    signatures at least 15 × 50 mm, the Président's included."""
    layout, _ = blanks["fiche-liaison"]
    fd = catalogue.get("fiche-liaison")
    zones = {z["path"]: z for z in layout["zones"]}
    for path in ("signature_referent", "signature_beneficiaire", "correspondant_avis.signature",
                 "ep.signature", "president.signature", "structure.signature"):
        x0, top, x1, bottom = zones[path]["bbox"]
        assert (bottom - top) / P.MM >= 15 - 0.2 and (x1 - x0) / P.MM >= 50, path
    assert fd.field("objet_detail").lines == 6
    assert fd.field("ep.avis_motive").lines >= 3 and fd.field("ep.avis_motive").max_length >= 150
    assert fd.field("structure.synthese").lines >= 3
    assert {z["page"] for z in layout["zones"] if z["path"].startswith(("president.", "structure."))} == {3}


def _words_of_page(pdf: bytes, page: int) -> list[tuple[str, float, float]]:
    import pymupdf
    return [(w[4], round(w[0], 1), round(w[1], 1)) for w in pymupdf.open(stream=pdf)[page - 1].get_text("words")]


def test_fiche_de_liaison_name_in_je_soussigne_moves_no_word(pool, settings):
    """Issue 16/17: the beneficiary's name in « Je soussigné(e), Madame, Monsieur … » has the
    rest of its line; the sentence resumes on the next line, so that no word of page 3 moves
    whatever the name that fits there (blank: the dotted line; short; about 30 letters)."""
    fd = catalogue.get("fiche-liaison")
    names = [{}, {"beneficiaire": {"prenom": "Li", "nom": "NG"}},
             {"beneficiaire": {"prenom": "Marie-Christine", "nom": "DE LA VILLARDIÈRE"}}]
    pages = []
    for data in names:
        printed = _words_of_page(_print(fd, data, settings, pool), 3)
        _, x_monsieur, y_line = next(w for w in printed if w[0] == "Monsieur")
        # the page without the name (the rest of its line) and the stamp's document id
        pages.append([w for w in printed if not (w[2] == y_line and w[1] > x_monsieur)
                      and not re.fullmatch(r"[0-9A-Z]{26}", w[0])])
    assert any(w[0] == "adhère" for w in pages[0])
    assert pages[1] == pages[0] and pages[2] == pages[0]


SAMPLES = [(fd_id, path.name) for fd_id in FORMS if catalogue.get(fd_id).fixed_layout
           for path in sorted((ROOT / "samples").glob(f"{fd_id}*.json"))]


@pytest.mark.parametrize("form,sample", SAMPLES)
def test_samples_read_with_the_blank_map_meet_no_label(pool, settings, blanks, form, sample):
    """A fixed-layout form's samples printed and read with the blank's map: no zone meets a
    label (721e6fa's page 3 failed here: « Fait le, » in the correspondant's observation)."""
    fd = catalogue.get(form)
    data = json.loads((ROOT / "samples" / sample).read_text())
    dump, _ = _dump(fd, data)
    layout, blank = blanks[form]
    assert P.labels_met_by_values(fd, _print(fd, data, settings, pool), layout, dump, blank) == []


# -- the checks fail when they should ---------------------------------------------

def test_docx_check_finds_a_small_run(tmp_path):
    src = template_path(catalogue.get("fiche-liaison"), SETTINGS)
    out = tmp_path / "small.docx"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(out, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "word/document.xml":   # the heading's run at 6 pt
                data = re.sub(rb'<w:sz w:val="\d+"/>((?:(?!<w:r>).)*?<w:t>PARTIE ADMINISTRATIVE)',
                              rb'<w:sz w:val="12"/>\1', data, count=1, flags=re.S)
            zout.writestr(item, data)
    problems = P.check_docx(out)
    assert [p.rule for p in problems] == ["impression_police_trop_petite"], problems
    assert "6 pt" in problems[0].message


def test_print_check_finds_broken_words_small_text_and_missing_pages(pool):
    """A DOCX made to fail: a label's word wider than its column, 6 pt text, 2 pages for a
    1-page form."""
    from docx import Document
    from docx.shared import Mm, Pt

    doc = Document()
    table = doc.add_table(rows=1, cols=2)
    table.autofit = False
    table.columns[0].width = table.rows[0].cells[0].width = Mm(12)
    run = table.rows[0].cells[0].paragraphs[0].add_run("Référent Solidarité/Professionnel")
    run.font.size = Pt(9)
    tiny = doc.add_paragraph().add_run("Texte minuscule")
    tiny.font.size = Pt(6)
    buf = io.BytesIO()
    doc.save(buf)
    pdf = pool.convert(buf.getvalue())
    fd = catalogue.get("annexe-3")   # fixed layout, 1 page: its vocabulary has no such words
    fiche = catalogue.get("fiche-liaison")
    rules = [p.rule for p in P.check_print(fiche, pdf, None)]
    assert "impression_mot_coupe" in rules
    assert "impression_police_trop_petite" in rules
    assert "impression_nombre_de_pages" in rules      # 1 page, 3 expected
    assert "impression_nombre_de_pages" not in [p.rule for p in P.check_print(fd, pdf, None)]


def test_print_check_finds_an_empty_page(pool, settings):
    """The CERP once printed a last page with nothing but its header (issue 16's revert)."""
    import pypdf

    fd = catalogue.get("cerp")
    pdf = _print(fd, json.loads((ROOT / "samples" / "cerp.json").read_text()), settings, pool)
    assert "impression_page_vide" not in {p.rule for p in P.check_print(fd, pdf, None)}
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(pdf)))
    writer.add_blank_page()
    out = io.BytesIO()
    writer.write(out)
    problems = [p for p in P.check_print(fd, out.getvalue(), None) if p.rule == "impression_page_vide"]
    assert len(problems) == 1 and "Page 6" in problems[0].message, problems


# -- the CERs' lists (issue 16: the seed's numbered columns, rows that grow) ---------

W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


def _row_heights(docx_path) -> list[tuple[str, int]]:
    """(hRule, height in twips) of every table row of a DOCX that has a height."""
    from docx import Document

    out = []
    for table in Document(docx_path).tables:
        for row in table.rows:
            h = row._tr.find(f".//{W}trHeight")
            if h is not None:
                out.append((h.get(f"{W}hRule") or "atLeast", int(h.get(f"{W}val"))))
    return out


def test_fiche_de_suivi_emploi_prints_the_seeds_six_numbered_columns(blanks):
    """Seed 002: « Colonne 1 … 6 », the motif in column 5 with the résultat; a refused offer
    in column 2, beside « raisonnable » (the law counts refused reasonable offers). The
    data keeps its eight fields and codes."""
    from docx import Document

    layout, _ = blanks["cerp"]
    fd = catalogue.get("cerp")
    assert [c.path for c in fd.field("offres").item_fields] == [
        "offre", "raisonnable", "domaine", "moyens", "resultat", "motif", "bilan", "refusee"]
    table = next(t for t in Document(template_path(fd, SETTINGS)).tables
                 if t.rows[0].cells[0].text.startswith("Bilan complémentaire"))
    assert [c.text for c in table.rows[1].cells] == ["1. Offre(s) d'emploi proposée(s)", "2. Offre considérée comme raisonnable",
                "3. Domaine d'activité de l'offre proposée", "4. Moyens mobilisés",
                "5. Résultat et motif (si partiellement atteint ou non atteint)",
                "6. Bilans – commentaires"]
    boxes = {(b["path"], b["value"]): b["bbox"] for b in layout["boxes"]}
    zones = {z["path"]: z["bbox"] for z in layout["zones"]}
    # column 2: the refusal's box under « Oui / Non », same left edge
    assert abs(boxes[("offres.0.refusee", True)][0] - boxes[("offres.0.raisonnable", "oui")][0]) < 0.5
    assert boxes[("offres.0.refusee", True)][1] > boxes[("offres.0.raisonnable", "non")][3]
    # column 5: the motif's zone under the résultat's boxes, in their column
    motif, res = zones["offres.0.motif"], boxes[("offres.0.resultat", "non_atteint")]
    assert motif[0] < res[0] < motif[2] and motif[1] > res[3]
    assert (motif[3] - motif[1]) / P.MM >= P.MIN_LINE_MM * (next(c for c in fd.field("offres").item_fields if c.path == "motif").lines - 1)


def test_list_columns_hold_every_field_of_the_list_once():
    from forms_service.catalogue.print_layout import parse_layout

    fd = catalogue.get("cerp")
    fields = {f.path: f for f in fd.fields}
    raw = {"list_columns": {"offres": [{"fields": ["offre", "raisonnable"]}]}}
    with pytest.raises(ValueError, match="list_columns.offres must hold each printed field"):
        parse_layout("cerp", raw, [s.id for s in fd.sections], fields)
    raw = {"list_columns": {"offres": [{"fields": [c.path]} for c in fd.field("offres").item_fields]
                            + [{"fields": ["offre"]}]}}
    with pytest.raises(ValueError, match="once"):
        parse_layout("cerp", raw, [s.id for s in fd.sections], fields)


def test_list_rows_are_at_least_their_blank_height():
    """No row of a template has an exact height: a text typed in Word past its row makes the
    row grow instead of being hidden (the blank keeps its height: see the next test)."""
    for fd in catalogue.forms():
        rules = {rule for rule, _ in _row_heights(template_path(fd, SETTINGS))}
        assert "exact" not in rules, fd.id


def test_text_typed_past_a_list_row_is_printed_and_the_blank_keeps_its_rows(pool, settings, blanks):
    """The CERP's fiche de suivi emploi: the blank's rows are their template height (the
    layout map's), and a DOCX edited in Word with more lines than a row holds prints them
    all, the row taller."""
    from docx import Document

    layout, _ = blanks["cerp"]
    rows = sorted(h for rule, h in _row_heights(template_path(catalogue.get("cerp"), SETTINGS)))
    tops = [b["bbox"][1] for b in layout["boxes"] if b["path"].startswith("offres.")
            and b["path"].endswith(".refusee") and b["page"] == 4]
    steps = [b - a for a, b in zip(tops, tops[1:])]
    assert len(tops) == 6 and max(steps) - min(steps) < 0.3, tops
    assert any(abs(steps[0] / P.MM * 1440 / 25.4 - h) < 15 for h in rows), (steps, rows)

    fd = catalogue.get("cerp")
    sample = json.loads((ROOT / "samples" / "cerp.json").read_text())
    dump, derived = _dump(fd, sample)
    docx = render_docx(fd, dump, settings=settings, document_id="TEST",
                       version=template_version(fd, settings), derived=derived, for_pdf=True)
    doc = Document(io.BytesIO(docx))
    cell = next(c for t in doc.tables for r in t.rows for c in r.cells
                if c.text.startswith("Mission commencée le"))   # the first offer's bilan
    for i in range(1, 16):
        cell.add_paragraph(f"Ligne ajoutée {i}")
    buf = io.BytesIO()
    doc.save(buf)
    import pdfplumber

    with pdfplumber.open(io.BytesIO(pool.convert(buf.getvalue()))) as pdf:
        text = " ".join(p.extract_text() or "" for p in pdf.pages)
    assert "Ligne ajoutée 15" in text


@pytest.mark.parametrize("form", ["cers", "cerp"])
def test_flowing_forms_filled_to_every_max_length_print_no_empty_page(pool, settings, form):
    """The CERS with its sample and every top-level text at its max_length printed an empty
    2nd page: page 1 ended 6.5 mm above its margin and the PAP's page break, a paragraph
    a line of body text high, went to page 2 and broke it."""
    fd = catalogue.get(form)
    data = json.loads((ROOT / "samples" / f"{form}.json").read_text())
    for key, value in max_length_data(fd).items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key].update(value)
        else:
            data[key] = value
    problems = P.check_print(fd, _print(fd, data, settings, pool), None)
    assert [p for p in problems if p.rule == "impression_page_vide"] == [], problems


def test_zone_check_finds_a_zone_on_a_label(pool, settings, blanks):
    """The blank's zones moved onto labels, and a filled print whose data moves page 3 (a
    name too long for the rest of its line pushes the beneficiary's sentence down a line):
    both are found, with the page, the field and the label met."""
    import copy

    import pdfplumber
    fd = catalogue.get("fiche-liaison")
    layout, blank = blanks["fiche-liaison"]
    moved = copy.deepcopy(layout)
    z = next(z for z in moved["zones"] if z["path"] == "correspondant_avis.observation")
    height = z["bbox"][3] - z["bbox"][1]
    z["bbox"][1] += height * 0.5
    z["bbox"][3] += height * 0.5       # its lower half on « Fait le, »
    with pdfplumber.open(io.BytesIO(blank)) as pdf:
        problems = P._zones_on_labels(fd, pdf, moved)
    assert [(p.rule, p.path) for p in problems] == [("impression_zone_sur_libelle", "correspondant_avis.observation")]
    assert "Page 3" in problems[0].message and "Fait" in problems[0].message
    long_name = {"beneficiaire": {"prenom": "Marie-Christine Alexandrine", "nom": "DE LA VILLARDIÈRE-MONTMORENCY"}}
    dump, _ = _dump(fd, long_name)
    problems = P.labels_met_by_values(fd, _print(fd, long_name, settings, pool), layout, dump, blank)
    assert "signature_beneficiaire.lieu" in {p.path for p in problems}, problems


def test_footnote_calls_are_printed_after_their_labels_not_inside_them():
    """Issue 16: the seed's calls « (1) » … « (3) » point at the fiche's footnotes; they are an
    attribute of the option (``footnote: 1``), printed after its label, so that the label
    stays the spec's."""
    from docx import Document

    for fd in catalogue.forms():
        for f in fd.fields:
            for o in f.options or ():
                assert not re.search(r"\(\d\)", o.label), (fd.id, f.path, o.label)
    fd = catalogue.get("fiche-liaison")
    calls = {(f.path, o.code): o.extra["footnote"] for f in fd.fields for o in f.options or ()
             if "footnote" in o.extra}
    assert calls == {("reorientation.vers", "emploi"): 1, ("reorientation.vers", "solidarite"): 1,
                     ("suspension.motifs", "non_signature_contrat"): 2,
                     ("actions_cg", "ip_cui_non_marchand"): 3}, calls
    text = " ".join(" ".join(p.text.split()) for t in Document(template_path(fd, SETTINGS)).tables
                    for row in t.rows for c in row.cells for p in c.paragraphs)
    for printed in ("Emploi (1)", "Solidarité (1)", "Contrat d'engagement (2)",
                    "Contrat Unique d'Insertion non Marchand (3)"):
        assert printed in text, printed


def test_fiche_de_liaison_page_3_has_room_to_spare_filled_to_every_max_length(pool, settings):
    """Issue 16: page 3 ended 0.1 mm above its bottom margin when filled to every max_length,
    so that any growth sent the fiche to a 4th page. The wider side of each pair (the
    beneficiary's statement, the structure's options) gives it real room: 3 mm at least."""
    import pdfplumber

    from forms_service.render import geometry

    fd = catalogue.get("fiche-liaison")
    pdf = _print(fd, max_length_data(fd), settings, pool)
    with pdfplumber.open(io.BytesIO(pdf)) as doc:
        assert len(doc.pages) == 3
        page = doc.pages[2]
        margin = page.height - geometry.MARGINS.bottom
        inked = [o["bottom"] for o in page.chars + page.lines + page.rects if o["bottom"] < margin + 2 * P.MM]
    spare = (margin - max(inked)) / P.MM
    assert spare >= 3.0, f"page 3 ends {spare:.1f} mm above its margin"

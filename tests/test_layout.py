"""The layout map, derived from real LibreOffice renders (no mocks).

One LibreOffice pool for the test session (shared with ``test_fillable.py`` through
``forms_service.render.pdf.get_pool``'s registry); the maps of every form are built
once per session. Tests that need LibreOffice are skipped, with the reason, only
when ``soffice`` is not installed.

Positions are checked with pypdfium2's *tight* glyph boxes, an independent measure
of where each ☐/☒ was inked (the map reads the font's outline box instead).
"""

from __future__ import annotations

import datetime as dt
import io
import threading
import time

import pypdfium2 as pdfium
import pytest

from forms_service.catalogue import catalogue
from forms_service.config import Settings
from forms_service.errors import TemplateError
from forms_service.render import layout as L
from forms_service.render import layout_analysis
from forms_service.render.context import Mark
from forms_service.render.pipeline import render_docx, template_version

_PDFIUM = threading.Lock()   # pypdfium2 is not thread-safe
TOL = 0.35                   # points


def default_settings(tmp) -> Settings:
    """The repository's templates with the default configuration (not the environment's)."""
    return Settings.from_env({"var_dir": tmp, "departement_logo": None}, environ={})


@pytest.fixture(scope="session")
def pool(layout_pool):
    return layout_pool


@pytest.fixture(scope="session")
def settings(tmp_path_factory):
    return default_settings(tmp_path_factory.mktemp("layout-settings"))


def form_ids(settings_=None) -> list[str]:
    from forms_service.render.templates_pdf import template_forms
    return [fd.id for fd in template_forms(settings_ or default_settings("var"))]


@pytest.fixture(scope="session")
def built(pool, settings):
    """``{form: (layout, blank_pdf)}`` for every form with a template."""
    out = {}
    for form in form_ids(settings):
        out[form] = L.build_layout_and_pdf(catalogue.get(form), settings=settings, pool=pool)
    return out


def glyph_boxes(pdf: bytes, chars: str = "\u2610\u2612") -> list[tuple[int, str, tuple]]:
    """(page, char, tight ink bbox top-left origin) of every box glyph, by pypdfium2."""
    out = []
    with _PDFIUM:
        doc = pdfium.PdfDocument(pdf)
        try:
            for i in range(len(doc)):
                page = doc[i]
                height = page.get_height()
                tp = page.get_textpage()
                for k in range(tp.count_chars()):
                    c = tp.get_text_range(k, 1)
                    if c in chars:
                        left, bottom, right, top = tp.get_charbox(k)
                        out.append((i + 1, c, (left, height - top, right, height - bottom)))
        finally:
            doc.close()
    return out


def same_box(a, b, tol=TOL) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b))


def data_with_boxes(fd, option_index: int) -> dict:
    """The model's blank dump with option ``option_index`` of every one/multi-choice box
    field ticked, and every bool box when the index is even."""
    data = fd.model().model_dump(mode="python")
    for f in fd.fields:
        if f.type in ("choice", "multi") and f.options and f.printed:
            code = f.options[option_index % len(f.options)].code
            L._set(data, f.path, [code] if f.type == "multi" else code)
        elif f.type == "bool" and f.printed:
            L._set(data, f.path, option_index % 2 == 0)
    return fd.model.model_validate(data).model_dump(mode="python")


# ----------------------------------------------------------------- without LibreOffice

def test_markers_found_by_position_not_content_order():
    def ch(text, x, base=700.0):
        return {"text": text, "x0": x, "x1": x + 3, "top": 841.9 - base - 8, "bottom": 841.9 - base,
                "matrix": (1, 0, 0, 1, x, base), "y0": base}
    # LibreOffice writes a line font by font: the digits before the brackets.
    chars = [ch("1", 13), ch("2", 16), ch("A", 2), ch("\u27e6", 10), ch("\u27e7", 19),
             ch("\u27e6", 30, 650), ch("7", 33, 650), ch("\u27e7", 36, 650)]
    found = layout_analysis._markers(chars)
    assert set(found) == {12, 7}
    assert found[12][0]["x0"] == 10 and found[12][1] == {0, 1, 3, 4}


def test_row_counts_and_probe_data_keep_rows_blank():
    list_forms = [fd for fd in catalogue.forms() if fd.kind == "form" and L.list_fields(fd)]
    if not list_forms:
        pytest.skip("no form with a list in the catalogue")
    fd = list_forms[0]
    path = L.list_fields(fd)[0]
    data = fd.model().model_dump(mode="python")
    row = {c.name: ("x" if c.type == "text" else None) for c in fd.field(path).item_fields}
    L._set(data, path, [dict(row), dict(row), dict(row)])
    assert L.row_counts(fd, data)[path] == 3
    assert L.row_counts(fd, None)[path] == 0
    probe = L.probe_data(fd, data)
    rows = L._get(probe, path)
    assert len(rows) == 3 and all(v in (None, False, []) for r in rows for v in r.values())


def test_checked_boxes_follows_the_box_filter():
    fd = catalogue.get("fiche-liaison")
    layout = {"boxes": [
        {"path": "suspension.motifs", "value": "autres"},
        {"path": "suspension.motifs", "value": "refus_controle"},
        {"path": "suspension.demandee", "value": True},
        {"path": "referent.type", "value": "solidarite"}]}
    data = {"suspension": {"demandee": True, "motifs": ["autres"]}, "referent": {"type": "professionnel"}}
    assert [(b["path"], b["value"]) for b in L.checked_boxes(fd, layout, data)] == [
        ("suspension.motifs", "autres"), ("suspension.demandee", True)]


# ----------------------------------------------------------------- with LibreOffice

def test_every_form_with_a_template_has_a_map(built, settings):
    assert "fiche-liaison" in built
    for form, (layout, _) in built.items():
        assert layout["form"] == form
        assert layout["template_version"] == template_version(catalogue.get(form), settings)
        assert layout["boxes"], form


def test_every_mapped_box_holds_its_printed_glyph(built):
    for form, (layout, pdf) in built.items():
        printed = glyph_boxes(pdf)
        assert len(printed) == len(layout["boxes"]), form
        for box, (page, char, ink) in zip(layout["boxes"], printed):
            assert char == "\u2610", (form, box["path"])   # blank print: nothing ticked
            assert box["page"] == page and same_box(box["bbox"], ink), (form, box, ink)
            x0, top, x1, bottom = box["bbox"]
            assert 8 < x1 - x0 < 14 and 8 < bottom - top < 14, (form, box)


def test_box_entries_are_complete_and_labelled(built):
    for form, (layout, _) in built.items():
        fd = catalogue.get(form)
        seen = set()
        for b in layout["boxes"]:
            f = fd.field(b["path"])
            assert f is not None and f.type in ("bool", "choice", "multi"), (form, b)
            if f.type == "bool":
                assert b["value"] is True and b["label"] == f.label
            else:
                assert b["value"] in f.codes and b["label"] == f.option(b["value"]).label
            seen.add((b["path"], b["value"]))
        assert len(seen) == len(layout["boxes"]), form   # no box mapped twice


@pytest.mark.parametrize("form", ["fiche-liaison", "annexe-3"])
@pytest.mark.parametrize("option_index", [0, 1, -1])
def test_ticked_render_lands_on_the_mapped_boxes(built, pool, settings, form, option_index):
    """The order assumption: the i-th glyph is the i-th box mark. A real render with
    boxes ticked prints ☒ exactly where the map puts the ticked codes (each field has
    exactly one ticked option, so a swap inside a field would show)."""
    if form not in built:
        pytest.skip(f"no template for {form}")
    layout, _ = built[form]
    fd = catalogue.get(form)
    data = data_with_boxes(fd, option_index)
    pdf = pool.convert(render_docx(fd, data, settings=settings, document_id="T",
                                   version=layout["template_version"], for_pdf=True))
    ticked = [(p, ink) for p, c, ink in glyph_boxes(pdf) if c == "\u2612"]
    expected = L.checked_boxes(fd, layout, data)
    assert len(expected) >= 5
    assert len(ticked) == len(expected)
    for (page, ink), box in zip(ticked, expected):
        assert page == box["page"] and same_box(ink, box["bbox"]), (box, ink)


def test_fiche_liaison_signature_zones_on_page_3(built):
    layout, _ = built["fiche-liaison"]
    zones = {z["path"]: z for z in layout["zones"]}
    for path in ("signature_referent", "signature_beneficiaire"):
        z = zones[path]
        assert z["kind"] == "signature" and z["page"] == 3
        x0, top, x1, bottom = z["bbox"]
        assert x1 - x0 > 60 and bottom - top > 10, z
    a, b = zones["signature_referent"]["bbox"], zones["signature_beneficiaire"]["bbox"]
    assert a[2] <= b[0] or b[2] <= a[0]   # side by side, apart
    assert zones["signature_referent.lieu"]["kind"] == "text"


def test_zones_hold_no_label_and_overlap_nothing(built):
    """A zone is where the value goes: no other zone or box overlaps it, and a text zone
    holds no printed character (a signature zone may take its whole cell, label
    included, when the label leaves no room: the scan reader compares with the blank)."""
    import pdfplumber

    for form, (layout, pdf) in built.items():
        with pdfplumber.open(io.BytesIO(pdf)) as doc:
            chars = {p.page_number: [c for c in p.chars if c["text"].strip()] for p in doc.pages}
        items = layout["zones"] + layout["boxes"]
        for z in layout["zones"]:
            x0, top, x1, bottom = z["bbox"]
            assert x1 - x0 >= 15 and bottom - top >= 6, (form, z)
            inside = [c["text"] for c in chars[z["page"]]
                      if x0 < (c["x0"] + c["x1"]) / 2 < x1 and top < (c["top"] + c["bottom"]) / 2 < bottom]
            assert z["kind"] == "signature" or not inside, (form, z["path"], "".join(inside))
            for other in items:
                if other is z or other["page"] != z["page"]:
                    continue
                o = other["bbox"]
                assert min(x1, o[2]) - max(x0, o[0]) <= 1 or min(bottom, o[3]) - max(top, o[1]) <= 1, \
                    (form, z["path"], other["path"])


def test_every_printed_text_field_has_a_zone(built):
    for form, (layout, _) in built.items():
        fd = catalogue.get(form)
        zone_paths = {z["path"] for z in layout["zones"]}
        for f in fd.fields:
            if not f.printed or f.type in ("bool", "choice", "multi", "tri", "list"):
                continue
            assert f.path in zone_paths, (form, f.path)


def test_pages_numbered_and_sized(built):
    for form, (layout, pdf) in built.items():
        fd = catalogue.get(form)
        with _PDFIUM:
            doc = pdfium.PdfDocument(pdf)
            n = len(doc)
            doc.close()
        assert [p["number"] for p in layout["pages"]] == list(range(1, n + 1)), form
        if fd.pages:
            assert n == fd.pages, form
        for p in layout["pages"]:
            assert p == {"number": p["number"], "width": 595.3, "height": 841.9}, form
        for item in layout["boxes"] + layout["zones"]:
            x0, top, x1, bottom = item["bbox"]
            assert 1 <= item["page"] <= n and 0 <= x0 < x1 <= 595.3 and 0 <= top < bottom <= 841.9


def test_list_rows_get_indexed_paths(built, pool, settings):
    list_forms = [f for f in built if L.list_fields(catalogue.get(f))]
    if not list_forms:
        pytest.skip("no form with a list has a template yet")
    fd = catalogue.get(list_forms[0])
    layout, _ = built[fd.id]
    for path, n in layout["rows"].items():
        f = fd.field(path)
        assert n >= max(f.min_rows, 1), path
        cols = {c.path for c in f.item_fields if c.printed and c.type not in ("bool", "choice", "multi")}
        for i in range(n):
            for col in cols:
                assert any(z["path"] == f"{path}.{i}.{col}" for z in layout["zones"]), (path, i, col)


def test_box_count_mismatch_is_a_template_error(pool, settings):
    fd = catalogue.get("fiche-liaison")
    version = template_version(fd, settings)
    docx, marks = L.render_probe(fd, settings=settings, version=version)
    pdf = pool.convert(docx)
    with pytest.raises(TemplateError) as info:
        L.analyse_pdf(pdf, marks + [Mark("box", "objet", "autre")], fd, version)
    assert info.value.problems[0].rule == "carte_cases_incoherente"
    assert "☐" in info.value.message


def test_layout_for_caches_and_stores_the_blank_map(pool, settings, tmp_path, monkeypatch):
    from forms_service import db

    url = f"sqlite:///{tmp_path / 'forms.db'}"
    db.upgrade(url)
    database = db.Database(url)
    fd = catalogue.get("fiche-liaison")
    L.clear_cache()
    try:
        with database.session() as s:
            layout = L.blank_layout(fd, settings, pool, session=s)
        with database.session() as s:
            row = s.get(db.TemplateVersion, (fd.id, layout["template_version"]))
            assert row is not None and row.layout == layout and len(row.template_sha) == 64

        def no_build(*a, **k):
            raise AssertionError("built again")

        monkeypatch.setattr(L, "build_layout_and_pdf", no_build)
        # the process cache, then the database after the cache is cleared
        assert L.layout_for(fd, settings=settings, pool=pool) == layout
        L.clear_cache()
        with database.session() as s:
            assert L.layout_for(fd, settings=settings, pool=pool, session=s) == layout
        # a stored map is never replaced, and rows are never deleted
        with database.session() as s:
            assert L.save_layout(s, fd, layout["template_version"], {"other": 1}, "0" * 64) is False
            assert L.save_layout(s, fd, "0123456789ab", {"old": 1}, "1" * 64) is True
        with database.session() as s:
            assert L.stored_layout(s, fd.id, layout["template_version"]) == layout
            assert L.stored_layout(s, fd.id, "0123456789ab") == {"old": 1}
    finally:
        L.clear_cache()
        database.dispose()


def test_layout_for_shares_maps_between_row_counts_that_print_alike(pool, settings, built):
    list_forms = [f for f in built if L.list_fields(catalogue.get(f))]
    if not list_forms:
        pytest.skip("no form with a list has a template yet")
    fd = catalogue.get(list_forms[0])
    path = L.list_fields(fd)[0]
    L.clear_cache()
    try:
        blank = L.layout_for(fd, settings=settings, pool=pool)
        data = fd.model().model_dump(mode="python")
        row = {c.name: None for c in fd.field(path).item_fields}
        L._set(data, path, [dict(row)])
        t0 = time.perf_counter()
        one_row = L.layout_for(fd, settings=settings, pool=pool, data_dump=data)
        assert one_row == blank   # one row prints the same padded page of rows
        assert time.perf_counter() - t0 < 2   # no conversion
        rows_per_page = fd.field(path).rows_per_page or 8
        L._set(data, path, [dict(row) for _ in range(blank["rows"][path] + 1)])
        longer = L.layout_for(fd, settings=settings, pool=pool, data_dump=data)
        assert longer["rows"][path] == blank["rows"][path] + rows_per_page
        assert any(z["path"].startswith(f"{path}.{blank['rows'][path]}.") for z in longer["zones"])
    finally:
        L.clear_cache()


@pytest.mark.parametrize("form", ["fiche-liaison", "annexe-3"])
def test_map_of_a_print_with_values_follows_its_rows(built, pool, settings, form):
    """Values can make rows taller than on the blank form (a value larger than its
    label); the map of that very print (``layout_of_print``) still puts every box on
    its glyph and every ticked box on a ☒."""
    if form not in built:
        pytest.skip(f"no template for {form}")
    fd = catalogue.get(form)
    data = data_with_boxes(fd, 1)
    for f in fd.fields:
        if f.printed and f.type == "text":
            L._set(data, f.path, "Valeur écrite"[: f.max_length or 20])
        elif f.printed and f.type == "date":
            L._set(data, f.path, dt.date(2024, 1, 2))
    data = fd.model.model_validate(data).model_dump(mode="python")
    version = template_version(fd, settings)
    printed = pool.convert(render_docx(fd, data, settings=settings, document_id="T", version=version,
                                       for_pdf=True))
    layout = L.layout_of_print(fd, printed, settings=settings, pool=pool, data_dump=data)
    glyphs = glyph_boxes(printed)
    ticked = {(b["path"], b["value"]) for b in L.checked_boxes(fd, layout, data)}
    assert len(glyphs) == len(layout["boxes"]) and ticked
    for box, (page, char, ink) in zip(layout["boxes"], glyphs):
        assert box["page"] == page and same_box(box["bbox"], ink), (box, ink)
        assert (char == "\u2612") == ((box["path"], box["value"]) in ticked), box
    assert {z["path"] for z in layout["zones"]} == {z["path"] for z in built[form][0]["zones"]}

"""The print checks: what a form designer would refuse, found on the template and its print.

Two levels:

- :func:`check_docx` reads a DOCX template (no render): every printed run at 7 pt or more
  (``sz`` ≥ 14 half-points), the Jinja tags and empty spacer runs aside. It runs in
  ``forms-service templates check``, so a Word edit that shrinks a text is caught at once.
  :func:`check_list_rows` (same command) reads each list's row: its height holds every cell's
  longest value at the column's width (``impression_ligne_de_liste_trop_basse``).
- :func:`check_print` reads a rendered, unstamped PDF and its layout map: the page count of a
  fixed-layout form, no character under 7 pt (the stamp's technical footer is not in it),
  signature zones of at least 15 × 50 mm, writing zones of at least the field's lines
  (``lines`` × ~6 mm, the label's line aside), no word broken inside a column, no label
  left at a page's foot without its field, no page more than half empty but the last
  (fixed-layout forms; a flowing form's long list starts on its own page), no text zone or
  box of the map on a printed label (the blank print's letters). :func:`labels_met_by_values`
  reads a *filled* print with its blank's map: no zone meets a label that the data moved
  (``templates check --print`` runs it on every sample in ``samples/``).
  The tests run it on every form, blank, with its sample and filled to every
  ``max_length`` (``tests/test_printing.py``); ``forms-service templates check --print``
  runs it on the blank forms (LibreOffice needed).

Problems are :class:`~forms_service.errors.Problem` (rule codes ``impression_*``, French).
"""

from __future__ import annotations

import io
import re
import unicodedata
import zipfile
from pathlib import Path

from ..catalogue import FormDefinition
from ..errors import Problem
from . import geometry
from .template_style import MIN_SIGNATURE_MM, MIN_SIGNATURE_WIDTH_MM, MIN_TEXT_PT

MM = 72 / 25.4
#: a handwriting line, as the checks require it (the style prints 6–7 mm)
MIN_LINE_MM = 5.8
_TAG = re.compile(r"\{[{%#].*?[}%#]\}")
_RUN = re.compile(r"<w:r>(.*?)</w:r>|<w:r [^>]*>(.*?)</w:r>", re.S)
_WORD = re.compile(r"[^\W\d_][\w'’-]*", re.U)


def _problem(rule: str, message: str, path: str = "") -> Problem:
    return Problem(path=path, rule=rule, message=message)


# -- the template ------------------------------------------------------------------

def check_docx(path: Path) -> list[Problem]:
    """Runs printed under 7 pt in a DOCX template (its body, headers and footers)."""
    problems = []
    with zipfile.ZipFile(path) as z:
        parts = [n for n in z.namelist() if re.fullmatch(r"word/(document|header\d*|footer\d*)\.xml", n)]
        for name in parts:
            xml = z.read(name).decode("utf-8")
            for m in _RUN.finditer(xml):
                run = m.group(1) or m.group(2) or ""
                size = re.search(r'<w:sz w:val="(\d+)"', run)
                text = "".join(re.findall(r"<w:t[^>]*>([^<]*)</w:t>", run))
                printed = _TAG.sub("", text).strip()
                if size and printed and int(size.group(1)) < 2 * MIN_TEXT_PT:
                    problems.append(_problem(
                        "impression_police_trop_petite",
                        f"Texte imprimé à {int(size.group(1)) / 2:g} pt (minimum {MIN_TEXT_PT:g} pt) : "
                        f"« {printed[:40]} »", name))
    return problems


_LIST_LOOP = re.compile(r"\{%p for chunk in ([\w.]+)\|pages")
_ROW_VALUE = re.compile(r"\{\{\s*row\.([\w.]+)(\|\w+)?\s*\}\}")


def _cell_mm(cell, item_fields: dict, width_mm: float) -> float:
    """What a list cell of a DOCX template takes, each value at the longest its field
    allows: a box's line (its label wrapped after the box), a value's lines, a label's."""
    from .template_metrics import box_hang_mm, line_pitch_mm, wrapped_lines
    from .template_tables import LIST_CELL_MARGIN_MM, longest_value

    mm = 0.0
    for para in cell.paragraphs:
        sizes = [r.font.size.pt for r in para.runs if r.font.size and _TAG.sub("", r.text).strip()]
        size = min(sizes, default=MIN_TEXT_PT)
        fmt = para.paragraph_format
        indent = (fmt.left_indent.mm if fmt.left_indent else 0.0)
        width = width_mm - 2 * LIST_CELL_MARGIN_MM - indent
        text = para.text
        value = _ROW_VALUE.search(text)
        if "|box" in text:
            label = _TAG.sub("", text).strip()
            hang = 0.0 if fmt.first_line_indent else box_hang_mm(14, size)   # no hanging indent
            lines = wrapped_lines(label, width - hang, size) if label else 1
            pitch = fmt.line_spacing.pt * 25.4 / 72 if fmt.line_spacing else line_pitch_mm(size)
            mm += max(lines, 1) * pitch
        elif value and value.group(1) in item_fields:
            f = item_fields[value.group(1)]
            mm += max(wrapped_lines(longest_value(f), width, size), 1) * line_pitch_mm(size)
        elif _TAG.sub("", text).strip():
            mm += wrapped_lines(_TAG.sub("", text).strip(), width, size) * line_pitch_mm(size)
    return mm


def check_list_rows(fd: FormDefinition, path: Path) -> list[Problem]:
    """Each list row of a DOCX template holds the longest value of every cell (texts at their
    ``max_length`` in long words, a code's longest label) at its column's width: a rendered
    value that makes its row taller moves the rows under it off the blank's layout map."""
    from docx import Document
    from docx.oxml.ns import qn
    from docx.table import Table

    from .template_tables import LIST_CELL_VMARGINS_MM

    doc = Document(str(path))
    problems, list_path = [], None
    for el in doc.element.body.iterchildren():
        if el.tag == qn("w:p"):
            m = _LIST_LOOP.search("".join(el.itertext()))
            list_path = m.group(1) if m else list_path
            continue
        if el.tag != qn("w:tbl") or not list_path:
            continue
        f, list_path = fd.field(list_path), None
        if f is None or f.type != "list":
            continue
        items = {c.path: c for c in f.item_fields}
        rows = Table(el, doc).rows
        loop = next((i for i, r in enumerate(rows) if "{%tr for row in" in "".join(r._tr.itertext())), None)
        if loop is None or loop + 1 >= len(rows):
            continue
        row = rows[loop + 1]
        height = row.height.mm if row.height is not None else 0.0
        for cell in row.cells:
            need = _cell_mm(cell, items, cell.width.mm if cell.width else 0.0) + LIST_CELL_VMARGINS_MM
            if need > height + 0.3:
                names = [items[m.group(1)].label for m in _ROW_VALUE.finditer(cell._tc.xml)
                         if m.group(1) in items]
                problems.append(_problem(
                    "impression_ligne_de_liste_trop_basse",
                    f"Liste « {f.label} », colonne « {(names or ['?'])[0]} » : sa valeur la plus longue "
                    f"demande {need:.1f} mm, la ligne en a {height:.1f}", f.path))
    return problems


# -- the print -----------------------------------------------------------------------

def _norm(text: str) -> str:
    text = unicodedata.normalize("NFC", text).replace("’", "'")
    return re.sub(r"\s+", " ", text).strip().lower()


def _vocabulary(fd: FormDefinition) -> set[str]:
    """Every word the form prints of its own (labels, options, titles, notes)."""
    texts = [fd.title, fd.intro or "", fd.printed_note or ""]
    for s in fd.sections:
        texts += [s.title, s.note or "", s.banner or ""]
    for f in fd.fields:
        fields = [f] + list(f.item_fields or ())
        for g in fields:
            texts.append(g.label)
            for o in g.options or ():
                texts += [o.label, *(o.group or "").split("|")]
    texts += list(fd.layout.statements.values())
    for columns in fd.layout.list_columns.values():
        for col in columns:
            texts += [col.heading or "", *col.labels.values()]
    words = set()
    for t in texts:
        words.update(w.lower() for w in _WORD.findall(t.replace("/", " ")))
    return words


def _lines(page) -> list[dict]:
    """Text lines of a pdfplumber page, each with its words."""
    return page.extract_text_lines(return_chars=False, keep_blank_chars=False)


def _broken_words(fd: FormDefinition, pdf) -> list[Problem]:
    """A word of the form's own text split over two lines of a column: the end of a line
    and the start of the next (same left edge) join into a word the form prints, while
    the second piece is no word of the form."""
    vocab = _vocabulary(fd)
    problems = []
    for number, page in enumerate(pdf.pages, 1):
        words = page.extract_words(keep_blank_chars=False, use_text_flow=False, x_tolerance=1.5)
        # rows of words by baseline, in reading order
        rows: dict[int, list] = {}
        for w in words:
            rows.setdefault(round(w["bottom"]), []).append(w)
        for w in words:
            tail = _WORD.findall(w["text"].replace("/", " "))
            if not tail or w["text"].endswith("-"):
                continue
            last = tail[-1]
            # the word starting the next line of the same column: just below, left edge of
            # the column (a line-start in the column whose top is within 1.6 lines)
            below = [v for v in words if 0 < v["top"] - w["top"] < 1.8 * (w["bottom"] - w["top"])
                     and v["x0"] < w["x0"] + 1 and v["x1"] > w["x0"] - 200]
            if not below:
                continue
            nxt = min(below, key=lambda v: (v["top"], v["x0"]))
            head = _WORD.findall(nxt["text"])
            if not head or nxt["text"][0].isupper() and len(head[0]) > 1:
                continue
            first = head[0]
            joined = (last + first).lower()
            if joined in vocab and first.lower() not in vocab and last.lower() not in vocab:
                problems.append(_problem(
                    "impression_mot_coupe",
                    f"Page {number} : mot coupé dans une colonne : « {last}/{first} »"))
    return problems


def _font_sizes(pdf) -> list[Problem]:
    footer_top = geometry.FOOTER_BOX[1] - 2
    small = {}
    for number, page in enumerate(pdf.pages, 1):
        for c in page.chars:
            if c["top"] >= footer_top or not c["text"].strip():
                continue
            if c["size"] < MIN_TEXT_PT - 0.05:
                small.setdefault(number, []).append(c)
    return [_problem("impression_police_trop_petite",
                     f"Page {n} : {len(cs)} caractère(s) sous {MIN_TEXT_PT:g} pt "
                     f"(« {''.join(c['text'] for c in cs[:30])} »)") for n, cs in small.items()]


def _zones(fd: FormDefinition, layout: dict) -> list[Problem]:
    problems = []
    for z in layout["zones"]:
        x0, top, x1, bottom = z["bbox"]
        h, w = (bottom - top) / MM, (x1 - x0) / MM
        if z["kind"] == "signature":
            if h < MIN_SIGNATURE_MM - 0.2 or w < MIN_SIGNATURE_WIDTH_MM:
                problems.append(_problem(
                    "impression_signature_trop_petite",
                    f"Zone de signature de {w:.0f} × {h:.1f} mm (minimum {MIN_SIGNATURE_WIDTH_MM:g} × "
                    f"{MIN_SIGNATURE_MM:g} mm)", z["path"]))
            continue
        f = fd.field(re.sub(r"\.\d+(?=\.|$)", "", z["path"]))
        if f is not None and f.type == "text" and f.lines > 1:
            need = MIN_LINE_MM * (f.lines - 1)      # the label takes part of the first line
            if h < need:
                problems.append(_problem(
                    "impression_zone_ecriture_trop_petite",
                    f"Zone d'écriture de {h:.1f} mm pour {f.lines} lignes (minimum {need:.0f} mm)", z["path"]))
    return problems


#: the glyphs of a box (a box's own ink is no label)
_BOX_GLYPHS = {"\u2610", "\u2612"}


def _overlap(a: tuple, b: tuple) -> tuple[float, float]:
    """Width and height of the intersection of two ``(x0, top, x1, bottom)`` boxes."""
    return min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])


def _zones_on_labels(fd: FormDefinition, pdf, layout: dict) -> list[Problem]:
    """Every text zone and box of the map meets no printed label of the (blank) print: a
    zone that covers a label's letters would read that label as its value (721e6fa's page 3:
    an empty observation read « Fait le, », an empty lieu « Signature du bénéficiaire »).
    A letter counts when more than half of it lies in the zone, both ways (a zone may touch
    the line of its label)."""
    problems = []
    items = [("zone", z) for z in layout["zones"]] + [("case", b) for b in layout["boxes"]]
    for number, page in enumerate(pdf.pages, 1):
        chars = [c for c in page.chars if c["text"].strip() and c["text"] not in _BOX_GLYPHS]
        if not chars:
            continue
        words = page.extract_words(keep_blank_chars=False, use_text_flow=False, x_tolerance=1.5)
        for kind, item in items:
            if item["page"] != number:
                continue
            hit = []
            for c in chars:
                w, h = _overlap(item["bbox"], (c["x0"], c["top"], c["x1"], c["bottom"]))
                if w > 0.5 * (c["x1"] - c["x0"]) and h > 0.5 * (c["bottom"] - c["top"]):
                    hit.append(c)
            if not hit:
                continue
            met = [wd["text"] for wd in words
                   if any(wd["x0"] - 0.1 <= c["x0"] and c["x1"] <= wd["x1"] + 0.1
                          and wd["top"] - 0.5 <= c["top"] <= wd["bottom"] for c in hit)]
            label = " ".join(met) or "".join(c["text"] for c in hit)
            what = "La case" if kind == "case" else "La zone"
            problems.append(_problem(
                "impression_zone_sur_libelle",
                f"Page {number} : {what} de « {item['path']} » couvre le libellé imprimé « {label[:60]} »",
                item["path"]))
    return problems


def _value_words(fd: FormDefinition, dump: dict) -> set[str]:
    """Every word a document's data prints (its values, dates as printed, its codes' labels)."""
    import datetime as dt

    words: set[str] = set()

    def walk(v):
        if isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, (list, tuple)):
            for x in v:
                walk(x)
        elif isinstance(v, (dt.date, dt.datetime)):
            words.add(v.strftime("%d/%m/%Y"))
        elif v not in (None, False, True):
            words.update(_norm(w) for w in str(v).split())
    walk(dump)
    for f in fd.fields:
        for o in f.options or ():
            words.update(_norm(w) for w in o.label.split())   # « code – label » of a code field
    return words


def labels_met_by_values(fd: FormDefinition, pdf_bytes: bytes, layout: dict, dump: dict,
                         blank_pdf: bytes) -> list[Problem]:
    """A filled print read with the map of its blank: no text zone meets a label. The words
    of the filled print inside a zone (a letter's centre in it, as the text reader takes
    them) are its value's; a word there that no value prints but the blank page prints is a
    label that the data moved into the zone (721e6fa's page 3: the beneficiary's name
    reflowed its sentence one line shorter, so the empty observation read « Fait le, », the
    empty lieu « Signature du bénéficiaire »)."""
    import pdfplumber

    values = _value_words(fd, dump)
    problems = []
    with pdfplumber.open(io.BytesIO(blank_pdf)) as blank, pdfplumber.open(io.BytesIO(pdf_bytes)) as pdf:
        blank_words = [{_norm(w["text"]) for w in p.extract_words()} for p in blank.pages]
        for number, page in enumerate(pdf.pages, 1):
            if number > len(blank_words):
                break
            words = page.extract_words(keep_blank_chars=False, use_text_flow=False, x_tolerance=1.5)
            for z in layout["zones"]:
                if z["page"] != number or z["kind"] != "text":
                    continue
                x0, top, x1, bottom = z["bbox"]
                met = [w["text"] for w in words
                       if x0 - 0.5 <= (w["x0"] + w["x1"]) / 2 <= x1 + 0.5
                       and top - 0.5 <= (w["top"] + w["bottom"]) / 2 <= bottom + 0.5
                       and _norm(w["text"]) not in values and _norm(w["text"]) in blank_words[number - 1]
                       and any(ch.isalnum() for ch in w["text"])]   # (« – » of « code – label »)
                if met:
                    problems.append(_problem(
                        "impression_zone_sur_libelle",
                        f"Page {number} : la zone de « {z['path']} » lit le libellé imprimé "
                        f"« {' '.join(met)[:60]} » (les données ont déplacé la page)", z["path"]))
    return problems


def _fill(pdf) -> list[Problem]:
    """No page but the last more than half empty."""
    problems = []
    top, bottom = geometry.MARGINS.top, geometry.PAGE_HEIGHT - geometry.MARGINS.bottom
    for number, page in enumerate(pdf.pages[:-1], 1):
        inked = [c["bottom"] for c in page.chars if top - 1 <= c["top"] <= bottom] + \
                [r["bottom"] for r in page.rects + page.lines if top - 1 <= r["top"] <= bottom]
        used = (max(inked) - top) / (bottom - top) if inked else 0
        if used < 0.5:
            problems.append(_problem("impression_page_a_moitie_vide",
                                     f"Page {number} remplie à {used:.0%} seulement (elle n'est pas la dernière)"))
    return problems


def _empty_pages(pdf) -> list[Problem]:
    """No page with nothing printed between its margins (any form: the CERP once printed a
    last page holding only the header and the stamp, which the scan reader could not place)."""
    top, bottom = geometry.MARGINS.top, geometry.PAGE_HEIGHT - geometry.MARGINS.bottom
    problems = []
    for number, page in enumerate(pdf.pages, 1):
        inked = [c for c in page.chars if top - 1 <= c["top"] <= bottom and c["text"].strip()] + \
                [r for r in page.rects + page.lines if top - 1 <= r["top"] <= bottom]
        if not inked:
            problems.append(_problem("impression_page_vide", f"Page {number} vide (rien n'y est imprimé)"))
    return problems


def _orphans(fd: FormDefinition, pdf, layout: dict) -> list[Problem]:
    """A label printed last on a page while its field's boxes and zones are all on the next."""
    pages_of: dict[str, set[int]] = {}
    for item in layout["boxes"] + layout["zones"]:
        base = re.sub(r"\.\d+(?=\.|$)", "", item["path"])
        pages_of.setdefault(base, set()).add(item["page"])
    labels = {}
    for s in fd.sections:
        for f in s.fields:
            if f.printed and f.label:
                labels.setdefault(_norm(f.label).rstrip(" :,"), []).append(f.path)
            if f.printed:
                labels.setdefault(_norm(s.title), []).append(f.path)
    problems = []
    bottom = geometry.PAGE_HEIGHT - geometry.MARGINS.bottom
    for number, page in enumerate(pdf.pages[:-1], 1):
        lines = [ln for ln in _lines(page) if geometry.MARGINS.top - 1 <= ln["top"] <= bottom]
        if not lines:
            continue
        last = max(lines, key=lambda ln: ln["bottom"])
        text = _norm(last["text"]).rstrip(" :,")
        for paths in (labels.get(text), ):
            if not paths:
                continue
            if all(number + 1 in pages_of.get(p, set()) and number not in pages_of.get(p, set())
                   for p in paths if p in pages_of) and any(p in pages_of for p in paths):
                problems.append(_problem("impression_libelle_orphelin",
                                         f"Page {number} : « {last['text'][:60]} » en bas de page, "
                                         "sans son champ (page suivante)", paths[0]))
    return problems


def check_print(fd: FormDefinition, pdf_bytes: bytes, layout: dict | None = None) -> list[Problem]:
    """The print problems of one rendered (unstamped) PDF of ``fd``; ``layout``: its map
    (zones, orphans), or None for a reference list."""
    import pdfplumber

    problems = []
    with pdfplumber.open(io.BytesIO(pdf_bytes)) as pdf:
        if fd.pages and fd.fixed_layout and len(pdf.pages) != fd.pages:
            problems.append(_problem("impression_nombre_de_pages",
                                     f"{len(pdf.pages)} page(s) imprimée(s), {fd.pages} attendue(s)"))
        problems += _font_sizes(pdf)
        problems += _broken_words(fd, pdf)
        problems += _empty_pages(pdf)
        if fd.fixed_layout:
            # a flowing form's long list starts on a page of its own (each page of rows
            # alike, docs/layout-map.md): the page before it may end short
            problems += _fill(pdf)
        if layout is not None:
            problems += _zones(fd, layout)
            problems += _zones_on_labels(fd, pdf, layout)
            problems += _orphans(fd, pdf, layout)
    return problems


SAMPLES_DIR = Path(__file__).resolve().parents[2] / "samples"


def check_samples(fd: FormDefinition, settings, pool) -> list[Problem]:
    """Each sample of ``fd`` (``samples/<form>*.json``) printed and read with the map of
    its blank (the same list rows): no zone meets a label (:func:`labels_met_by_values`)."""
    import json

    from . import layout as L
    from .pipeline import render_docx, template_version
    from ..validation import validate

    problems = []
    for path in sorted(SAMPLES_DIR.glob(f"{fd.id}*.json")):
        report = validate(fd, json.loads(path.read_text(encoding="utf-8")))
        if not report.model_valid:
            continue
        dump, derived = report.instance.model_dump(mode="python"), dict(report.derived)
        layout, blank = L.build_layout_and_pdf(fd, settings=settings, pool=pool, data_dump=dump)
        docx = render_docx(fd, dump, settings=settings, document_id="CHECK",
                           version=template_version(fd, settings), derived=derived, for_pdf=True)
        for p in labels_met_by_values(fd, pool.convert(docx), layout, dump, blank):
            problems.append(_problem(p.rule, f"{path.name} : {p.message}", p.path))
    return problems


def check_blank_prints(settings) -> dict[str, list[Problem]]:
    """``templates check --print``: every form's blank print (and its map) through
    :func:`check_print`, on a LibreOffice pool of its own, stopped at the end."""
    from ..catalogue import catalogue
    from . import layout as L
    from .pdf import ConverterPool
    from .pipeline import render_docx, template_version
    from .templates_pdf import template_forms

    out: dict[str, list[Problem]] = {}
    pool = ConverterPool(size=1, work_dir=Path(settings.var_dir) / "lo-check")
    pool.start()
    try:
        for fd in template_forms(settings):
            layout, pdf = L.build_layout_and_pdf(fd, settings=settings, pool=pool)
            out[fd.id] = check_print(fd, pdf, layout)
            out[fd.id] += check_samples(fd, settings, pool)
        for fd in catalogue.forms():
            if fd.kind == "reference":
                docx = render_docx(fd, {}, settings=settings, document_id="CHECK",
                                   version=template_version(fd, settings), for_pdf=True)
                out[fd.id] = check_print(fd, pool.convert(docx), None)
    finally:
        pool.close()
    return out

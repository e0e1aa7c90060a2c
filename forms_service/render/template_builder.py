"""Build each form's DOCX template from its definition (``forms-service templates build``).

The committed DOCX in ``templates/docx/`` is what the service reads; this
builder only writes a first version that follows the definition exactly, so
that a new field cannot be forgotten in the template. A département may then
edit the DOCX in Word or LibreOffice; ``forms-service templates check`` tells
it at once what an edit broke.

The layout is an administrative form's: boxed sections with a grey heading,
label/value cells with borders to write in, one ☐ per option in DejaVu Sans
(the only installed family with ☐/☒), fixed row heights where the paper must
not reflow. Tags are plain docxtpl/Jinja variables (``{{ beneficiaire.nom }}``,
``{{ objet|box('passage_ep') }}``) so that ``get_undeclared_template_variables``
sees the definition's own names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from docx import Document
from docx.enum.section import WD_ORIENT
from docx.enum.table import WD_ROW_HEIGHT_RULE, WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH, WD_BREAK, WD_LINE_SPACING
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Mm, Pt, RGBColor

from ..catalogue import FormDefinition, catalogue
from ..catalogue.definition import Field, Section
from . import geometry

BODY_FONT = "Calibri"        # Carlito (metric-compatible) on Debian, Calibri in Word
BOX_FONT = "DejaVu Sans"     # has ☐ U+2610 and ☒ U+2612
HEADING_FILL = "D9D9D9"
RESERVED_FILL = "EDEDED"
COLOURS = {"vert": "D8EFD3", "rose": "F9D9E6", "bleu": "D6E4F5"}
GRID = 12                    # section tables: 12 equal columns; cells span several
CONTENT_WIDTH_MM = 210 - geometry.MARGINS_MM.left - geometry.MARGINS_MM.right


class Style:
    """Sizes of one form's print; a dense form (the 3-page fiche) sets smaller ones."""

    def __init__(self, layout: dict):
        self.body = layout.get("font_size", 9.5)
        self.small = layout.get("small_size", self.body - 1.5)
        self.heading = layout.get("heading_size", self.body + 0.5)
        self.box = layout.get("box_size", 14)          # ☐ ink at 14 pt DejaVu Sans: 3.5 mm
        self.box_line = layout.get("box_line", self.box * 0.85)
        self.line_mm = layout.get("line_mm", 6.0)      # one handwriting line
        self.signature_mm = layout.get("signature_mm", 20)
        self.option_columns = layout.get("option_columns", 2)
        self.pair_fields = layout.get("pair_fields", True)
        self.label_width = layout.get("label_width", 0.2)   # share of the width for labels
        self.section_gap = layout.get("section_gap", 4)
        self.compact = set(layout.get("compact_sections") or ())
        # values in compact cells: small enough that a filled line is no taller than line_mm
        self.compact_value = layout.get("compact_value_size", self.body)
        self.list_row_mm = layout.get("list_row_mm", 18)
        self.compact_pair_max = layout.get("compact_pair_max", 24)   # longer texts get a row
        # lists that start on a new page: a list of paths, or True for every long list
        self.list_new_page = layout.get("list_new_page", True)


# -- low-level helpers on python-docx objects ---------------------------------

def _set_cell_fill(cell, fill: str) -> None:
    tc_pr = cell._tc.get_or_add_tcPr()
    shd = OxmlElement("w:shd")
    shd.set(qn("w:val"), "clear")
    shd.set(qn("w:color"), "auto")
    shd.set(qn("w:fill"), fill)
    tc_pr.append(shd)


def _set_table_borders(table, size: int = 4, color: str = "000000") -> None:
    tbl_pr = table._tbl.tblPr
    borders = OxmlElement("w:tblBorders")
    for edge in ("top", "left", "bottom", "right", "insideH", "insideV"):
        el = OxmlElement(f"w:{edge}")
        el.set(qn("w:val"), "single")
        el.set(qn("w:sz"), str(size))
        el.set(qn("w:space"), "0")
        el.set(qn("w:color"), color)
        borders.append(el)
    tbl_pr.append(borders)


def _set_cell_margins(table, top=20, bottom=20, left=60, right=60) -> None:
    tbl_pr = table._tbl.tblPr
    mar = OxmlElement("w:tblCellMar")
    for edge, val in (("top", top), ("left", left), ("bottom", bottom), ("right", right)):
        el = OxmlElement(f"w:{edge}")
        el.set(qn("w:w"), str(val))
        el.set(qn("w:type"), "dxa")
        mar.append(el)
    tbl_pr.append(mar)


def _no_split(row) -> None:
    tr_pr = row._tr.get_or_add_trPr()
    el = OxmlElement("w:cantSplit")
    tr_pr.append(el)


def _row_height(row, mm: float, exact: bool = False) -> None:
    row.height = Mm(mm)
    row.height_rule = WD_ROW_HEIGHT_RULE.EXACTLY if exact else WD_ROW_HEIGHT_RULE.AT_LEAST


def _fixed_widths(table, widths_mm: list[float]) -> None:
    table.autofit = False
    tbl_pr = table._tbl.tblPr
    layout = OxmlElement("w:tblLayout")
    layout.set(qn("w:type"), "fixed")
    tbl_pr.append(layout)
    for row in table.rows:
        for cell, w in zip(row.cells, widths_mm):
            cell.width = Mm(w)
    for col, w in zip(table.columns, widths_mm):
        col.width = Mm(w)


def _para(cell_or_doc, text: str = "", *, size: float, bold: bool = False, italic: bool = False,
          align=None, first: bool = True, font: str = BODY_FONT):
    if first and hasattr(cell_or_doc, "paragraphs") and cell_or_doc.paragraphs and \
            not cell_or_doc.paragraphs[0].text and hasattr(cell_or_doc, "_tc"):
        p = cell_or_doc.paragraphs[0]
    else:
        p = cell_or_doc.add_paragraph()
    p.paragraph_format.space_before = Pt(0)
    p.paragraph_format.space_after = Pt(0)
    if align is not None:
        p.alignment = align
    if text:
        _run(p, text, size=size, bold=bold, italic=italic, font=font)
    return p


def _run(p, text: str, *, size: float, bold: bool = False, italic: bool = False, font: str = BODY_FONT,
         color: RGBColor | None = None):
    r = p.add_run(text)
    r.font.size = Pt(size)
    r.font.bold = bold
    r.font.italic = italic
    r.font.name = font
    r._element.rPr.rFonts.set(qn("w:eastAsia"), font)
    r._element.rPr.rFonts.set(qn("w:hAnsi"), font)
    r._element.rPr.rFonts.set(qn("w:cs"), font)
    if color is not None:
        r.font.color.rgb = color
    return r


def _box(p, expr: str, style: Style) -> None:
    """A checkbox: the Jinja expression prints ☐ or ☒ in the box font.

    The glyph's square is 0.25 em wide in DejaVu Sans, so a 3.5 mm box needs 14 pt;
    the paragraph's line spacing is fixed so that the big glyph does not make the
    line taller than the text around it.
    """
    _run(p, "{{ " + expr + " }}", size=style.box, font=BOX_FONT)
    p.paragraph_format.line_spacing = Pt(style.box_line)
    p.paragraph_format.line_spacing_rule = WD_LINE_SPACING.EXACTLY


def _page_break(doc) -> None:
    p = doc.add_paragraph()
    p.paragraph_format.space_before = Pt(0)
    p.paragraph_format.space_after = Pt(0)
    p.add_run().add_break(WD_BREAK.PAGE)
    for r in p.runs:
        r.font.size = Pt(1)


def _spacer(doc, pt: float = 3) -> None:
    p = doc.add_paragraph()
    p.paragraph_format.space_before = Pt(0)
    p.paragraph_format.space_after = Pt(0)
    p.paragraph_format.line_spacing = Pt(pt)
    r = p.add_run("")
    r.font.size = Pt(1)


def _var(path: str, f: Field, row_var: str | None = None) -> str:
    base = f"{row_var}.{f.path}" if row_var else f.path
    if f.type == "date":
        return base + "|date"
    if f.type == "code":
        return base + "|code"
    return base


# -- document ----------------------------------------------------------------

def new_document(style: Style):
    doc = Document()
    sec = doc.sections[0]
    sec.orientation = WD_ORIENT.PORTRAIT
    sec.page_width, sec.page_height = Mm(210), Mm(297)
    m = geometry.MARGINS_MM
    sec.top_margin, sec.bottom_margin = Mm(m.top), Mm(m.bottom)
    sec.left_margin, sec.right_margin = Mm(m.left), Mm(m.right)
    sec.header_distance, sec.footer_distance = Mm(4), Mm(4)
    normal = doc.styles["Normal"]
    normal.font.name = BODY_FONT
    normal.font.size = Pt(style.body)
    normal.element.rPr.rFonts.set(qn("w:eastAsia"), BODY_FONT)
    normal.paragraph_format.space_after = Pt(0)
    normal.paragraph_format.space_before = Pt(0)
    # French document language, so spelling and hyphenation are French in Word/LibreOffice.
    lang = OxmlElement("w:lang")
    lang.set(qn("w:val"), "fr-FR")
    normal.element.rPr.append(lang)
    # The header holds the DOCX download's QR code (empty in the PDF path: the stamp prints it).
    hp = sec.header.paragraphs[0]
    hp.alignment = WD_ALIGN_PARAGRAPH.RIGHT
    hp.add_run("{{ document.qr }}")
    return doc


def title_block(doc, fd: FormDefinition, style: Style) -> None:
    table = doc.add_table(rows=1, cols=2)
    _set_table_borders(table, size=8)
    _set_cell_margins(table, 60, 60, 100, 100)
    _fixed_widths(table, [55, CONTENT_WIDTH_MM - 55])
    left, right = table.rows[0].cells
    _para(left, "{{ departement.logo }}", size=style.body)
    _para(left, "{{ departement.nom }}", size=style.body, bold=True, first=False)
    _para(right, (fd.annexe or "").upper(), size=style.small, align=WD_ALIGN_PARAGRAPH.RIGHT)
    _para(right, fd.title.upper(), size=style.heading + 3, bold=True, align=WD_ALIGN_PARAGRAPH.CENTER,
          first=False)
    if fd.printed_note:
        p = _para(right, "", size=style.small, align=WD_ALIGN_PARAGRAPH.CENTER, first=False)
        _run(p, "{% if modele_indicatif %}" + fd.printed_note.upper() + "{% endif %}",
             size=style.small, bold=True, color=RGBColor(0xA0, 0x00, 0x00))
    if fd.intro:
        _spacer(doc)
        _para(doc, fd.intro, size=style.small, italic=True, first=False)
    _spacer(doc, 4)


def _table(doc, ncols: int, widths: list[float], style: Style):
    table = doc.add_table(rows=0, cols=ncols)
    _set_table_borders(table)
    _set_cell_margins(table)
    _fixed_widths(table, widths)
    return table


def _add_row(table, cells_spec: Iterable[tuple[int, int]]):
    """A row whose cells are merged spans: [(first, last)] over the table's columns."""
    row = table.add_row()
    out = []
    for start, end in cells_spec:
        c = row.cells[start]
        if end > start:
            c = c.merge(row.cells[end])
        out.append(c)
    _no_split(row)
    return row, out


def _heading_cells(table, sections: list[Section], style: Style) -> None:
    spans = [(0, GRID - 1)] if len(sections) == 1 else [(0, GRID // 2 - 1), (GRID // 2, GRID - 1)]
    _, cells = _add_row(table, spans)
    for cell, section in zip(cells, sections):
        _set_cell_fill(cell, RESERVED_FILL if section.reserved else HEADING_FILL)
        _para(cell, section.title, size=style.heading, bold=True)


def _is_short(f: Field) -> bool:
    if f.type == "date":
        return True
    if f.type == "text":
        return (f.max_length or 999) <= 40 and f.lines == 1
    if f.type == "choice":
        return len(f.options) <= 3 and sum(len(o.label) for o in f.options) <= 36
    if f.type in ("integer", "bool"):
        return True
    return False


def _value_cell(cell, f: Field, style: Style, row_var: str | None = None) -> None:
    if f.type in ("choice", "multi"):
        _options_inline(cell, f, style, row_var)
    elif f.type == "bool":
        p = _para(cell, "", size=style.body)
        _box(p, f"{_var(f.path, f, row_var)}|box", style)
    else:
        _para(cell, "{{ " + _var(f.path, f, row_var) + " }}", size=style.body)


def _options_inline(cell, f: Field, style: Style, row_var: str | None = None) -> None:
    p = _para(cell, "", size=style.body)
    for i, o in enumerate(f.options):
        _box(p, f"{_var(f.path, f, row_var)}|box('{o.code}')", style)
        _run(p, f" {o.label}" + ("   " if i < len(f.options) - 1 else ""), size=style.body)


# A section is laid out as a list of rows; a row is [(span, filler)], where a span
# is (first, last) column within the section's own columns and a filler writes a
# cell. Rows are independent of where the section sits, so two sections can be
# printed side by side (the compact reserved parts of the fiche de liaison).
Row = list  # [((first, last), filler, height_mm | None)]
PAGE_BREAK = "page_break"


def _label(text: str, style: Style, bold: bool = True, italic: bool = False, fill: str | None = None):
    def fill_cell(cell):
        if fill:
            _set_cell_fill(cell, fill)
        _para(cell, text, size=style.small, bold=bold, italic=italic)
    return fill_cell


def _value(f: Field, style: Style):
    return lambda cell: _value_cell(cell, f, style)


def _signature_filler(f: Field, style: Style):
    def fill_cell(cell):
        p = _para(cell, f.label, size=style.small, bold=True)
        _run(p, "{{ " + f.path + "|zone }}", size=style.small)
    fill_cell.signature = True
    return fill_cell


def _option_rows(f: Field, style: Style, ncols: int, breaks: dict, table_cols: int = 12) -> list:
    """Many options: under their printed headings, in ``ncols`` columns."""
    rows: list = []
    span = table_cols // ncols
    groups: list[tuple[str | None, list]] = []
    for o in f.options:
        if not groups or groups[-1][0] != o.group:
            groups.append((o.group, []))
        groups[-1][1].append(o)
    prev: list[str] = []
    for g, opts in groups:
        if g:
            levels = g.split("|")
            for depth, level in enumerate(levels):
                if depth < len(prev) and prev[depth] == level:
                    continue
                if breaks.get(f.path) == level:
                    rows.append(PAGE_BREAK)
                rows.append([((0, table_cols - 1), _label(level, style, bold=depth == 0, italic=depth > 0,
                                                     fill="F2F2F2" if depth == 0 else None), None)])
            prev = levels
        per_col = -(-len(opts) // ncols)
        row = []
        for ci in range(ncols):
            chunk = opts[ci * per_col:(ci + 1) * per_col]

            def fill_cell(cell, chunk=chunk):
                for i, o in enumerate(chunk):
                    p = _para(cell, "", size=style.body, first=i == 0)
                    _box(p, f"{f.path}|box('{o.code}')", style)
                    _run(p, f" {o.label}", size=style.body)
            row.append(((ci * span, ci * span + span - 1), fill_cell, None))
        rows.append(row)
    return rows


def _inline(f: Field, style: Style):
    """Label and value in one cell (« Label : ……… »), the compact CERFA style."""
    def fill_cell(cell):
        p = _para(cell, "", size=style.small)
        _run(p, f.label + (" " if f.label.endswith(":") else " : "), size=style.small, bold=True)
        if f.type in ("choice", "multi"):
            for i, o in enumerate(f.options):
                _box(p, f"{f.path}|box('{o.code}')", style)
                _run(p, f" {o.label}  ", size=style.small)
        elif f.type == "bool":
            _box(p, f"{f.path}|box", style)
        else:
            _run(p, "{{ " + _var(f.path, f) + " }}", size=style.compact_value)
    return fill_cell


def _option_list(f: Field, style: Style):
    """The field's label, then one option a line, in a single cell."""
    def fill_cell(cell):
        _para(cell, f.label, size=style.small, bold=True)
        for o in f.options:
            p = _para(cell, "", size=style.small, first=False)
            _box(p, f"{f.path}|box('{o.code}')", style)
            _run(p, f" {o.label}", size=style.small)
    return fill_cell


def _compact_rows(section: Section, style: Style, ncols: int, breaks: dict) -> list:
    rows: list = []
    pending: list[Field] = []

    def flush():
        while pending:
            chunk = [pending.pop(0) for _ in range(min(2, len(pending)))]
            per = ncols // len(chunk)
            rows.append([((i * per, i * per + per - 1), _inline(f, style), style.line_mm)
                         for i, f in enumerate(chunk)])

    for f in section.fields:
        if not f.printed or f.type == "list":
            continue
        if f.type == "signature":
            flush()
            prev = rows[-1] if rows else None
            if prev and len(prev) == 1 and getattr(prev[0][1], "signature", False) and ncols == GRID:
                # two signatures side by side
                rows[-1] = [((0, 5), prev[0][1], style.signature_mm),
                            ((6, 11), _signature_filler(f, style), style.signature_mm)]
            else:
                rows.append([((0, ncols - 1), _signature_filler(f, style), style.signature_mm)])
        elif f.type in ("multi", "choice") and len(f.options) > 3 and ncols == GRID // 2:
            flush()
            rows.append([((0, ncols - 1), _option_list(f, style), None)])
        elif f.type in ("multi", "choice") and len(f.options) > 3:
            flush()
            rows.append([((0, ncols - 1), _label(f.label, style), None)])
            rows.extend(_option_rows(f, style, style.option_columns, breaks, ncols))
        elif f.type == "text" and f.lines > 1:
            flush()
            rows.append([((0, ncols - 1), _inline(f, style), style.line_mm * f.lines)])
        elif f.type in ("choice", "multi") or (f.type == "text" and (f.max_length or 0) > style.compact_pair_max):
            flush()
            rows.append([((0, ncols - 1), _inline(f, style), style.line_mm)])
        else:
            pending.append(f)
    flush()
    return rows


def section_rows(section: Section, style: Style, ncols: int, breaks: dict) -> list:
    """The rows of a section laid out on ``ncols`` (4 full width, 2 half width) columns."""
    if section.id in style.compact:
        return _compact_rows(section, style, ncols, breaks)
    rows: list = []
    pending: list[Field] = []

    def flush():
        while pending:
            a = pending.pop(0)
            b = pending.pop(0) if pending and style.pair_fields and ncols == 12 else None
            if b is None:
                rows.append([((0, 1), _label(a.label, style), None), ((2, ncols - 1), _value(a, style), None)])
            else:
                rows.append([((0, 1), _label(a.label, style), None), ((2, 5), _value(a, style), None),
                             ((6, 7), _label(b.label, style), None), ((8, 11), _value(b, style), None)])

    for f in section.fields:
        if not f.printed or f.type == "list":
            continue
        if _is_short(f):
            pending.append(f)
            continue
        flush()
        if f.type == "signature":
            rows.append([((0, ncols - 1), _signature_filler(f, style), style.signature_mm)])
        elif f.type in ("multi", "choice") and (len(f.options) > 4 or
                                                sum(len(o.label) for o in f.options) > 70):
            rows.append([((0, ncols - 1), _label(f.label, style), None)])
            rows.extend(_option_rows(f, style, style.option_columns if ncols == 12 else 1, breaks, ncols))
        elif f.type == "text" and f.lines > 1:
            rows.append([((0, ncols - 1), _label(f.label, style), None)])
            rows.append([((0, ncols - 1), _value(f, style), style.line_mm * f.lines)])
        else:
            rows.append([((0, 1), _label(f.label, style), None), ((2, ncols - 1), _value(f, style), None)])
    flush()
    return rows


def _emit(doc, table, rows_by_side: list[list], style: Style, sections: list[Section], widths):
    """Write rows into ``table``; a side-by-side pair shares each row (left cols 0–1, right 2–3)."""
    n = max(len(r) for r in rows_by_side)
    for i in range(n):
        spans, fillers, heights = [], [], []
        page_break = False
        for side, rows in enumerate(rows_by_side):
            offset = (GRID // 2) * side
            if i >= len(rows):
                spans.append((offset, offset + GRID // 2 - 1))
                fillers.append(None)
                continue
            row = rows[i]
            if row == PAGE_BREAK:
                page_break = True
                continue
            for (a, b), filler, h in row:
                spans.append((a + offset, b + offset))
                fillers.append(filler)
                heights.append(h)
        if page_break:
            _page_break(doc)
            table = _table(doc, GRID, widths, style)
            continue
        tr, cells = _add_row(table, spans)
        for cell, filler in zip(cells, fillers):
            if filler:
                filler(cell)
        hs = [h for h in heights if h]
        if hs:
            _row_height(tr, max(hs))
    return table


def section_block(doc, sections: list[Section], style: Style, breaks: dict) -> None:
    """One section full width on a grid of 12 equal columns, or two side by side.

    A side-by-side pair is an outer borderless table whose two cells each hold the
    section's own 6-column table, so that each side packs its rows independently.
    """
    if len(sections) == 1:
        widths = [CONTENT_WIDTH_MM / GRID] * GRID
        table = _table(doc, GRID, widths, style)
        _heading_cells(table, sections, style)
        _emit(doc, table, [section_rows(sections[0], style, GRID, breaks)], style, sections, widths)
        return
    half = GRID // 2
    gap = 2.0
    outer = doc.add_table(rows=1, cols=2)
    _set_cell_margins(outer, 0, 0, 0, 0)
    side_w = (CONTENT_WIDTH_MM - gap) / 2
    _fixed_widths(outer, [side_w + gap / 2, side_w + gap / 2])
    for i, (cell, section) in enumerate(zip(outer.rows[0].cells, sections)):
        inner = cell.add_table(rows=0, cols=half)
        _set_table_borders(inner)
        _set_cell_margins(inner)
        widths = [side_w / half] * half
        _fixed_widths(inner, widths)
        _, (head,) = _add_row(inner, [(0, half - 1)])
        _set_cell_fill(head, RESERVED_FILL if section.reserved else HEADING_FILL)
        _para(head, section.title, size=style.heading, bold=True)
        _emit(doc, inner, [section_rows(section, style, half, breaks)], style, [section], widths)
        # python-docx leaves an empty paragraph before the nested table; keep it tiny.
        first = cell.paragraphs[0]
        first.paragraph_format.line_spacing = Pt(1)
        if i == 0:
            cell.paragraphs[0].paragraph_format.space_after = Pt(0)
    table_pr = outer._tbl.tblPr
    _no_split(outer.rows[0])


def _written(c: Field) -> bool:
    """A list column printed as written text even if it is a choice (a code among many)."""
    return c.type in ("choice", "multi") and len(c.options) > 3


def _column_width(c: Field) -> float:
    if c.type == "date":
        return 15.0
    if c.type == "bool":
        return 9.0
    if c.type in ("choice", "multi") and not _written(c):
        return 7.0 + 2.0 * max(len(o.label) for o in c.options) ** 0.5 * 2
    if _written(c):
        return 9.0
    if c.type == "code":
        return 26.0
    return 0.0   # text: shares what is left, by printed length


def _repeat_header(row) -> None:
    tr_pr = row._tr.get_or_add_trPr()
    el = OxmlElement("w:tblHeader")
    tr_pr.append(el)


def list_table(doc, f: Field, style: Style) -> None:
    """A repeating table: a fixed number of rows per page, each page of rows its own page."""
    cols = [c for c in f.item_fields if c.printed]
    fixed = [_column_width(c) for c in cols]
    free = max(CONTENT_WIDTH_MM - sum(fixed), 20.0)
    text_w = [max(1.0, min(4.0, (c.max_length or 40) / 40)) if w == 0 else 0 for c, w in zip(cols, fixed)]
    widths = [w if w else free * t / sum(text_w) for w, t in zip(fixed, text_w)]
    new_page = style.list_new_page
    if (new_page is True and (f.rows_per_page or 0) >= 6) or (isinstance(new_page, list) and f.path in new_page):
        _page_break(doc)   # a long table starts on its own page: each page of rows is alike
    rows_per_page = f.rows_per_page or 8
    _para(doc, "{%p for chunk in " + f.path + "|pages(" + str(rows_per_page) + ", " + str(f.min_rows) +
          ") %}", size=1)
    table = doc.add_table(rows=3, cols=len(cols))
    _set_table_borders(table)
    _set_cell_margins(table, 10, 10, 40, 40)
    _fixed_widths(table, widths)
    head = table.rows[0].cells[0].merge(table.rows[0].cells[-1])
    _set_cell_fill(head, HEADING_FILL)
    _para(head, f.label + "{% if chunk.continued %} (suite){% endif %}", size=style.heading, bold=True)
    for c, cell in zip(cols, table.rows[1].cells):
        _set_cell_fill(cell, "F2F2F2")
        _para(cell, c.label, size=style.small, bold=True)
    _no_split(table.rows[1])
    _repeat_header(table.rows[0])
    _repeat_header(table.rows[1])
    # rows[2] is the loop row: docxtpl's {%tr %} tags need their own rows.
    loop_open = table.rows[2]
    _para(loop_open.cells[0], "{%tr for row in chunk.rows %}", size=1)
    data_row = table.add_row()
    _row_height(data_row, style.list_row_mm, exact=True)
    _no_split(data_row)
    for c, cell in zip(cols, data_row.cells):
        if c.type in ("choice", "multi") and not _written(c):
            for i, o in enumerate(c.options):
                p = _para(cell, "", size=style.small, first=i == 0)
                _box(p, f"row.{c.path}|box('{o.code}')", style)
                _run(p, f" {o.label}", size=style.small)
        elif c.type == "bool":
            p = _para(cell, "", size=style.small)
            _box(p, f"row.{c.path}|box", style)
        else:
            _para(cell, "{{ " + _var(c.path, c, "row") + " }}", size=style.small)
    close = table.add_row()
    _para(close.cells[0], "{%tr endfor %}", size=1)
    _para(doc, "{%p if not chunk.last %}", size=1)
    _page_break(doc)
    _para(doc, "{%p endif %}", size=1)
    _para(doc, "{%p endfor %}", size=1)


def grid_table(doc, section: Section, style: Style, compact: list) -> None:
    """A matrix of one-choice rows whose options are cells (the EDE): one box per cell."""
    rows = [f for f in section.fields if f.type == "choice"]
    others = [f for f in section.fields if f.type != "choice"]
    n = len(rows[0].options)
    first_w = 26
    widths = [first_w] + [(CONTENT_WIDTH_MM - first_w) / n] * n
    table = doc.add_table(rows=2, cols=n + 1)
    _set_table_borders(table)
    _set_cell_margins(table, 20, 20, 40, 40)
    _fixed_widths(table, widths)
    head = table.rows[0].cells[0].merge(table.rows[0].cells[-1])
    _set_cell_fill(head, HEADING_FILL)
    _para(head, section.title, size=style.heading, bold=True)
    _para(table.rows[1].cells[0], "Item", size=style.small, bold=True)
    for i in range(n):
        _para(table.rows[1].cells[i + 1], f"Palier {i + 1}", size=style.small, bold=True,
              align=WD_ALIGN_PARAGRAPH.CENTER)
    for f in rows:
        row = table.add_row()
        _no_split(row)
        _para(row.cells[0], f.label, size=style.small, bold=True)
        for i, o in enumerate(f.options):
            cell = row.cells[i + 1]
            colour = o.extra.get("couleur")
            if colour:
                _set_cell_fill(cell, COLOURS[colour])
            p = _para(cell, "", size=style.small)
            _box(p, f"{f.path}|box('{o.code}')", style)
            _run(p, f" {o.extra.get('points', '')} pts", size=style.small, bold=True)
            _para(cell, o.label, size=style.small - 1, first=False)
    if others:
        _spacer(doc)
        section_block(doc, [Section(f"{section.id}_complements", "INFORMATIONS COMPLÉMENTAIRES",
                                    section.page, tuple(others))], style, {})


def _save(doc, out: Path) -> None:
    """Save with fixed zip timestamps, so that an unchanged definition rebuilds the same
    bytes (the template version is a hash of them)."""
    import io
    import zipfile
    buf = io.BytesIO()
    doc.save(buf)
    dst = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            zout.writestr(zipfile.ZipInfo(item.filename, date_time=(1980, 1, 1, 0, 0, 0)), zin.read(item.filename),
                          compress_type=zipfile.ZIP_DEFLATED)
    data = dst.getvalue()
    if not out.exists() or out.read_bytes() != data:
        out.write_bytes(data)


def build(fd: FormDefinition, out_dir: Path) -> Path:
    layout = fd.layout.builder_options()
    style = Style(layout)
    breaks = layout.get("page_break_before_group") or {}
    beside = layout.get("side_by_side") or []          # [[left_id, right_id], ...]
    right_of = {b: a for a, b in beside}
    by_id = {s.id: s for s in fd.sections}
    doc = new_document(style)
    title_block(doc, fd, style)
    page = None
    for section in fd.sections:
        printed = [f for f in section.fields if f.printed]
        if not printed or section.id in right_of:
            continue
        if page is not None and section.page and section.page != page and fd.fixed_layout:
            _page_break(doc)
        page = section.page or page
        pair = [section] + [by_id[b] for a, b in beside if a == section.id]
        if section.banner:
            _para(doc, section.banner, size=style.heading + 0.5, bold=True, first=False)
        if section.id in (layout.get("grids") or []):
            grid_table(doc, section, style, layout.get("compact_sections") or [])
        else:
            if any(f.type != "list" for s in pair for f in s.fields if f.printed):
                section_block(doc, pair, style, breaks)
            for f in (f for s in pair for f in s.fields if f.printed and f.type == "list"):
                _spacer(doc)
                list_table(doc, f, style)
        if any(f.path in breaks for s in pair for f in s.fields):
            page = (section.page or 0) + 1   # the section went on over a planned page break
        for s in pair:
            if s.note:
                _para(doc, s.note, size=style.small, italic=True, first=False)
        _spacer(doc, style.section_gap)
    for line in layout.get("summary") or []:
        p = _para(doc, "", size=style.heading, first=False)
        _run(p, line, size=style.heading, bold=True)
    out = out_dir / (fd.template or f"{fd.id}.docx")
    _save(doc, out)
    return out


def build_reference(fd: FormDefinition, out_dir: Path) -> Path:
    """A reference list printed as a document: its codes and labels in a table."""
    style = Style({"font_size": 9})
    doc = new_document(style)
    title_block(doc, fd, style)
    entries = fd.entries()
    has_extra = fd.reference_list == "annexe-6"
    cols = 3 if has_extra else 2
    table = doc.add_table(rows=1, cols=cols)
    _set_table_borders(table)
    _set_cell_margins(table)
    widths = [22, CONTENT_WIDTH_MM - 22 - 60, 60] if has_extra else [22, CONTENT_WIDTH_MM - 22]
    _fixed_widths(table, widths)
    heads = ["Code", "Libellé", "Remarque"][:cols]
    for h, cell in zip(heads, table.rows[0].cells):
        _set_cell_fill(cell, HEADING_FILL)
        _para(cell, h, size=style.body, bold=True)
    # Rows are data, looped by docxtpl, so a new code list needs no template edit.
    open_row = table.add_row()
    _para(open_row.cells[0], "{%tr for e in entries %}", size=1)
    row = table.add_row()
    _para(row.cells[0], "{{ e.code }}", size=style.body, bold=True)
    _para(row.cells[1], "{{ e.label }}", size=style.body)
    if has_extra:
        _para(row.cells[2], "{{ e.remarque }}", size=style.small)
    close = table.add_row()
    _para(close.cells[0], "{%tr endfor %}", size=1)
    out = out_dir / (fd.template or f"{fd.id}.docx")
    _save(doc, out)
    return out


def build_all(out_dir: Path, only: list[str] | None = None) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    made = []
    for fd in catalogue.forms():
        if only and fd.id not in only:
            continue
        made.append(build(fd, out_dir) if fd.kind == "form" else build_reference(fd, out_dir))
    return made

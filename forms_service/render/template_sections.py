"""Section layout of a DOCX template: each section of a definition as a bordered table on a
12-column grid, grey heading, label/value cells, options as ☐ rows, two sections side by
side when the definition says so."""

from __future__ import annotations

import re
from typing import Iterable

from docx.oxml import OxmlElement
from docx.shared import Pt

from ..catalogue.definition import Field, Option, Section
from .template_ooxml import (
    add_box, add_page_break, add_para, add_run, fixed_widths, label_under_its_text, no_split, row_height,
    set_cell_fill, set_cell_margins, set_table_borders,
)
from .template_metrics import fits, text_width_mm
from .template_style import CONTENT_WIDTH_MM, GRID, HEADING_FILL, RESERVED_FILL, Style


def template_var(path: str, f: Field, row_var: str | None = None) -> str:
    base = f"{row_var}.{f.path}" if row_var else f.path
    if f.type == "date":
        return base + "|date"
    if f.type == "code":
        return base + "|code"
    return base



def option_text(o: Option) -> str:
    """An option as printed: its label, then its footnote call « (1) » when the definition
    gives one (``footnote: 1``; the note itself is its section's)."""
    call = o.extra.get("footnote")
    return f"{o.label} ({call})" if call is not None else o.label


def repeat_header(row) -> None:
    """Mark a table row as a header row, printed again at the top of each page."""
    tr_pr = row._tr.get_or_add_trPr()
    tr_pr.append(OxmlElement("w:tblHeader"))


def label_separator(label: str) -> str:
    """What follows a label before its value: « Fait le, » and « Motif : » keep their own."""
    return " " if label.rstrip().endswith((":", ",")) else " : "


def label_height_mm(text: str, width_mm: float, size_pt: float) -> float:
    """The height a bold label takes in a cell ``width_mm`` wide (Carlito: ~0.5 em a character)."""
    per_line = max(1, int((width_mm - 2.5) / (size_pt * 0.5 * 25.4 / 72)))
    lines = -(-len(text) // per_line)
    return lines * size_pt * 1.22 * 25.4 / 72


def section_table(doc, ncols: int, widths: list[float], style: Style):
    table = doc.add_table(rows=0, cols=ncols)
    set_table_borders(table)
    set_cell_margins(table)
    fixed_widths(table, widths)
    return table


def add_row(table, cells_spec: Iterable[tuple[int, int]]):
    """A row whose cells are merged spans: [(first, last)] over the table's columns."""
    row = table.add_row()
    out = []
    for start, end in cells_spec:
        c = row.cells[start]
        if end > start:
            c = c.merge(row.cells[end])
        out.append(c)
    no_split(row)
    return row, out


def _heading_cells(table, sections: list[Section], style: Style) -> None:
    spans = [(0, GRID - 1)] if len(sections) == 1 else [(0, GRID // 2 - 1), (GRID // 2, GRID - 1)]
    row, cells = add_row(table, spans)
    repeat_header(row)   # repeated when the section goes on over a page; never alone at a foot
    for cell, section in zip(cells, sections):
        set_cell_fill(cell, RESERVED_FILL if section.reserved else HEADING_FILL)
        add_para(cell, section.title, size=style.heading, bold=True)


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
        p = add_para(cell, "", size=style.body)
        add_box(p, f"{template_var(f.path, f, row_var)}|box", style)
    else:
        add_para(cell, "{{ " + template_var(f.path, f, row_var) + " }}", size=style.body)


def _options_inline(cell, f: Field, style: Style, row_var: str | None = None) -> None:
    p = add_para(cell, "", size=style.body)
    for i, o in enumerate(f.options):
        add_box(p, f"{template_var(f.path, f, row_var)}|box('{o.code}')", style)
        add_run(p, f" {option_text(o)}" + ("   " if i < len(f.options) - 1 else ""), size=style.body)


# A section is laid out as a list of rows; a row is [(span, filler)], where a span
# is (first, last) column within the section's own columns and a filler writes a
# cell. Rows are independent of where the section sits, so two sections can be
# printed side by side (the compact reserved parts of the fiche de liaison).
Row = list  # [((first, last), filler, height_mm | None)]
PAGE_BREAK = "page_break"


def _label(text: str, style: Style, bold: bool = True, italic: bool = False, fill: str | None = None,
           keep: bool = False):
    """A label cell; ``keep``: a label row kept on the page of the row after it."""
    def fill_cell(cell):
        if fill:
            set_cell_fill(cell, fill)
        p = add_para(cell, french_spacing(text), size=style.small, bold=bold, italic=italic)
        if keep:
            p.paragraph_format.keep_with_next = True
    return fill_cell


def _value(f: Field, style: Style):
    return lambda cell: _value_cell(cell, f, style)


def _signature_filler(f: Field, style: Style):
    """The signature's label, then the blank zone (at least ``signature_mm`` under the label)."""
    def fill_cell(cell):
        p = add_para(cell, f.label, size=style.small, bold=True)
        add_run(p, "{{ " + f.path + "|zone }}", size=style.small)
    fill_cell.signature = True
    return fill_cell


def signature_row_mm(f: Field, style: Style, width_mm: float) -> float:
    return style.signature_mm + label_height_mm(f.label, width_mm, style.small) + 1.0


def _statement(text: str, style: Style):
    """A sentence the signer commits to, printed above their signature (Jinja allowed)."""
    def fill_cell(cell):
        add_para(cell, text, size=style.small)
    return fill_cell


_VALUE_TAG = re.compile(r"\{\{\s*(.+?)\s*\}\}")


def statement_rows(text: str, style: Style, ncols: int) -> list:
    """A statement's rows. A value inside its sentence (« Je soussigné(e), Madame, Monsieur
    {{ beneficiaire|person }}, adhère … ») gets a line of its own, as the paper form's dotted
    line: the words before it, the value on the rest of their line, then a line break and
    the rest of the sentence. The rest starts on the next line at the cell's left edge
    whatever the value, so no word of the sentence moves for a value that fits the rest of
    its line (a name up to ~44 mm at 8 pt on the fiche de liaison: about 30 letters; the PDF
    fast path writes it there); a longer one wraps and pushes the rest down a line (the
    fast path leaves that one to LibreOffice). A cell of its own two lines high would hold
    the longest name, but page 3 of the fiche has no line to spare for it."""
    m = _VALUE_TAG.search(text)
    if m is None:
        return [[((0, ncols - 1), _statement(text, style), None)]]
    before, expr, after = text[:m.start()].rstrip(), m.group(1), text[m.end():].lstrip(" ,")

    def fill_cell(cell):
        p = add_para(cell, before + " ", size=style.small)
        add_run(p, "{{ " + expr + " }}", size=style.compact_value)
        if after:
            add_run(p, "", size=style.small).add_break()   # the rest never shares the value's line
            add_run(p, after, size=style.small)
    return [[((0, ncols - 1), fill_cell, None)]]


def _writing(f: Field, style: Style):
    """A multi-line text: its label, then the lines to write on, in one cell (never apart)."""
    def fill_cell(cell):
        add_para(cell, f.label, size=style.small, bold=True)
        add_para(cell, "{{ " + template_var(f.path, f) + " }}", size=style.body, first=False)
    return fill_cell


def writing_row_mm(f: Field, style: Style, width_mm: float) -> float:
    return style.writing_mm * f.lines + label_height_mm(f.label, width_mm, style.small)


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
                                                     fill="F2F2F2" if depth == 0 else None, keep=True),
                               None)])
            prev = levels
        # a group of fewer options than columns spreads them over the width (a lone long
        # option on one line instead of three, in the fiche's page 2)
        here = min(ncols, len(opts))
        span = table_cols // here
        per_col = -(-len(opts) // here)
        row = []
        for ci in range(here):
            chunk = opts[ci * per_col:(ci + 1) * per_col]

            def fill_cell(cell, chunk=chunk):
                for i, o in enumerate(chunk):
                    p = add_para(cell, "", size=style.body, first=i == 0)
                    label_under_its_text(p, style, style.body)
                    add_box(p, f"{f.path}|box('{o.code}')", style)
                    add_run(p, f" {option_text(o)}", size=style.body)
            row.append(((ci * span, table_cols - 1 if ci == here - 1 else ci * span + span - 1), fill_cell, None))
        rows.append(row)
    return rows


def french_spacing(text: str) -> str:
    """« : », « ? », « ! » and « ; » kept with the word before them (a non-breaking space, as
    French typography has it): a label's « ? » or « : » never starts a line of its own."""
    return re.sub(r" ([:?!;])", "\u00a0\\1", text)


def _inline(f: Field, style: Style):
    """Label and value in one cell (« Label : ……… »), the compact CERFA style."""
    def fill_cell(cell):
        p = add_para(cell, "", size=style.small)
        label = f.label + label_separator(f.label)
        if f.type in ("choice", "multi", "bool"):
            # « signé : » wrapped its « : » to the start of the boxes' line
            label = french_spacing(label)
        add_run(p, label, size=style.small, bold=True)
        if f.type in ("choice", "multi"):
            for i, o in enumerate(f.options):
                add_box(p, f"{f.path}|box('{o.code}')", style)
                add_run(p, f" {option_text(o)}  ", size=style.small)
        elif f.type == "bool":
            add_box(p, f"{f.path}|box", style)
        else:
            add_run(p, "{{ " + template_var(f.path, f) + " }}", size=style.compact_value)
    return fill_cell


def _option_list(f: Field, style: Style):
    """The field's label, then one option a line, in a single cell."""
    def fill_cell(cell):
        add_para(cell, f.label, size=style.small, bold=True)
        for o in f.options:
            p = add_para(cell, "", size=style.small, first=False)
            label_under_its_text(p, style, style.small)
            add_box(p, f"{f.path}|box('{o.code}')", style)
            add_run(p, f" {option_text(o)}", size=style.small)
    return fill_cell


def _compact_rows(section: Section, style: Style, ncols: int, breaks: dict,
                  width_mm: float | None = None) -> list:
    rows: list = []
    pending: list[Field] = []

    width = width_mm or CONTENT_WIDTH_MM * ncols / GRID
    cell_mm = width / 2

    def pairs(f: Field) -> bool:
        """Two fields share a row unless a label would fill its cell (no room for the value)."""
        return text_width_mm(f.label + " : ", style.small, bold=True) <= cell_mm * 0.8 and \
            f.path not in style.own_row

    def flush():
        while pending:
            n = 2 if len(pending) >= 2 and pairs(pending[0]) and pairs(pending[1]) else 1
            chunk = [pending.pop(0) for _ in range(n)]
            per = ncols // len(chunk)
            rows.append([((i * per, i * per + per - 1), _inline(f, style), style.line_mm)
                         for i, f in enumerate(chunk)])

    for f in section.fields:
        if not f.printed or f.type == "list":
            continue
        if f.path in style.statements:
            flush()
            rows.extend(statement_rows(style.statements[f.path], style, ncols))
        if f.type == "signature":
            flush()
            prev = rows[-1] if rows else None
            if prev and len(prev) == 1 and getattr(prev[0][1], "signature", False) and ncols == GRID:
                # two signatures side by side
                h = max(prev[0][2], signature_row_mm(f, style, width / 2))
                rows[-1] = [((0, 5), prev[0][1], h), ((6, 11), _signature_filler(f, style), h)]
            else:
                rows.append([((0, ncols - 1), _signature_filler(f, style), signature_row_mm(f, style, width))])
        elif f.type in ("multi", "choice") and len(f.options) > 3 and ncols == GRID // 2:
            flush()
            rows.append([((0, ncols - 1), _option_list(f, style), None)])
        elif f.type in ("multi", "choice") and len(f.options) > 3 and ncols == GRID and \
                text_width_mm(f.label + " : " + "      ".join(option_text(o) for o in f.options), style.small) \
                + 5 * len(f.options) < CONTENT_WIDTH_MM - 4:
            flush()   # « Label : ☐ a ☐ b ☐ c ☐ d » on one line
            rows.append([((0, ncols - 1), _inline(f, style), style.line_mm)])
        elif f.type in ("multi", "choice") and len(f.options) > 3:
            flush()
            if f.path != section.id:   # a section that is this one field: its title is the label
                rows.append([((0, ncols - 1), _label(f.label, style, keep=True), None)])
            rows.extend(_option_rows(f, style, style.option_columns, breaks, ncols))
        elif f.type == "text" and f.lines > 1:
            flush()
            # label, then the lines under it: the zone (below the label) holds the whole value
            rows.append([((0, ncols - 1), _writing(f, style), style.writing_mm * f.lines)])
        elif (f.type in ("choice", "multi") and not (_is_short(f) and ncols == GRID)) or \
                (f.type == "text" and (f.max_length or 0) > style.compact_pair_max):
            flush()
            rows.append([((0, ncols - 1), _inline(f, style), style.line_mm)])
        else:
            pending.append(f)
    flush()
    return rows


def section_rows(section: Section, style: Style, ncols: int, breaks: dict,
                 width_mm: float | None = None) -> list:
    """The rows of a section laid out on ``ncols`` (12 full width, 6 a side of a pair)
    columns, ``width_mm`` wide (by default its share of the content width)."""
    if section.id in style.compact:
        return _compact_rows(section, style, ncols, breaks, width_mm)
    rows: list = []
    pending: list[Field] = []

    column_mm = CONTENT_WIDTH_MM / GRID

    def label_cols(*labels: str) -> int:
        """Two grid columns for a label, three when a word of it would not fit in two."""
        return 2 if all(fits(lb, 2 * column_mm, style.small, bold=True) for lb in labels) else 3

    def flush():
        while pending:
            a = pending.pop(0)
            b = pending.pop(0) if pending and style.pair_fields and ncols == 12 else None
            if b is None:
                n = label_cols(a.label)
                rows.append([((0, n - 1), _label(a.label, style), None), ((n, ncols - 1), _value(a, style), None)])
            else:
                n = label_cols(a.label, b.label)
                rows.append([((0, n - 1), _label(a.label, style), None), ((n, 5), _value(a, style), None),
                             ((6, 5 + n), _label(b.label, style), None), ((6 + n, 11), _value(b, style), None)])

    width = width_mm or CONTENT_WIDTH_MM * ncols / GRID
    for f in section.fields:
        if not f.printed or f.type == "list":
            continue
        if f.path in style.statements:
            flush()
            rows.extend(statement_rows(style.statements[f.path], style, ncols))
        if _is_short(f):
            pending.append(f)
            continue
        flush()
        if f.type == "signature":
            rows.append([((0, ncols - 1), _signature_filler(f, style), signature_row_mm(f, style, width))])
        elif f.type in ("multi", "choice") and (len(f.options) > 4 or
                                                sum(len(o.label) for o in f.options) > 70):
            rows.append([((0, ncols - 1), _label(f.label, style, keep=True), None)])
            rows.extend(_option_rows(f, style, style.option_columns if ncols == 12 else 1, breaks, ncols))
        elif f.type == "text" and f.lines > 1:
            rows.append([((0, ncols - 1), _writing(f, style), writing_row_mm(f, style, width))])
        else:
            n = label_cols(f.label)
            rows.append([((0, n - 1), _label(f.label, style), None), ((n, ncols - 1), _value(f, style), None)])
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
            add_page_break(doc)
            table = section_table(doc, GRID, widths, style)
            continue
        tr, cells = add_row(table, spans)
        for cell, filler in zip(cells, fillers):
            if filler:
                filler(cell)
        hs = [h for h in heights if h]
        if hs:
            row_height(tr, max(hs))
    return table


def keep_rows_together(table) -> None:
    """Every row of ``table`` on the page of the row after it: the table is never split."""
    for row in table.rows[:-1]:
        for cell in row.cells:
            for para in cell.paragraphs:
                para.paragraph_format.keep_with_next = True


def section_block(doc, sections: list[Section], style: Style, breaks: dict,
                  together: bool = False) -> None:
    """One section full width on a grid of 12 equal columns, or two side by side.

    A side-by-side pair is an outer borderless table whose two cells each hold the
    section's own 6-column table, so that each side packs its rows independently.
    ``together``: the section's rows are never split over two pages (a reserved part's
    first rows, before a list inside it, left at a page's foot).
    """
    if len(sections) == 1:
        widths = [CONTENT_WIDTH_MM / GRID] * GRID
        table = section_table(doc, GRID, widths, style)
        if sections[0].title:   # a section's continuation (after a list inside it) has none
            _heading_cells(table, sections, style)
        _emit(doc, table, [section_rows(sections[0], style, GRID, breaks)], style, sections, widths)
        if together:
            keep_rows_together(table)
        return
    half = GRID // 2
    gap = 2.0
    outer = doc.add_table(rows=1, cols=2)
    set_cell_margins(outer, 0, 0, 0, 0)
    # the left side's share of the width (``layout.side_widths``, by default a half)
    share = style.side_widths.get(sections[0].id, 0.5)
    side_ws = [(CONTENT_WIDTH_MM - gap) * share, (CONTENT_WIDTH_MM - gap) * (1 - share)]
    fixed_widths(outer, [w + gap / 2 for w in side_ws])
    for i, (cell, section, side_w) in enumerate(zip(outer.rows[0].cells, sections, side_ws)):
        inner = cell.add_table(rows=0, cols=half)
        set_table_borders(inner)
        set_cell_margins(inner)
        widths = [side_w / half] * half
        fixed_widths(inner, widths)
        _, (head,) = add_row(inner, [(0, half - 1)])
        set_cell_fill(head, RESERVED_FILL if section.reserved else HEADING_FILL)
        add_para(head, section.title, size=style.heading, bold=True)
        _emit(doc, inner, [section_rows(section, style, half, breaks, side_w)], style, [section], widths)
        # python-docx leaves an empty paragraph before the nested table; keep it tiny.
        first = cell.paragraphs[0]
        first.paragraph_format.line_spacing = Pt(1)
        if i == 0:
            cell.paragraphs[0].paragraph_format.space_after = Pt(0)
        # ... and the one it adds after it (a cell ends with a paragraph): 1 twip, not a
        # line of body text under each side (3.4 mm a row of pairs on the fiche's page 3)
        last = cell.paragraphs[-1]
        if last is not first:
            last.paragraph_format.space_before = last.paragraph_format.space_after = Pt(0)
            last.paragraph_format.line_spacing = Pt(0.05)
    table_pr = outer._tbl.tblPr
    no_split(outer.rows[0])

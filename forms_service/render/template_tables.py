"""The tables of a DOCX template: a list field as a repeated row (``{%tr for %}``) with a
header row repeated on each page, and a grid section (rows × columns of boxes)."""

from __future__ import annotations

from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml import OxmlElement
from docx.shared import Pt

from ..catalogue.definition import Field, Section
from .template_ooxml import (
    add_box, add_page_break, add_para, add_run, add_spacer, fixed_widths, no_split, row_height,
    set_cell_fill, set_cell_margins, set_table_borders,
)
from .template_metrics import CELL_PADDING_MM, longest_word_mm
from .template_sections import section_block, template_var
from .template_style import COLOURS, CONTENT_WIDTH_MM, HEADING_FILL, WRITING_LINE_MM, Style


def _written(c: Field) -> bool:
    """A list column printed as written text even if it is a choice (a code among many)."""
    return c.type in ("choice", "multi") and len(c.options) > 3


def _column_width(c: Field) -> float:
    if c.type == "date":
        return 15.0   # dd/mm/yyyy at 7 pt; the fillable widget auto-sizes (fillable._fit_longest)
    if c.type == "bool":
        return 9.0
    if c.type in ("choice", "multi") and not _written(c):
        return 7.0 + 2.0 * max(len(o.label) for o in c.options) ** 0.5 * 2
    if _written(c):
        return 9.0
    if c.type == "code":
        return 26.0
    return 0.0   # text: shares what is left, by printed length


def _no_broken_words(cols: list[Field], widths: list[float], style: Style) -> list[float]:
    """Widen each column to its header's longest word (and its options' when printed as
    boxes), taking the room from the widest columns; the total width is kept."""
    need = []
    for c, w in zip(cols, widths):
        words = [longest_word_mm(c.label, style.list_small, bold=True)]
        if c.type in ("choice", "multi") and not _written(c):
            box = 4.0   # the ☐ and its space
            words += [box + longest_word_mm(o.label, style.list_small) for o in c.options]
        elif _written(c):   # the value printed as text: its longest code
            words += [longest_word_mm(o.code, style.list_small) for o in c.options]
        need.append(max(words) + CELL_PADDING_MM + 0.3)
    widths = list(widths)
    for _ in range(len(widths) * 4):
        short = [i for i, (w, n) in enumerate(zip(widths, need)) if w < n - 0.01]
        if not short:
            break
        i = short[0]
        missing = need[i] - widths[i]
        donors = sorted((j for j in range(len(widths)) if widths[j] - need[j] > 0.5),
                        key=lambda j: widths[j] - need[j], reverse=True)
        if not donors:
            break
        j = donors[0]
        give = min(missing, widths[j] - need[j])
        widths[i] += give
        widths[j] -= give
    return widths


def _row_mm(cols: list[Field], style: Style) -> float:
    """A list row's height: the form's ``list_row_mm`` when a cell holds several lines
    (a text of ``lines`` > 1, options stacked as boxes), one handwriting line otherwise
    (the emplois recherchés, the rendez-vous: 22 mm rows of one line each pushed the
    CERS's page 1 over and left its page 2 four-fifths empty)."""
    stacked = any(c.type in ("choice", "multi") and not _written(c) and len(c.options) > 1 for c in cols)
    if stacked or any((c.lines or 1) > 1 for c in cols if c.type == "text"):
        return style.list_row_mm
    return min(style.list_row_mm, WRITING_LINE_MM + 2.0)


def _repeat_header(row) -> None:
    tr_pr = row._tr.get_or_add_trPr()
    el = OxmlElement("w:tblHeader")
    tr_pr.append(el)


def list_table(doc, f: Field, style: Style, inline: bool = False) -> None:
    """A repeating table: a fixed number of rows per page, each page of rows its own page.
    ``inline``: a short list inside its section (never on a page of its own)."""
    cols = [c for c in f.item_fields if c.printed]
    fixed = [_column_width(c) for c in cols]
    free = max(CONTENT_WIDTH_MM - sum(fixed), 20.0)
    text_w = [max(1.0, min(4.0, (c.max_length or 40) / 40)) if w == 0 else 0 for c, w in zip(cols, fixed)]
    widths = [w if w else free * t / sum(text_w) for w, t in zip(fixed, text_w)]
    widths = _no_broken_words(cols, widths, style)
    new_page = style.list_new_page
    if inline:
        pass
    elif (new_page is True and (f.rows_per_page or 0) >= 6) or (isinstance(new_page, list) and f.path in new_page):
        add_page_break(doc)   # a long table starts on its own page: each page of rows is alike
    rows_per_page = f.rows_per_page or 8
    add_para(doc, "{%p for chunk in " + f.path + "|pages(" + str(rows_per_page) + ", " + str(f.min_rows) +
          ") %}", size=1)
    table = doc.add_table(rows=3, cols=len(cols))
    set_table_borders(table)
    set_cell_margins(table, 10, 10, 40, 40)
    fixed_widths(table, widths)
    head = table.rows[0].cells[0].merge(table.rows[0].cells[-1])
    set_cell_fill(head, HEADING_FILL)
    add_para(head, f.label + "{% if chunk.continued %} (suite){% endif %}", size=style.heading, bold=True)
    for c, cell in zip(cols, table.rows[1].cells):
        set_cell_fill(cell, "F2F2F2")
        add_para(cell, c.label, size=style.list_small, bold=True)
    no_split(table.rows[1])
    _repeat_header(table.rows[0])
    _repeat_header(table.rows[1])
    # rows[2] is the loop row: docxtpl's {%tr %} tags need their own rows.
    loop_open = table.rows[2]
    add_para(loop_open.cells[0], "{%tr for row in chunk.rows %}", size=1)
    data_row = table.add_row()
    row_height(data_row, _row_mm(cols, style), exact=True)
    no_split(data_row)
    for c, cell in zip(cols, data_row.cells):
        if c.type in ("choice", "multi") and not _written(c):
            for i, o in enumerate(c.options):
                p = add_para(cell, "", size=style.list_small, first=i == 0)
                add_box(p, f"row.{c.path}|box('{o.code}')", style)
                add_run(p, f" {o.label}", size=style.list_small)
        elif c.type == "bool":
            p = add_para(cell, "", size=style.list_small)
            add_box(p, f"row.{c.path}|box", style)
        else:
            add_para(cell, "{{ " + template_var(c.path, c, "row") + " }}", size=style.list_small)
    close = table.add_row()
    add_para(close.cells[0], "{%tr endfor %}", size=1)
    add_para(doc, "{%p if not chunk.last %}", size=1)
    add_page_break(doc)
    add_para(doc, "{%p endif %}", size=1)
    add_para(doc, "{%p endfor %}", size=1)


def grid_table(doc, section: Section, style: Style, compact: list) -> None:
    """A matrix of one-choice rows whose options are cells (the EDE): one box per cell."""
    rows = [f for f in section.fields if f.type == "choice"]
    others = [f for f in section.fields if f.type != "choice"]
    n = len(rows[0].options)
    first_w = 26
    widths = [first_w] + [(CONTENT_WIDTH_MM - first_w) / n] * n
    table = doc.add_table(rows=2, cols=n + 1)
    set_table_borders(table)
    set_cell_margins(table, 20, 20, 40, 40)
    fixed_widths(table, widths)
    head = table.rows[0].cells[0].merge(table.rows[0].cells[-1])
    set_cell_fill(head, HEADING_FILL)
    add_para(head, section.title, size=style.heading, bold=True)
    add_para(table.rows[1].cells[0], "Item", size=style.small, bold=True)
    for i in range(n):
        add_para(table.rows[1].cells[i + 1], f"Palier {i + 1}", size=style.small, bold=True,
              align=WD_ALIGN_PARAGRAPH.CENTER)
    for f in rows:
        row = table.add_row()
        no_split(row)
        add_para(row.cells[0], f.label, size=style.small, bold=True)
        for i, o in enumerate(f.options):
            cell = row.cells[i + 1]
            colour = o.extra.get("couleur")
            if colour:
                set_cell_fill(cell, COLOURS[colour])
            p = add_para(cell, "", size=style.small)
            add_box(p, f"{f.path}|box('{o.code}')", style)
            points = o.extra.get("points", "")
            unit = "pt" if str(points) in ("0", "1") else "pts"
            add_run(p, f" {points} {unit}", size=style.small, bold=True)
            text = add_para(cell, o.label, size=max(style.small - 1, style.tiny), first=False)
            text.paragraph_format.line_spacing = Pt(max(style.small - 1, style.tiny) + 1)
    if others:
        add_spacer(doc)
        style.compact.add(f"{section.id}_complements")   # « Item : ……… », two a row
        section_block(doc, [Section(f"{section.id}_complements", "INFORMATIONS COMPLÉMENTAIRES",
                                    section.page, tuple(others))], style, {})

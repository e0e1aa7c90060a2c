"""The tables of a DOCX template: a list field as a repeated row (``{%tr for %}``) with a
header row repeated on each page, and a grid section (rows × columns of boxes)."""

from __future__ import annotations

from typing import NamedTuple

from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.shared import Pt

from ..catalogue import references
from ..catalogue.definition import Field, Section
from .template_ooxml import (
    add_box, add_page_break, add_para, add_run, add_spacer, fixed_widths, label_under_its_text, no_split,
    row_height,
    set_cell_fill, set_cell_margins, set_table_borders,
)
from .template_metrics import (
    CELL_PADDING_MM, box_hang_mm, line_pitch_mm, long_text, longest_word_mm, text_width_mm, wrapped_lines,
)
from .template_sections import label_separator, option_text, repeat_header, section_block, template_var
from .template_style import COLOURS, CONTENT_WIDTH_MM, HEADING_FILL, WRITING_LINE_MM, Style

#: a handwriting line under a second field's label in a list cell (the print check's floor)
MIN_WRITING_MM = 6.0
#: a list cell's boxes start this far from its left edge: a value typed to the right edge
#: of the column before is then never one text with the box (the text reader's runs are
#: cut at gaps of half the box's size, 7 pt)
BOX_INDENT_MM = 2.0


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


class Column(NamedTuple):
    """A printed column of a list: the fields it holds, its heading, and what it prints
    before a second field (its label unless the layout says shorter)."""
    fields: list[Field]
    heading: str
    labels: dict[str, str]
    width_mm: float | None = None

    def label(self, c: Field) -> str:
        return self.labels.get(c.path, c.label)


def _columns(f: Field, style: Style) -> tuple[list[Column], bool]:
    """A list's printed columns and whether they are numbered: one a field, or the
    definition's ``layout.list_columns`` (the seed's numbered columns, several fields in one)."""
    cols = [c for c in f.item_fields if c.printed]
    groups = style.list_columns.get(f.path)
    if not groups:
        return [Column([c], c.label, {}) for c in cols], False
    by_path = {c.path: c for c in cols}
    return [Column([by_path[p] for p in paths], heading or by_path[paths[0]].label, labels, width)
            for paths, heading, labels, width in groups], True


def _group_width(col: Column, style: Style) -> tuple[float, float]:
    """A column's fixed width (0: shares what is left) and its share of what is left; a
    second box with its label (« ☐ Offre refusée par le bénéficiaire ») on two lines at most."""
    if col.width_mm:
        return col.width_mm, 0.0
    texts = [c for c in col.fields if _column_width(c) == 0]
    if texts:
        return 0.0, sum(max(1.0, min(4.0, (c.max_length or 40) / 40)) for c in texts)
    widths = [_column_width(c) for c in col.fields]
    widths += [box_hang_mm(style.box, style.list_small) + BOX_INDENT_MM
               + text_width_mm(col.label(c), style.list_small) / 2 + CELL_PADDING_MM + 1.0
               for c in col.fields[1:] if c.type == "bool"]
    return max(widths), 0.0


def _boxes_printed(c: Field) -> bool:
    return c.type in ("choice", "multi") and not _written(c)


def _no_broken_words(columns: list[Column], widths: list[float], style: Style) -> list[float]:
    """Widen each column to its heading's longest word (and its options' when printed as
    boxes, a second field's label; a text to what its longest value needs,
    :func:`_text_widths`), taking the room from the widest columns; the total width is kept."""
    text_need = _text_widths(columns, style)
    need = []
    for i, (col, w) in enumerate(zip(columns, widths)):
        fields = col.fields
        words = [longest_word_mm(col.heading, style.list_small, bold=True)]
        box = 4.0 + BOX_INDENT_MM   # the ☐, its space and its indent
        for k, c in enumerate(fields):
            if _boxes_printed(c):
                words += [box + longest_word_mm(option_text(o), style.list_small) for o in c.options]
            elif _written(c):   # the value printed as text: its longest code
                words += [longest_word_mm(o.code, style.list_small) for o in c.options]
            if k and c.type == "bool":
                words.append(box + longest_word_mm(col.label(c), style.list_small))
            elif k:
                words.append(longest_word_mm(col.label(c), style.list_small, bold=True))
        if len(fields) == 1 and fields[0].type == "date":   # dd/mm/yyyy on one line
            words.append(_column_width(fields[0]) - CELL_PADDING_MM - 0.3)
        need.append(max(max(words) + CELL_PADDING_MM + 0.3, text_need.get(i, 0.0)))
    widths = list(widths)
    for _ in range(len(widths) * 4):
        short = [i for i, (w, n) in enumerate(zip(widths, need)) if w < n - 0.01]
        if not short:
            break
        i = short[0]
        missing = need[i] - widths[i]
        donors = sorted((j for j in range(len(widths))   # a width the layout fixes is kept
                         if widths[j] - need[j] > 0.5 and not columns[j].width_mm),
                        key=lambda j: widths[j] - need[j], reverse=True)
        if not donors:
            break
        j = donors[0]
        give = min(missing, widths[j] - need[j])
        widths[i] += give
        widths[j] -= give
    return widths


def _pt_mm(pt: float) -> float:
    return pt * 25.4 / 72


#: a list cell's margins (``set_cell_margins`` in :func:`list_table`, twips)
LIST_CELL_MARGIN_MM = 40 / 1440 * 25.4
LIST_CELL_VMARGINS_MM = 2 * 10 / 1440 * 25.4


def longest_value(c: Field) -> str:
    """The longest text a list cell of ``c`` prints: a text's ``max_length`` characters of
    long words; a code's longest « code – libellé » of its reference list."""
    if c.type == "code" and c.options_from:
        return max((f"{code} – {e.label}" for code, e in references.by_code(c.options_from).items()),
                   key=len, default="")
    if c.type == "choice":   # printed as its code (a theme's letter)
        return max((o.code for o in c.options), key=len, default="")
    if c.type == "multi":
        return ", ".join(o.code for o in c.options)
    if c.type == "date":
        return "00/00/0000"
    return long_text(c.max_length or 40)


def _text_mm(c: Field, width_mm: float, style: Style) -> float:
    """The height of the longest value ``c`` allows printed at the list's size in a column
    ``width_mm`` wide."""
    lines = wrapped_lines(longest_value(c), width_mm - 2 * LIST_CELL_MARGIN_MM, style.list_small)
    return lines * line_pitch_mm(style.list_small)


def _multi_line(columns: list[Column]) -> bool:
    """Whether a list's rows hold several lines (a text of ``lines`` > 1, options stacked
    as boxes): rows of the form's ``list_row_mm``; else rows one handwriting line high."""
    cols = [c for col in columns for c in col.fields]
    return (any(_boxes_printed(c) and len(c.options) > 1 for c in cols)
            or any((c.lines or 1) > 1 for c in cols if c.type == "text"))


def _base_row_mm(columns: list[Column], style: Style) -> float:
    return style.list_row_mm if _multi_line(columns) else min(style.list_row_mm, WRITING_LINE_MM + 2.0)


def _text_widths(columns: list[Column], style: Style) -> dict[int, float]:
    """The width each one-text column needs for its longest value to fit a row of the
    form's ``list_row_mm`` (the rows' lines at the list's size): the template's column widths
    follow it so that a rendered value never makes its row taller than the blank's (a row
    that grows moves the rows under it off the blank's layout map)."""
    room = _base_row_mm(columns, style) - LIST_CELL_VMARGINS_MM - 0.3
    need = {}
    for i, col in enumerate(columns):
        if len(col.fields) != 1 or col.fields[0].type not in ("text", "code") or col.width_mm:
            continue
        c = col.fields[0]
        w = 2 * LIST_CELL_MARGIN_MM + 5.0
        while _text_mm(c, w, style) > room and w < CONTENT_WIDTH_MM:
            w += 0.2
        need[i] = w
    return need


def _row_mm(columns: list[Column], widths: list[float], style: Style) -> float:
    """A list row's height: the form's ``list_row_mm`` when a cell holds several lines,
    one handwriting line otherwise (the emplois recherchés, the rendez-vous: 22 mm rows of
    one line each pushed the CERS's page 1 over and left its page 2 four-fifths empty);
    taller when a text's longest value does not fit it at its column's width, or when a
    column holds stacked boxes and a text under them (column 5 of the fiche de suivi
    emploi: the résultat, then the motif's label and its lines, room for its
    ``max_length`` typed)."""
    tallest = 0.0
    for col, width in zip(columns, widths):
        mm = LIST_CELL_VMARGINS_MM + 0.3
        for k, c in enumerate(col.fields):
            if _boxes_printed(c):
                mm += len(c.options) * _pt_mm(style.box_line)
            elif c.type == "bool":
                mm += _pt_mm(style.box_line)
            elif c.type == "text" and k:   # a second field: its label, then its lines
                # the print check's floor ((lines - 1) lines, the label sharing the first)
                # and its longest value typed
                floor = max((c.lines or 1) - 1, 1) * MIN_WRITING_MM
                mm += line_pitch_mm(style.list_small) + max(floor, _text_mm(c, width, style)) + 1.0
            elif c.type in ("text", "code"):
                mm += _text_mm(c, width, style)
        tallest = max(tallest, mm)
    return max(_base_row_mm(columns, style), round(tallest + 0.5))


def list_table(doc, f: Field, style: Style, inline: bool = False) -> None:
    """A repeating table: a fixed number of rows per page, each page of rows its own page.
    ``inline``: a short list inside its section (never on a page of its own)."""
    columns, numbered = _columns(f, style)
    fixed, share = zip(*(_group_width(col, style) for col in columns))
    free = max(CONTENT_WIDTH_MM - sum(fixed), 20.0)
    widths = [w if w else free * t / sum(share) for w, t in zip(fixed, share)]
    widths = _no_broken_words(columns, widths, style)
    new_page = style.list_new_page
    if inline:
        pass
    elif (new_page is True and (f.rows_per_page or 0) >= 6) or (isinstance(new_page, list) and f.path in new_page):
        add_page_break(doc, line_pt=1)   # a long table starts on its own page: each page of rows is alike
    rows_per_page = f.rows_per_page or 8
    add_para(doc, "{%p for chunk in " + f.path + "|pages(" + str(rows_per_page) + ", " + str(f.min_rows) +
          ") %}", size=1)
    table = doc.add_table(rows=3, cols=len(columns))
    set_table_borders(table)
    set_cell_margins(table, 10, 10, 40, 40)
    fixed_widths(table, widths)
    head = table.rows[0].cells[0].merge(table.rows[0].cells[-1])
    set_cell_fill(head, HEADING_FILL)
    add_para(head, f.label + "{% if chunk.continued %} (suite){% endif %}", size=style.heading, bold=True)
    for n, (col, cell) in enumerate(zip(columns, table.rows[1].cells), 1):
        set_cell_fill(cell, "F2F2F2")
        add_para(cell, f"{n}. {col.heading}" if numbered else col.heading, size=style.list_small, bold=True)
    no_split(table.rows[1])
    for heading_row in table.rows[:2]:
        repeat_header(heading_row)
        for cell in heading_row.cells:   # never left at a page's foot without a row
            for para in cell.paragraphs:
                para.paragraph_format.keep_with_next = True
    # rows[2] is the loop row: docxtpl's {%tr %} tags need their own rows.
    loop_open = table.rows[2]
    add_para(loop_open.cells[0], "{%tr for row in chunk.rows %}", size=1)
    data_row = table.add_row()
    # "at least": the blank's printed height (the layout map's rows), and a text typed in
    # Word past the row makes it grow instead of being hidden
    row_height(data_row, _row_mm(columns, widths, style), exact=False)
    no_split(data_row)
    for col, cell in zip(columns, data_row.cells):
        for k, c in enumerate(col.fields):
            _cell_field(cell, c, style, first=k == 0, label=col.label(c) if k else None)
        if inline:   # a short list is never split over two pages (the CERS's rendez-vous)
            for para in cell.paragraphs:
                para.paragraph_format.keep_with_next = True
    close = table.add_row()
    add_para(close.cells[0], "{%tr endfor %}", size=1)
    add_para(doc, "{%p if not chunk.last %}", size=1)
    add_page_break(doc, line_pt=1)
    add_para(doc, "{%p endif %}", size=1)
    add_para(doc, "{%p endfor %}", size=1)


def _cell_field(cell, c: Field, style: Style, *, first: bool, label: str | None) -> None:
    """One field of a list row in its cell: its boxes, or its value; a second field of the
    column with its own label (« ☐ Offre refusée… », « Motif … : » above its lines)."""
    if _boxes_printed(c):
        for i, o in enumerate(c.options):
            p = add_para(cell, "", size=style.list_small, first=first and i == 0)
            label_under_its_text(p, style, style.list_small, indent_mm=BOX_INDENT_MM)
            add_box(p, f"row.{c.path}|box('{o.code}')", style)
            add_run(p, f" {option_text(o)}", size=style.list_small)
    elif c.type == "bool":
        p = add_para(cell, "", size=style.list_small, first=first)
        label_under_its_text(p, style, style.list_small, indent_mm=BOX_INDENT_MM)
        add_box(p, f"row.{c.path}|box", style)
        if label:
            add_run(p, f" {label}", size=style.list_small)
    else:
        if label:
            add_para(cell, label + label_separator(label).rstrip(), size=style.list_small,
                     bold=True, first=False)
        add_para(cell, "{{ " + template_var(c.path, c, "row") + " }}", size=style.list_small,
                 first=first)


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
            # a palier's text at 7 pt (was 6): at 8 pt the grid no longer holds on one page
            text = add_para(cell, o.label, size=max(style.small - 1, style.tiny), first=False)
            text.paragraph_format.line_spacing = Pt(max(style.small - 1, style.tiny) + 1)
    if others:
        add_spacer(doc)
        style.compact.add(f"{section.id}_complements")   # « Item : ……… », two a row
        section_block(doc, [Section(f"{section.id}_complements", "INFORMATIONS COMPLÉMENTAIRES",
                                    section.page, tuple(others))], style, {})

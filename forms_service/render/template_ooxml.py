"""Low-level helpers on python-docx objects for the template builder: cell fills, borders
and margins, fixed widths and heights, paragraphs and runs, the ☐ of a box, breaks."""

from __future__ import annotations

from docx.enum.table import WD_ROW_HEIGHT_RULE
from docx.enum.text import WD_BREAK, WD_LINE_SPACING
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Mm, Pt, RGBColor

from .template_metrics import box_hang_mm
from .template_style import BODY_FONT, BOX_FONT, Style


def set_cell_fill(cell, fill: str) -> None:
    tc_pr = cell._tc.get_or_add_tcPr()
    shd = OxmlElement("w:shd")
    shd.set(qn("w:val"), "clear")
    shd.set(qn("w:color"), "auto")
    shd.set(qn("w:fill"), fill)
    tc_pr.append(shd)


def set_table_borders(table, size: int = 4, color: str = "000000") -> None:
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


def set_cell_margins(table, top=20, bottom=20, left=60, right=60) -> None:
    tbl_pr = table._tbl.tblPr
    mar = OxmlElement("w:tblCellMar")
    for edge, val in (("top", top), ("left", left), ("bottom", bottom), ("right", right)):
        el = OxmlElement(f"w:{edge}")
        el.set(qn("w:w"), str(val))
        el.set(qn("w:type"), "dxa")
        mar.append(el)
    tbl_pr.append(mar)


def no_split(row) -> None:
    tr_pr = row._tr.get_or_add_trPr()
    el = OxmlElement("w:cantSplit")
    tr_pr.append(el)


def row_height(row, mm: float, exact: bool = False) -> None:
    row.height = Mm(mm)
    row.height_rule = WD_ROW_HEIGHT_RULE.EXACTLY if exact else WD_ROW_HEIGHT_RULE.AT_LEAST


def fixed_widths(table, widths_mm: list[float]) -> None:
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


def add_para(cell_or_doc, text: str = "", *, size: float, bold: bool = False, italic: bool = False,
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
        add_run(p, text, size=size, bold=bold, italic=italic, font=font)
    return p


def add_run(p, text: str, *, size: float, bold: bool = False, italic: bool = False, font: str = BODY_FONT,
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


def shade_run(run, fill: str) -> None:
    """A run printed on a coloured ground (a colour legend's swatch)."""
    shd = OxmlElement("w:shd")
    shd.set(qn("w:val"), "clear")
    shd.set(qn("w:color"), "auto")
    shd.set(qn("w:fill"), fill)
    run._element.get_or_add_rPr().append(shd)


def add_box(p, expr: str, style: Style) -> None:
    """A checkbox: the Jinja expression prints ☐ or ☒ in the box font.

    The glyph's square is 0.25 em wide in DejaVu Sans, so a 3.5 mm box needs 14 pt;
    the paragraph's line spacing is fixed so that the big glyph does not make the
    line taller than the text around it.
    """
    add_run(p, "{{ " + expr + " }}", size=style.box, font=BOX_FONT)
    p.paragraph_format.line_spacing = Pt(style.box_line)
    p.paragraph_format.line_spacing_rule = WD_LINE_SPACING.EXACTLY


def label_under_its_text(p, style: Style, size: float, indent_mm: float = 0.0) -> None:
    """An option's paragraph (a box, then its label) whose label, when it wraps, goes on
    under the label's first word instead of under the box (a hanging indent)."""
    hang = box_hang_mm(style.box, size)
    p.paragraph_format.left_indent = Mm(indent_mm + hang)
    p.paragraph_format.first_line_indent = Mm(-hang)


def add_page_break(doc, line_pt: float | None = None) -> None:
    """A paragraph holding a page break. ``line_pt``: its line's exact height, so that it
    fits under a page nearly full (else the paragraph, a line of body text high, goes to
    the next page and its break leaves that page empty: the CERS filled to its max_length)."""
    p = doc.add_paragraph()
    p.paragraph_format.space_before = Pt(0)
    p.paragraph_format.space_after = Pt(0)
    if line_pt is not None:
        p.paragraph_format.line_spacing = Pt(line_pt)
        p.paragraph_format.line_spacing_rule = WD_LINE_SPACING.EXACTLY
    p.add_run().add_break(WD_BREAK.PAGE)
    for r in p.runs:
        r.font.size = Pt(1)


def add_spacer(doc, pt: float = 3) -> None:
    p = doc.add_paragraph()
    p.paragraph_format.space_before = Pt(0)
    p.paragraph_format.space_after = Pt(0)
    p.paragraph_format.line_spacing = Pt(pt)
    r = p.add_run("")
    r.font.size = Pt(1)

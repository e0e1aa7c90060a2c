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

The pieces: :mod:`~forms_service.render.template_style` (fonts, sizes),
:mod:`~forms_service.render.template_ooxml` (python-docx helpers),
:mod:`~forms_service.render.template_sections` (sections on the grid),
:mod:`~forms_service.render.template_tables` (lists and grids); this module puts
them in order, form by form.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from docx import Document
from docx.enum.section import WD_ORIENT
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Mm, Pt, RGBColor

from ..catalogue import FormDefinition, catalogue
from . import geometry
from .template_ooxml import (
    add_page_break, add_para, add_run, add_spacer, fixed_widths, set_cell_fill,
    set_cell_margins, set_table_borders,
)
from .template_sections import section_block
from .template_style import BODY_FONT, CONTENT_WIDTH_MM, HEADING_FILL, Style
from .template_tables import grid_table, list_table


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
    set_table_borders(table, size=8)
    set_cell_margins(table, 60, 60, 100, 100)
    fixed_widths(table, [55, CONTENT_WIDTH_MM - 55])
    left, right = table.rows[0].cells
    add_para(left, "{{ departement.logo }}", size=style.body)
    add_para(left, "{{ departement.nom }}", size=style.body, bold=True, first=False)
    add_para(right, (fd.annexe or "").upper(), size=style.small, align=WD_ALIGN_PARAGRAPH.RIGHT)
    add_para(right, fd.title.upper(), size=style.heading + 3, bold=True, align=WD_ALIGN_PARAGRAPH.CENTER,
          first=False)
    if fd.printed_note:
        p = add_para(right, "", size=style.small, align=WD_ALIGN_PARAGRAPH.CENTER, first=False)
        add_run(p, "{% if modele_indicatif %}" + fd.printed_note.upper() + "{% endif %}",
             size=style.small, bold=True, color=RGBColor(0xA0, 0x00, 0x00))
    if fd.intro:
        add_spacer(doc)
        add_para(doc, fd.intro, size=style.small, italic=True, first=False)
    add_spacer(doc, 4)



def _save(doc, out: Path) -> None:
    """Save with fixed zip timestamps, so that an unchanged definition rebuilds the same
    bytes (the template version is a hash of them)."""
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
            add_page_break(doc)
        page = section.page or page
        pair = [section] + [by_id[b] for a, b in beside if a == section.id]
        if section.banner:
            add_para(doc, section.banner, size=style.heading + 0.5, bold=True, first=False)
        if section.id in (layout.get("grids") or []):
            grid_table(doc, section, style, layout.get("compact_sections") or [])
        else:
            if any(f.type != "list" for s in pair for f in s.fields if f.printed):
                section_block(doc, pair, style, breaks)
            for f in (f for s in pair for f in s.fields if f.printed and f.type == "list"):
                add_spacer(doc)
                list_table(doc, f, style)
        if any(f.path in breaks for s in pair for f in s.fields):
            page = (section.page or 0) + 1   # the section went on over a planned page break
        for s in pair:
            if s.note:
                add_para(doc, s.note, size=style.small, italic=True, first=False)
        add_spacer(doc, style.section_gap)
    for line in layout.get("summary") or []:
        p = add_para(doc, "", size=style.heading, first=False)
        add_run(p, line, size=style.heading, bold=True)
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
    set_table_borders(table)
    set_cell_margins(table)
    widths = [22, CONTENT_WIDTH_MM - 22 - 60, 60] if has_extra else [22, CONTENT_WIDTH_MM - 22]
    fixed_widths(table, widths)
    heads = ["Code", "Libellé", "Remarque"][:cols]
    for h, cell in zip(heads, table.rows[0].cells):
        set_cell_fill(cell, HEADING_FILL)
        add_para(cell, h, size=style.body, bold=True)
    # Rows are data, looped by docxtpl, so a new code list needs no template edit.
    open_row = table.add_row()
    add_para(open_row.cells[0], "{%tr for e in entries %}", size=1)
    row = table.add_row()
    add_para(row.cells[0], "{{ e.code }}", size=style.body, bold=True)
    add_para(row.cells[1], "{{ e.label }}", size=style.body)
    if has_extra:
        add_para(row.cells[2], "{{ e.remarque }}", size=style.small)
    close = table.add_row()
    add_para(close.cells[0], "{%tr endfor %}", size=1)
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

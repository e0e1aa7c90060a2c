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
import re
import zipfile
from dataclasses import replace
from pathlib import Path

from docx import Document
from docx.enum.section import WD_ORIENT
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Mm, Pt, RGBColor

from ..catalogue import FormDefinition, catalogue
from ..catalogue.definition import Section
from . import geometry
from .template_ooxml import (
    add_page_break, add_para, add_run, add_spacer, fixed_widths, set_cell_fill,
    set_cell_margins, set_table_borders, shade_run,
)
from .template_sections import section_block
from .template_style import (
    BODY_FONT, COLOURS, CONTENT_WIDTH_MM, HEADER_RIGHT_CLEAR_MM, HEADER_TEXT_TOP_MM, HEADING_FILL, Style,
)
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
    return doc


def _page_field(p, instr: str, size: float) -> None:
    """A PAGE / NUMPAGES field in paragraph ``p`` (Word and LibreOffice compute it)."""
    fld = OxmlElement("w:fldSimple")
    fld.set(qn("w:instr"), f" {instr} ")
    run = add_run(p, "1", size=size)
    fld.append(run._element)
    p._p.append(fld)


def _header_line(p, fd: FormDefinition, size: float) -> None:
    add_run(p, "{{ departement.nom }} · " + (fd.short_title or fd.title) + " · page ", size=size)
    _page_field(p, "PAGE", size)
    add_run(p, "/", size=size)
    _page_field(p, "NUMPAGES", size)


def page_header(doc, fd: FormDefinition, style: Style) -> None:
    """The header of every page: département, form, page n/N.

    A DOCX download also carries its QR code there, right of the line; in the PDF path
    (no QR: the stamp prints it in the corner) the line is moved down clear of the
    registration marks and of the printers' unprintable edge.
    """
    header = doc.sections[0].header
    size = max(style.small, 8)
    first = header.paragraphs[0]
    add_run(first, "{%p if document.qr %}", size=1)
    with_qr = header.add_paragraph()
    with_qr.paragraph_format.tab_stops.add_tab_stop(Mm(CONTENT_WIDTH_MM), alignment=2)   # right
    _header_line(with_qr, fd, size)
    with_qr.add_run("\t{{ document.qr }}")
    header.add_paragraph().add_run("{%p else %}")
    alone = header.add_paragraph()
    alone.paragraph_format.space_before = Mm(HEADER_TEXT_TOP_MM - 4 - 3.5)
    alone.paragraph_format.right_indent = Mm(HEADER_RIGHT_CLEAR_MM)
    _header_line(alone, fd, size)
    header.add_paragraph().add_run("{%p endif %}")


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


def _list_inside(section: Section) -> bool:
    """A list followed by other fields of its section (the CER's rendez-vous before the
    référent's signature): printed where the definition puts it, inside the section."""
    kinds = [f.type == "list" for f in section.fields if f.printed]
    return any(kinds) and not all(kinds) and not kinds[-1]


def _section_around_list(doc, section: Section, style: Style, breaks: dict) -> None:
    """The fields before each list, the list, then the rest under no new heading."""
    part: list = []
    title = section.title
    for f in (f for f in section.fields if f.printed):
        if f.type != "list":
            part.append(f)
            continue
        if part:   # the part before the list on one page (the CERP's référent was split)
            section_block(doc, [replace(section, title=title, fields=tuple(part), note=None)], style, breaks,
                          together=True)
            title, part = "", []
        add_spacer(doc, 1)
        list_table(doc, f, style, inline=True)
        add_spacer(doc, 1)
    if part:
        section_block(doc, [replace(section, title=title, fields=tuple(part), note=None)], style, breaks)


_COLOUR_WORD = re.compile(r"\b(" + "|".join(COLOURS) + r")\b")


def note_para(doc, text: str, style: Style) -> None:
    """A section's note; the names of the grid's colours in it (the EDE's « vert, rose,
    bleu ») printed on their colour, so that the note is the grid's colour legend."""
    p = add_para(doc, "", size=style.small, first=False)
    at = 0
    for m in _COLOUR_WORD.finditer(text):
        if m.start() > at:
            add_run(p, text[at:m.start()], size=style.small, italic=True)
        shade_run(add_run(p, m.group(1), size=style.small, bold=True), COLOURS[m.group(1)])
        at = m.end()
    add_run(p, text[at:], size=style.small, italic=True)


def build(fd: FormDefinition, out_dir: Path) -> Path:
    layout = fd.layout.builder_options()
    style = Style(layout)
    breaks = layout.get("page_break_before_group") or {}
    beside = layout.get("side_by_side") or []          # [[left_id, right_id], ...]
    right_of = {b: a for a, b in beside}
    by_id = {s.id: s for s in fd.sections}
    doc = new_document(style)
    page_header(doc, fd, style)
    title_block(doc, fd, style)
    page = None
    for section in fd.sections:
        printed = [f for f in section.fields if f.printed]
        if not printed or section.id in right_of:
            continue
        new_page = page is not None and section.page and section.page != page and fd.fixed_layout
        if new_page and not section.banner:
            add_page_break(doc)
        elif page is not None and not new_page:
            add_spacer(doc, style.section_gap)   # between sections (not after a page's last one)
        page = section.page or page
        pair = [section] + [by_id[b] for a, b in beside if a == section.id]
        if section.banner:
            banner = add_para(doc, section.banner, size=style.heading + 0.5, bold=True, first=False)
            # the banner starts the page itself: a break paragraph after a full page would
            # print a blank page
            banner.paragraph_format.page_break_before = bool(new_page)
        if section.id in (layout.get("grids") or []):
            grid_table(doc, section, style, layout.get("compact_sections") or [])
        elif len(pair) == 1 and _list_inside(section):
            _section_around_list(doc, section, style, breaks)
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
                note_para(doc, s.note, style)
        page = page or 0
    for i, line in enumerate(layout.get("summary") or []):
        size = style.heading if i == 0 else style.small    # the result, then its explanations
        p = add_para(doc, "", size=size, first=False)
        add_run(p, line, size=size, bold=i == 0)
    if not layout.get("summary"):
        # the body ends with a paragraph (Word's rule), 1 twip high: after a table that
        # ends at the page's foot, a taller one would print a page of its own (the CERP
        # printed a blank 6th page, its QR code alone on it)
        add_spacer(doc, 0.05)
    out = out_dir / (fd.template or f"{fd.id}.docx")
    _save(doc, out)
    return out


def build_reference(fd: FormDefinition, out_dir: Path) -> Path:
    """A reference list printed as a document: its labels in a table, under a header row
    repeated on every page. Annexe 1 prints no codes (they are the service's, not the
    guide's); Annexe 4 prints its domain headings; Annexe 6 the sphere of each action."""
    from .template_sections import repeat_header

    style = Style({"font_size": 9})
    doc = new_document(style)
    page_header(doc, fd, style)
    title_block(doc, fd, style)
    kind = fd.reference_list
    cols = {"annexe-1": [("Libellé", "label", CONTENT_WIDTH_MM)],
            "annexe-6": [("Code", "code", 18), ("Libellé", "label", CONTENT_WIDTH_MM - 18 - 30 - 50),
                         ("Sphère", "sphere", 30), ("Remarque", "remarque", 50)]}.get(
        kind, [("Code", "code", 22), ("Libellé", "label", CONTENT_WIDTH_MM - 22)])
    table = doc.add_table(rows=1, cols=len(cols))
    set_table_borders(table)
    set_cell_margins(table)
    fixed_widths(table, [w for _, _, w in cols])
    for (head, _, _), cell in zip(cols, table.rows[0].cells):
        set_cell_fill(cell, HEADING_FILL)
        add_para(cell, head, size=style.body, bold=True)
    repeat_header(table.rows[0])
    # Rows are data, looped by docxtpl, so a new code list needs no template edit.
    open_row = table.add_row()
    add_para(open_row.cells[0], "{%tr for e in entries %}", size=1)
    if kind == "annexe-4":
        row = table.add_row()
        add_para(row.cells[0], "{%tr if e.groupe %}", size=1)
        row = table.add_row()
        cell = row.cells[0].merge(row.cells[-1])
        set_cell_fill(cell, "F2F2F2")
        add_para(cell, "{{ e.groupe }}", size=style.body, bold=True)
        row._tr.get_or_add_trPr().append(OxmlElement("w:cantSplit"))
        p = cell.paragraphs[0]
        p.paragraph_format.keep_with_next = True
        row = table.add_row()
        add_para(row.cells[0], "{%tr endif %}", size=1)
    row = table.add_row()
    for (_, key, _), cell in zip(cols, row.cells):
        size = style.small if key in ("remarque", "sphere") else style.body
        add_para(cell, "{{ e." + key + " }}", size=size, bold=key == "code")
    close = table.add_row()
    add_para(close.cells[0], "{%tr endfor %}", size=1)
    add_spacer(doc, 0.05)   # the body's last paragraph, 1 twip high (see build)
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

"""Fillable PDFs: an AcroForm over a printed form, placed by its layout map.

:func:`make_fillable` adds to a rendered (and usually stamped) PDF:

* one checkbox per printed box of the layout map (no radio groups: a one-choice
  question is as many checkboxes as options, like on paper), at the box's square;
* one text field per text zone (multi-line when the zone is at least two lines of
  text tall); signature zones stay without a field (a signature is made on paper);
* a field *hierarchy* whose fully qualified names are the project's paths, then the
  option code for a box of a choice: ``suspension.motifs.refus_controle``,
  ``pap.0.resultat.atteint``; a box alone (bool) and a text field: their path
  (``reorientation.demandee``, ``beneficiaire.nom``). This naming is the contract
  read back by :mod:`parsers.acroform`;
* appearance streams for every state (checkbox on / off, text as filled), opaque,
  so what the field shows never mixes with what is printed underneath and every
  reader shows the same thing without regenerating appearances;
* the document's identity in its Info dictionary (``/RsaForm``,
  ``/RsaTemplateVersion``, ``/RsaDocumentId``) and in its XMP metadata.

The committed blank fillable PDFs (``templates/pdf``) are built by
:mod:`forms_service.render.templates_pdf`.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
from typing import Any

import pikepdf
from pikepdf import Array, Dictionary, Name, String

from ..catalogue import FormDefinition, catalogue
from ..catalogue.boxes import is_ticked
from ..catalogue.paths import get_path
from ..errors import TemplateError, UnknownForm
from .context import format_value

log = logging.getLogger(__name__)

META_KEYS = {"form": "/RsaForm", "version": "/RsaTemplateVersion", "document_id": "/RsaDocumentId"}
XMP_NS = "http://rsa-forms.example/ns/1.0/"
BLANK_DOCUMENT_ID = "BLANK"

ON = Name("/Yes")
OFF = Name("/Off")
TEXT_FONT = Name("/Helv")
TEXT_SIZE = 9.0          # points; smaller when a zone is lower than a line
LEADING = 1.15           # line height / font size
PAD = 1.5                # text inset in its field
FF_MULTILINE = 1 << 12
FLAG_PRINT = 4
BOX_STROKE = 0.075       # ☐ outline width / square side (DejaVu Sans: 0.75 pt on 10 pt)


# --------------------------------------------------------------------------- field tree

class _Node:
    __slots__ = ("name", "children", "terminal", "widgets", "kind", "path", "code")

    def __init__(self, name: str):
        self.name = name
        self.children: dict[str, _Node] = {}
        self.terminal = False
        self.widgets: list[dict] = []
        self.kind = ""          # "box" | "text"
        self.path = ""
        self.code: Any = None


def field_name(entry: dict) -> str:
    """The fully qualified field name of a layout box or zone."""
    if "value" in entry and entry["value"] is not True:
        return f"{entry['path']}.{entry['value']}"
    return entry["path"]


def _tree(layout: dict) -> _Node:
    root = _Node("")
    entries = [("box", b) for b in layout.get("boxes", ())]
    entries += [("text", z) for z in layout.get("zones", ()) if z.get("kind") == "text"]
    for kind, entry in entries:
        name = field_name(entry)
        node = root
        for part in name.split("."):
            if node.terminal:
                raise TemplateError(f"Champ PDF « {name} » : « {node.path} » est déjà un champ",
                                    rule="champ_pdf_conflit")
            node = node.children.setdefault(part, _Node(part))
        if node.children or (node.terminal and node.kind != kind):
            raise TemplateError(f"Champ PDF « {name} » en conflit avec un autre champ",
                                rule="champ_pdf_conflit")
        node.terminal, node.kind, node.path = True, kind, entry["path"]
        node.code = entry.get("value")
        node.widgets.append(entry)
    return root


# --------------------------------------------------------------------------- values

_get = get_path
box_checked = is_ticked   # what the template's ``box`` filter prints as ☒


def text_value(value: Any, ftype: str | None = None) -> str:
    """A value as printed: dates dd/mm/yyyy (ISO strings too), ``Oui`` for true."""
    if ftype == "date" and isinstance(value, str):
        try:
            value = dt.date.fromisoformat(value[:10])
        except ValueError:
            pass
    if isinstance(value, dt.datetime):
        value = value.date()
    return format_value(value)


# --------------------------------------------------------------------------- appearances

def _fmt(v: float) -> str:
    s = f"{v:.3f}".rstrip("0").rstrip(".")
    return s if s not in ("", "-0") else "0"


def _pdf_text(text: str) -> bytes:
    raw = text.encode("cp1252", errors="replace")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") \
        .replace(b"\r", b"\\r").replace(b"\n", b"\\n") + b")"


def _width(text: str, size: float) -> float:
    from reportlab.pdfbase.pdfmetrics import stringWidth
    return stringWidth(text, "Helvetica", size)


def _wrap(text: str, width: float, size: float) -> list[str]:
    lines: list[str] = []
    for para in text.replace("\r\n", "\n").split("\n"):
        line = ""
        for word in para.split(" "):
            cand = f"{line} {word}" if line else word
            if _width(cand, size) <= width or not line:
                line = cand
            else:
                lines.append(line)
                line = word
        lines.append(line)
    return lines


def _text_size(height: float) -> float:
    return round(max(4.0, min(TEXT_SIZE, (height - 2 * PAD) / LEADING)), 1)


def _fit_longest(fdef, width: float, size: float) -> tuple[float, bool]:
    """The size at which the longest value of a one-line field fits its widget (a date
    dd/mm/yyyy, a text of ``max_length`` average letters), and whether the widget must
    auto-size for it (issue 16: PDF readers clipped the year of narrow date widgets)."""
    if fdef is None:
        return size, False
    if fdef.type == "date":
        longest = "00/00/0000"
    elif fdef.type == "text" and fdef.max_length:
        longest = "n" * fdef.max_length
    else:
        return size, False
    room = width - 2 * PAD - 1
    need = _width(longest, size)
    if need <= room:
        return size, False
    return max(4.0, round(size * room / need, 1)), True


def _is_multiline(height: float, size: float) -> bool:
    return height - 2 * PAD >= 2 * size * LEADING


def _text_stream(pdf: pikepdf.Pdf, w: float, h: float, text: str, size: float, multiline: bool,
                 font) -> pikepdf.Stream:
    ops = [b"1 g 0 0 " + f"{_fmt(w)} {_fmt(h)}".encode() + b" re f\n", b"/Tx BMC\n"]
    if text:
        ops.append(b"q " + f"{_fmt(PAD)} {_fmt(PAD)} {_fmt(w - 2 * PAD)} {_fmt(h - 2 * PAD)}".encode()
                   + b" re W n\nBT 0 g " + str(TEXT_FONT).encode() + f" {_fmt(size)} Tf ".encode())
        lead = size * LEADING
        if multiline:
            lines = _wrap(text, w - 2 * PAD - 1, size)
            y = h - PAD - size
            ops.append(f"{_fmt(PAD + 0.5)} {_fmt(y)} Td {_fmt(lead)} TL\n".encode())
            for k, line in enumerate(lines):
                ops.append((b"T* " if k else b"") + _pdf_text(line) + b" Tj\n")
        else:
            y = (h - size * 0.72) / 2   # cap height centred
            ops.append(f"{_fmt(PAD + 0.5)} {_fmt(y)} Td ".encode() + _pdf_text(text.replace("\n", " "))
                       + b" Tj\n")
        ops.append(b"ET Q\n")
    ops.append(b"EMC\n")
    return _form_xobject(pdf, b"".join(ops), w, h, Dictionary(Font=Dictionary({str(TEXT_FONT): font})))


def _box_stream(pdf: pikepdf.Pdf, w: float, h: float, on: bool) -> pikepdf.Stream:
    """☐ or ☒ drawn over a white square: the same look as the printed glyph."""
    s = max(0.4, BOX_STROKE * min(w, h))
    half = s / 2
    ops = [f"1 g 0 0 {_fmt(w)} {_fmt(h)} re f\n".encode(),
           f"0 G {_fmt(s)} w 0 J 0 j {_fmt(half)} {_fmt(half)} {_fmt(w - s)} {_fmt(h - s)} re S\n".encode()]
    if on:
        ops.append(f"{_fmt(s)} {_fmt(s)} m {_fmt(w - s)} {_fmt(h - s)} l "
                   f"{_fmt(s)} {_fmt(h - s)} m {_fmt(w - s)} {_fmt(s)} l S\n".encode())
    return _form_xobject(pdf, b"".join(ops), w, h)


def _form_xobject(pdf: pikepdf.Pdf, content: bytes, w: float, h: float,
                  resources: Dictionary | None = None) -> pikepdf.Stream:
    st = pikepdf.Stream(pdf, content)
    st.Type = Name.XObject
    st.Subtype = Name.Form
    st.BBox = Array([0, 0, round(w, 3), round(h, 3)])
    st.Resources = resources if resources is not None else Dictionary()
    return pdf.make_indirect(st)


# --------------------------------------------------------------------------- the AcroForm

def _rect(entry: dict, page: pikepdf.Page) -> tuple[float, float, float, float]:
    mb = [float(v) for v in page.mediabox]
    llx, top_y = min(mb[0], mb[2]), max(mb[1], mb[3])
    x0, top, x1, bottom = entry["bbox"]
    return (llx + x0, top_y - bottom, llx + x1, top_y - top)


def _set_metadata(pdf: pikepdf.Pdf, form: str, version: str, document_id: str, title: str) -> None:
    pdf.docinfo[META_KEYS["form"]] = form
    pdf.docinfo[META_KEYS["version"]] = version
    pdf.docinfo[META_KEYS["document_id"]] = document_id
    if title:
        pdf.docinfo["/Title"] = title
    try:
        with pdf.open_metadata(set_pikepdf_as_editor=False, update_docinfo=False) as meta:
            meta.register_xml_namespace(XMP_NS, "rsa")
            meta["rsa:form"] = form
            meta["rsa:templateVersion"] = version
            meta["rsa:documentId"] = document_id
            if title:
                meta["dc:title"] = title
    except Exception as exc:  # the Info dictionary is the contract; XMP is a courtesy
        log.warning("XMP metadata not written: %s", exc)


def make_fillable(pdf_bytes: bytes, layout: dict, *, form: str, version: str, document_id: str,
                  data_dump: dict | None = None) -> bytes:
    """``pdf_bytes`` with an AcroForm placed by ``layout`` (see the module docstring).

    ``data_dump`` (the model's dump, python or JSON mode) pre-fills the fields: ticked
    boxes ``/Yes``, text as printed (dates dd/mm/yyyy). Raises
    :class:`~forms_service.errors.TemplateError` when the layout does not fit the PDF
    (another form, version or page count) or the PDF already has form fields.
    """
    if layout.get("form") not in (None, form) or layout.get("template_version") not in (None, version):
        raise TemplateError(f"La carte ({layout.get('form')} {layout.get('template_version')}) ne "
                            f"correspond pas au document ({form} {version})", rule="carte_autre_modele")
    try:
        fd: FormDefinition | None = catalogue.get(form)
    except UnknownForm:
        fd = None
    tree = _tree(layout)
    with pikepdf.open(io.BytesIO(pdf_bytes)) as pdf:
        if "/AcroForm" in pdf.Root and len(pdf.Root.AcroForm.get("/Fields", [])):
            raise TemplateError("Ce PDF a déjà des champs de formulaire", rule="pdf_deja_remplissable")
        pages = list(pdf.pages)
        if layout.get("pages") and len(layout["pages"]) != len(pages):
            raise TemplateError(f"La carte décrit {len(layout['pages'])} page(s), le PDF en a "
                                f"{len(pages)}", rule="carte_pages")
        font = pdf.make_indirect(Dictionary(Type=Name.Font, Subtype=Name.Type1, BaseFont=Name.Helvetica,
                                            Encoding=Name.WinAnsiEncoding))
        zadb = pdf.make_indirect(Dictionary(Type=Name.Font, Subtype=Name.Type1,
                                            BaseFont=Name.ZapfDingbats))
        annots: dict[int, list] = {}

        def widget(entry: dict) -> tuple[int, Dictionary]:
            n = int(entry["page"])
            if not 1 <= n <= len(pages):
                raise TemplateError(f"Page {n} absente du PDF", rule="carte_pages")
            page = pages[n - 1]
            return n, Dictionary(Type=Name.Annot, Subtype=Name.Widget, F=FLAG_PRINT,
                                 Rect=Array([round(v, 3) for v in _rect(entry, page)]), P=page.obj)

        def label_of(node: _Node) -> str:
            f = fd.field(node.path) if fd else None
            if f is None:
                return node.path
            if node.kind == "box" and node.code is not True:
                opt = f.option(str(node.code))
                return f"{f.label} : {opt.label}" if opt else f.label
            return f.label + (" (JJ/MM/AAAA)" if f.type == "date" else "")

        def build(node: _Node, parent: Dictionary | None) -> Dictionary:
            field = Dictionary(T=String(node.name))
            if parent is not None:
                field.Parent = parent
            field = pdf.make_indirect(field)
            if not node.terminal:
                field.Kids = Array([build(child, field) for child in node.children.values()])
                return field
            fdef = fd.field(node.path) if fd else None
            field.TU = String(label_of(node))
            if node.kind == "box":
                on = box_checked(_get(data_dump, node.path), node.code) if data_dump else False
                field.FT = Name.Btn
                field.Ff = 0
                field.V = ON if on else OFF
                field.DA = String("/ZaDb 0 Tf 0 g")
            else:
                value = text_value(_get(data_dump, node.path), fdef.type if fdef else None) \
                    if data_dump else ""
                field.FT = Name.Tx
                field.V = String(value)
                field.DA = String(f"{TEXT_FONT} {_fmt(TEXT_SIZE)} Tf 0 g")
                if fdef is not None and fdef.max_length and fdef.type == "text":
                    field.MaxLen = int(fdef.max_length)
            widgets = []
            for entry in node.widgets:
                n, wd = widget(entry)
                x0, y0, x1, y1 = (float(v) for v in wd.Rect)
                w, h = x1 - x0, y1 - y0
                if node.kind == "box":
                    wd.MK = Dictionary(CA=String("8"))   # ZapfDingbats cross, like ☒
                    wd.AP = Dictionary(N=Dictionary(Yes=_box_stream(pdf, w, h, True),
                                                    Off=_box_stream(pdf, w, h, False)))
                    wd.AS = field.V
                else:
                    size = _text_size(h)
                    multiline = _is_multiline(h, size)
                    if multiline:
                        field.Ff = FF_MULTILINE
                    auto = False
                    if not multiline:
                        size, auto = _fit_longest(fdef, w, size)
                    # auto-size (0 Tf) where the longest value does not fit at the set size
                    wd.DA = String(f"{TEXT_FONT} {'0' if auto else _fmt(size)} Tf 0 g")
                    wd.MK = Dictionary(BG=Array([1, 1, 1]))
                    wd.AP = Dictionary(N=_text_stream(pdf, w, h, str(field.V), size, multiline, font))
                widgets.append((n, wd))
            if len(widgets) == 1:          # field and widget in one dictionary
                n, wd = widgets[0]
                for key, val in wd.items():
                    field[key] = val
                annots.setdefault(n, []).append(field)
            else:
                kids = []
                for n, wd in widgets:
                    wd.Parent = field
                    kid = pdf.make_indirect(wd)
                    kids.append(kid)
                    annots.setdefault(n, []).append(kid)
                field.Kids = Array(kids)
            return field

        fields = [build(child, None) for child in tree.children.values()]
        for n, lst in annots.items():
            page = pages[n - 1]
            existing = list(page.obj.get("/Annots", Array()))
            page.obj.Annots = Array(existing + lst)
        pdf.Root.AcroForm = Dictionary(
            Fields=Array(fields), DA=String(f"{TEXT_FONT} 0 Tf 0 g"),
            DR=Dictionary(Font=Dictionary({str(TEXT_FONT): font, "/ZaDb": zadb})),
            NeedAppearances=False)
        _set_metadata(pdf, form, version, document_id, fd.title if fd else "")
        out = io.BytesIO()
        pdf.save(out)
        return out.getvalue()


def read_metadata(pdf_bytes: bytes) -> dict:
    """``{"form", "version", "document_id"}`` from the Info dictionary (None when absent)."""
    with pikepdf.open(io.BytesIO(pdf_bytes)) as pdf:
        info = pdf.docinfo
        return {k: (str(info[v]) if v in info else None) for k, v in META_KEYS.items()}

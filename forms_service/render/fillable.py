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

:func:`build_templates_pdf` writes ``templates/pdf/<form>.pdf`` for every form
(the blank form, stamped with document id ``BLANK``, made fillable) and
``templates/pdf/manifest.json``; :func:`stale_templates` says which of them no
longer match their inputs. ``python -m forms_service.render.fillable --help``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import io
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pikepdf
from pikepdf import Array, Dictionary, Name, String

from ..catalogue import FormDefinition, catalogue
from ..config import Settings
from ..errors import TemplateError, UnknownForm
from .context import format_value

log = logging.getLogger(__name__)

META_KEYS = {"form": "/RsaForm", "version": "/RsaTemplateVersion", "document_id": "/RsaDocumentId"}
XMP_NS = "http://rsa-forms.example/ns/1.0/"
BLANK_DOCUMENT_ID = "BLANK"
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
#: Source files whose content changes the committed fillable PDFs (besides the
#: template version, which covers the DOCX template, the definition and the print
#: configuration).
SOURCE_INPUTS = ("fillable.py", "layout.py", "stamp.py", "geometry.py", "qr.py", "context.py")

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

def _get(data: Any, path: str) -> Any:
    cur = data
    for part in path.split("."):
        if isinstance(cur, dict):
            cur = cur.get(part)
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return None
    return cur


def box_checked(value: Any, code: Any) -> bool:
    """What the template's ``box`` filter prints as ☒ (see ``context.f_box``)."""
    if code is True:
        return bool(value)
    if isinstance(value, (list, tuple)):
        return code in value
    return value == code


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
                    wd.DA = String(f"{TEXT_FONT} {_fmt(size)} Tf 0 g")
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


# --------------------------------------------------------------------------- templates/pdf

def _pdf_dir(settings: Settings) -> Path:
    return Path(settings.templates_dir) / "pdf"


def template_forms(settings: Settings) -> list[FormDefinition]:
    """Forms (kind "form") whose DOCX template exists: the ones with a fillable PDF."""
    from .pipeline import template_path

    out = []
    for fd in catalogue.forms():
        if fd.kind != "form":
            continue
        try:
            template_path(fd, settings)
        except TemplateError:
            continue
        out.append(fd)
    return out


def _sources_digest() -> str:
    here = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for name in SOURCE_INPUTS:
        h.update(name.encode() + b"\0" + (here / name).read_bytes() + b"\0")
    return h.hexdigest()


def inputs_hash(fd: FormDefinition, settings: Settings) -> str:
    """What a form's fillable PDF is made from: its template version and our sources.

    LibreOffice's PDFs are not byte-reproducible, so staleness is decided on inputs,
    never on PDF bytes.
    """
    from .pipeline import template_version

    h = hashlib.sha256()
    h.update(f"{MANIFEST_FORMAT}|{fd.id}|{template_version(fd, settings)}|".encode())
    h.update(_sources_digest().encode())
    return h.hexdigest()


def read_manifest(settings: Settings) -> dict:
    path = _pdf_dir(settings) / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"format": MANIFEST_FORMAT, "forms": {}}
    data.setdefault("forms", {})
    return data


def stale_templates(settings: Settings) -> list[str]:
    """Ids of the forms whose ``templates/pdf/<form>.pdf`` is missing or out of date."""
    manifest = read_manifest(settings)
    out = []
    for fd in template_forms(settings):
        entry = manifest["forms"].get(fd.id) or {}
        if (not (_pdf_dir(settings) / f"{fd.id}.pdf").exists()
                or entry.get("inputs") != inputs_hash(fd, settings)):
            out.append(fd.id)
    return out


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)   # as a plain open() would (mkstemp makes 0600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def build_fillable_template(fd: FormDefinition, settings: Settings, pool) -> tuple[bytes, dict]:
    """The blank fillable PDF of a form (stamped ``BLANK``) and its layout map."""
    from .layout import build_layout_and_pdf
    from .pipeline import template_version
    from .stamp import stamp_pdf

    version = template_version(fd, settings)
    layout, blank = build_layout_and_pdf(fd, settings=settings, pool=pool, version=version)
    stamped = stamp_pdf(blank, fd.id, version, BLANK_DOCUMENT_ID)
    return make_fillable(stamped, layout, form=fd.id, version=version,
                         document_id=BLANK_DOCUMENT_ID), layout


def build_templates_pdf(settings: Settings, pool, *, forms: list[str] | None = None,
                        force: bool = False) -> dict[str, Path]:
    """Write ``templates/pdf/<form>.pdf`` for every form with a template, and the manifest.

    Only stale forms are rebuilt unless ``force``; ``forms`` restricts the run. The
    manifest records, per form, the hash of its inputs (see :func:`inputs_hash`), its
    template version and its field counts; entries of forms that have no template any
    more are dropped (their PDFs are left alone). Returns the paths written.
    """
    manifest = read_manifest(settings)
    wanted = template_forms(settings)
    stale = set(stale_templates(settings))
    written: dict[str, Path] = {}
    for fd in wanted:
        if forms and fd.id not in forms:
            continue
        if not force and fd.id not in stale:
            continue
        from .pipeline import template_version

        t0 = time.perf_counter()
        data, layout = build_fillable_template(fd, settings, pool)
        path = _pdf_dir(settings) / f"{fd.id}.pdf"
        _write_atomic(path, data)
        written[fd.id] = path
        manifest["forms"][fd.id] = {
            "template_version": template_version(fd, settings),
            "inputs": inputs_hash(fd, settings),
            "pages": len(layout["pages"]),
            "checkboxes": len(layout["boxes"]),
            "text_fields": sum(1 for z in layout["zones"] if z["kind"] == "text"),
            "signature_zones": sum(1 for z in layout["zones"] if z["kind"] == "signature"),
        }
        log.info("fillable template written", extra={"form": fd.id,
                                                     "ms": round((time.perf_counter() - t0) * 1000)})
    known = {fd.id for fd in wanted}
    manifest["forms"] = {k: v for k, v in sorted(manifest["forms"].items()) if k in known}
    manifest["format"] = MANIFEST_FORMAT
    manifest["note"] = ("Generated by `python -m forms_service.render.fillable --build`; "
                        "do not edit. `inputs` = sha256(template version + render sources).")
    _write_atomic(_pdf_dir(settings) / MANIFEST,
                  (json.dumps(manifest, indent=2, ensure_ascii=False, sort_keys=True) + "\n").encode())
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m forms_service.render.fillable",
        description="Fillable PDFs of the forms (templates/pdf): build, or list the stale ones.")
    parser.add_argument("--build", action="store_true", help="rebuild the stale PDFs (needs LibreOffice)")
    parser.add_argument("--force", action="store_true", help="with --build: rebuild them all")
    parser.add_argument("--check", action="store_true", help="exit 1 when a PDF is stale")
    parser.add_argument("forms", nargs="*", help="only these forms")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from ..config import Settings

    settings = Settings.from_env()
    if args.build:
        from .pdf import ConverterPool

        with ConverterPool(size=2, work_dir=Path(settings.var_dir) / "lo-fillable",
                           cold_fallback=False) as pool:
            for form, path in build_templates_pdf(settings, pool, forms=args.forms or None,
                                                  force=args.force).items():
                print(f"{form}: {path}")
    stale = stale_templates(settings)
    for form in stale:
        print(f"périmé : {form}", file=sys.stderr)
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())

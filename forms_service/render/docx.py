"""Render a form's DOCX template with docxtpl, fast.

A template is loaded once per template version: docxtpl patches its XML (the
tags Word splits across runs are joined) and Jinja compiles it. Each render
then only runs the compiled template and writes the XML parts straight into a
copy of the template's zip. ``render_plain`` is the same render through
``DocxTemplate.render`` and exists so that a test proves both give the same
document, and the benchmark has its baseline.
"""

from __future__ import annotations

import hashlib
import io
import re
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from docxtpl import DocxTemplate
from jinja2 import TemplateError

from ..errors import TemplateError as TemplateContractError
from .context import Recording, make_env

HEADER_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/header"
IMAGE_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/image"
QR_MEDIA = "word/media/rsa_qr.png"
QR_REL_ID = "rIdRsaQr"
LOGO_MEDIA = "word/media/rsa_logo.png"
LOGO_REL_ID = "rIdRsaLogo"
# A 1×1 white PNG: the image parts always exist, so their relationships never dangle.
BLANK_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63f8ffffff7f0009fb03fd2a86e38a0000000049454e44ae426082")

_P_SPLIT = re.compile(r"<w:p([ >])")
_P_JOIN = re.compile(r"\n<w:p([ >])")
_LISTING_CHARS = re.compile("[\t\a\n\f]")
#: Entries rewritten by every render; the others are compressed once per template.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def drawing_xml(rel_id: str, width_mm: float, height_mm: float, name: str, docpr_id: int) -> str:
    """An inline picture, as Word writes one."""
    cx, cy = int(width_mm * 36000), int(height_mm * 36000)
    return (
        '<w:drawing><wp:inline distT="0" distB="0" distL="0" distR="0" '
        'xmlns:wp="http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing">'
        f'<wp:extent cx="{cx}" cy="{cy}"/><wp:docPr id="{docpr_id}" name="{name}"/>'
        '<a:graphic xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main">'
        '<a:graphicData uri="http://schemas.openxmlformats.org/drawingml/2006/picture">'
        '<pic:pic xmlns:pic="http://schemas.openxmlformats.org/drawingml/2006/picture">'
        f'<pic:nvPicPr><pic:cNvPr id="{docpr_id}" name="{name}"/><pic:cNvPicPr/></pic:nvPicPr>'
        '<pic:blipFill><a:blip xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships" '
        f'r:embed="{rel_id}"/><a:stretch><a:fillRect/></a:stretch></pic:blipFill>'
        f'<pic:spPr><a:xfrm><a:off x="0" y="0"/><a:ext cx="{cx}" cy="{cy}"/></a:xfrm>'
        '<a:prstGeom prst="rect"><a:avLst/></a:prstGeom></pic:spPr></pic:pic>'
        '</a:graphicData></a:graphic></wp:inline></w:drawing>'
    )


def run_xml(inner: str) -> str:
    """Close the current text run, put ``inner`` in a run of its own, reopen the text run."""
    return f"</w:t></w:r><w:r>{inner}</w:r><w:r><w:t>"


def _post(xml: str, tpl: DocxTemplate) -> str:
    xml = _P_JOIN.sub(r"<w:p\1", xml)
    xml = xml.replace("{_{", "{{").replace("}_}", "}}").replace("{_%", "{%").replace("%_}", "%}")
    # resolve_listing turns \n \t \a \f inside text runs into Word breaks, tabs and
    # paragraphs; without any of them it returns its input (and costs ~1/3 of a render).
    return tpl.resolve_listing(xml) if _LISTING_CHARS.search(xml) else xml


def paragraph_text(xml_lines: list[str], lineno: int) -> str:
    """The text of the paragraph a Jinja error points at (one ``<w:p`` per line)."""
    line = xml_lines[max(lineno - 1, 0)] if xml_lines else ""
    return re.sub(r"<[^>]+>", "", line).strip()[:200]


@dataclass
class _Part:
    name: str
    prefix: str
    template: Any      # compiled Jinja template of the part's patched XML
    suffix: str
    source_lines: list[str]


@dataclass
class CompiledTemplate:
    """A DOCX template ready to render: its zip entries and its compiled XML parts."""

    path: Path
    sha256: str
    entries: dict[str, bytes]
    order: list[str]
    parts: dict[str, _Part] = field(default_factory=dict)
    #: A zip of the entries no render changes (styles, theme, settings...), compressed
    #: once; each render appends its own parts to a copy of it.
    static_zip: bytes = b""
    dynamic: list[str] = field(default_factory=list)


def _split_root(xml: str, tag: str) -> tuple[str, str, str]:
    """(before, inner, after) of the element ``tag`` in a part's XML."""
    start = xml.index(f"<{tag}")
    start = xml.index(">", start) + 1
    end = xml.rindex(f"</{tag}>")
    return xml[:start], xml[start:end], xml[end:]


def _add_rel(rels_xml: str, rel_id: str, target: str) -> str:
    if f'Id="{rel_id}"' in rels_xml:
        return rels_xml
    rel = f'<Relationship Id="{rel_id}" Type="{IMAGE_REL}" Target="{target}"/>'
    return rels_xml.replace("</Relationships>", rel + "</Relationships>")


def _ensure_png(types_xml: str) -> str:
    if 'Extension="png"' in types_xml:
        return types_xml
    return types_xml.replace("<Default ", '<Default Extension="png" ContentType="image/png"/><Default ', 1)


def compile_template(path: Path, env) -> CompiledTemplate:
    raw = path.read_bytes()
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        order = z.namelist()
        entries = {n: z.read(n) for n in order}
    ct = CompiledTemplate(path, hashlib.sha256(raw).hexdigest(), entries, order)
    tpl = DocxTemplate(io.BytesIO(raw))
    tpl.init_docx()
    targets = {"word/document.xml": "w:body"}
    for rel in tpl.docx.part.rels.values():
        if rel.reltype == HEADER_REL:
            targets["word/" + rel.target_ref] = "w:hdr"
    for name, tag in targets.items():
        xml = entries[name].decode("utf-8")
        before, inner, after = _split_root(xml, tag)
        patched = _P_SPLIT.sub(r"\n<w:p\1", tpl.patch_xml(inner))
        lines = patched.splitlines()
        try:
            compiled = env.from_string(patched)
        except TemplateError as exc:
            raise TemplateContractError(
                f"{path.name} : balise invalide ({exc.message}) dans le paragraphe "
                f"« {paragraph_text(lines, getattr(exc, 'lineno', 0) or 0)} »",
                rule="balise_invalide") from None
        ct.parts[name] = _Part(name, before, compiled, after, lines)
    # Image parts for the header QR and the logo, always present (blank by default).
    rels_name = "word/_rels/document.xml.rels"
    entries[rels_name] = _add_rel(entries[rels_name].decode(), LOGO_REL_ID, "media/rsa_logo.png").encode()
    for name in list(ct.parts):
        if name.startswith("word/header"):
            hrels = f"word/_rels/{name.split('/')[-1]}.rels"
            base = entries.get(hrels, b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                                      b'<Relationships xmlns="http://schemas.openxmlformats.org/'
                                      b'package/2006/relationships"></Relationships>').decode()
            entries[hrels] = _add_rel(base, QR_REL_ID, "media/rsa_qr.png").encode()
            if hrels not in order:
                order.append(hrels)
    entries["[Content_Types].xml"] = _ensure_png(entries["[Content_Types].xml"].decode()).encode()
    for media in (QR_MEDIA, LOGO_MEDIA):
        if media not in order:
            order.append(media)
        entries.setdefault(media, BLANK_PNG)
    ct._tpl = tpl  # for resolve_listing
    ct.dynamic = [n for n in order if n in ct.parts or n in (QR_MEDIA, LOGO_MEDIA)]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name in order:
            if name not in ct.dynamic:
                _write_entry(z, name, entries[name], level=6)
    ct.static_zip = buf.getvalue()
    return ct


def _write_entry(z: zipfile.ZipFile, name: str, data: bytes, level: int) -> None:
    stored = name.endswith((".png", ".jpeg", ".jpg"))  # compressed already
    z.writestr(zipfile.ZipInfo(name, date_time=_ZIP_DATE), data,
               compress_type=zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED,
               compresslevel=None if stored else level)


class DocxRenderer:
    """Compiled templates by path and content hash; thread-safe; one per process."""

    def __init__(self):
        self.env = make_env()
        self._cache: dict[tuple[str, str], CompiledTemplate] = {}
        self._lock = threading.Lock()

    def compiled(self, path: Path) -> CompiledTemplate:
        stat = path.stat()
        key = (str(path), f"{stat.st_mtime_ns}:{stat.st_size}")
        with self._lock:
            ct = self._cache.get(key)
            if ct is None:
                ct = compile_template(path, self.env)
                self._cache[key] = ct
            return ct

    def render(self, path: Path, context: dict, *, images: dict[str, bytes] | None = None,
               record: Recording | None = None) -> bytes:
        """The rendered DOCX. ``images`` may replace the QR (``qr``) and logo (``logo``) PNGs."""
        ct = self.compiled(path)
        rendered: dict[str, bytes] = {}
        with (record or Recording()):
            for name, part in ct.parts.items():
                try:
                    out = part.template.render(context)
                except TemplateError as exc:
                    lineno = _template_lineno(exc)
                    raise TemplateContractError(
                        f"{path.name} : {exc.__class__.__name__} : {exc} — paragraphe "
                        f"« {paragraph_text(part.source_lines, lineno)} »", rule="rendu_modele") from None
                rendered[name] = (part.prefix + _post(out, ct._tpl) + part.suffix).encode("utf-8")
        images = images or {}
        if images.get("qr"):
            rendered[QR_MEDIA] = images["qr"]
        if images.get("logo"):
            rendered[LOGO_MEDIA] = images["logo"]
        # The static entries are already compressed: append the rendered ones to a copy.
        buf = io.BytesIO(ct.static_zip)
        with zipfile.ZipFile(buf, "a") as z:
            for name in ct.dynamic:
                _write_entry(z, name, rendered.get(name, ct.entries[name]), level=1)
        return buf.getvalue()


def _template_lineno(exc: BaseException) -> int:
    tb = exc.__traceback__
    lineno = 0
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            lineno = tb.tb_lineno
        tb = tb.tb_next
    return lineno


def render_plain(path: Path, context: dict) -> bytes:
    """The same render through ``DocxTemplate.render`` (the reference and the baseline)."""
    tpl = DocxTemplate(str(path))
    tpl.render(context, make_env(), autoescape=True)
    buf = io.BytesIO()
    tpl.save(buf)
    return buf.getvalue()

"""The steps every render shares: which template, which version, which context.

The template version identifies what was printed: the first 12 hex digits of a
SHA-256 over the DOCX template, the form definition and the configuration that
changes the print (the département's name and logo, the EDE grid and bounds). A scan's
QR code names it, and the layout map of that version says where each box was.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..catalogue import FormDefinition
from ..config import Settings
from ..errors import TemplateError
from ..rules.programme import Programme
from . import qr
from .context import Recording, build_context, raw
from .docx import LOGO_REL_ID, QR_REL_ID, DocxRenderer, drawing_xml, run_xml

#: The header QR of a DOCX download: 18.5 mm symbol + quiet zone, see geometry.
DOCX_QR_MM = 20.5


def template_path(fd: FormDefinition, settings: Settings) -> Path:
    path = Path(settings.templates_dir) / "docx" / (fd.template or f"{fd.id}.docx")
    if not path.exists():
        raise TemplateError(f"Modèle introuvable pour « {fd.id} » : {path.name}", rule="modele_absent")
    return path


@lru_cache(maxsize=256)
def _file_digest(path: str, mtime_ns: int, size: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def file_digest(path: Path) -> str:
    st = path.stat()
    return _file_digest(str(path), st.st_mtime_ns, st.st_size)


def print_config(fd: FormDefinition, settings: Settings) -> dict:
    """The configuration that changes what a form looks like on paper."""
    cfg: dict[str, Any] = {"departement": settings.departement_name}
    if settings.departement_logo and Path(settings.departement_logo).exists():
        cfg["logo"] = file_digest(Path(settings.departement_logo))
    if fd.uses_ede_grid:
        programme = Programme.from_settings(settings)
        cfg["grid"] = programme.grid()
        cfg["ede_bounds"] = programme.bounds
    return cfg


def template_version(fd: FormDefinition, settings: Settings) -> str:
    h = hashlib.sha256()
    h.update(file_digest(template_path(fd, settings)).encode())
    h.update(json.dumps(fd.raw, sort_keys=True, ensure_ascii=False, default=str).encode())
    h.update(json.dumps(print_config(fd, settings), sort_keys=True, ensure_ascii=False,
                        default=str).encode())
    return h.hexdigest()[:12]


def _logo(settings: Settings) -> tuple[str, bytes | None]:
    path = settings.departement_logo
    if not path or not Path(path).exists():
        return "", None
    data = Path(path).read_bytes()
    from PIL import Image
    import io
    with Image.open(io.BytesIO(data)) as im:
        w, h = im.size
        if im.format != "PNG":
            buf = io.BytesIO()
            im.convert("RGBA").save(buf, "PNG")
            data = buf.getvalue()
    height_mm = 12.0
    return raw(run_xml(drawing_xml(LOGO_REL_ID, height_mm * w / h, height_mm, "logo", 9001))), data


_renderer = DocxRenderer()


def renderer() -> DocxRenderer:
    """The process's renderer: compiled templates are cached in it."""
    return _renderer


def render_docx(fd: FormDefinition, data: dict, *, settings: Settings, document_id: str,
                version: str, derived: dict | None = None, for_pdf: bool = False,
                record: Recording | None = None, docx_renderer: DocxRenderer | None = None) -> bytes:
    """The DOCX of a form. ``data`` is the model's dump (every key present).

    ``for_pdf``: the header stays empty (the PDF stamp prints marks, QR codes and
    footer on every page); a DOCX download carries its QR code in the header.
    ``docx_renderer``: another renderer than the process's (the PDF fast path's probe).
    """
    ctx, images = render_context(fd, data, settings=settings, document_id=document_id,
                                 version=version, derived=derived, for_pdf=for_pdf)
    return (docx_renderer or _renderer).render(template_path(fd, settings), ctx, images=images,
                                               record=record)


def render_context(fd: FormDefinition, data: dict, *, settings: Settings, document_id: str,
                   version: str, derived: dict | None = None,
                   for_pdf: bool = False) -> tuple[dict, dict[str, bytes]]:
    """The Jinja context of one render and the images it places (QR, logo)."""
    images: dict[str, bytes] = {}
    qr_xml: Any = ""
    if not for_pdf and document_id:
        payload = qr.payload(fd.id, version, None, None, document_id)
        images["qr"] = qr.qr_png(payload)
        qr_xml = raw(run_xml(drawing_xml(QR_REL_ID, DOCX_QR_MM, DOCX_QR_MM, "qr", 9002)))
    logo_xml, logo_png = _logo(settings)
    if logo_png:
        images["logo"] = logo_png
    ctx = build_context(fd, data, derived=derived,
                        document={"id": document_id, "version": version, "qr": qr_xml},
                        departement={"nom": settings.departement_name, "logo": logo_xml},
                        programme=Programme.from_settings(settings))
    return ctx, images

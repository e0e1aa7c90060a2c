"""The identification QR code printed on every page: payload format and symbol making.

Payload (ASCII, byte mode)::

    RSA1|<form>|<template version>|<page>/<pages>|<document id>    printed PDF pages
    RSA1|<form>|<template version>||<document id>                  DOCX downloads

* ``form``: catalogue id, lowercase ``[a-z0-9]`` words joined by ``-``, at most
  :data:`MAX_FORM_LEN` characters (``fiche-liaison``);
* ``template version``: exactly 12 lowercase hex digits;
* ``page``/``pages``: 1 ≤ page ≤ pages ≤ 999, no leading zeros; both empty for DOCX;
* ``document id``: 1–26 characters ``[A-Za-z0-9]`` (a ULID fits).

The longest payload is 84 bytes, which is what a version-5 symbol holds at error
correction M, so every symbol has the same size (see ``geometry.QR_*``). Payloads of at
most 60 bytes are encoded at level Q instead (same size, more redundancy).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from forms_service.render import geometry

PREFIX = "RSA1"
MAX_FORM_LEN = 31
MAX_PAGES = 999
MAX_DOC_ID_LEN = 26

_FORM_RE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_VERSION_RE = re.compile(r"[0-9a-f]{12}")
_DOC_ID_RE = re.compile(r"[A-Za-z0-9]{1,26}")
_INT_RE = re.compile(r"[1-9][0-9]{0,2}")

_CAPACITY_Q = 60   # bytes, version 5, byte mode
_CAPACITY_M = 84


@dataclass(frozen=True)
class QrInfo:
    form: str
    version: str
    page: int | None
    pages: int | None
    doc_id: str

    @property
    def is_docx(self) -> bool:
        return self.page is None


def _check_fields(form: str, version: str, doc_id: str) -> None:
    if not (isinstance(form, str) and _FORM_RE.fullmatch(form) and len(form) <= MAX_FORM_LEN):
        raise ValueError(f"invalid form id for the QR payload: {form!r}")
    if not (isinstance(version, str) and _VERSION_RE.fullmatch(version)):
        raise ValueError(f"template version must be 12 lowercase hex digits: {version!r}")
    if not (isinstance(doc_id, str) and _DOC_ID_RE.fullmatch(doc_id)):
        raise ValueError(f"document id must be 1-26 characters [A-Za-z0-9]: {doc_id!r}")


def payload(form: str, version: str, page: int | None, pages: int | None, doc_id: str) -> str:
    """The QR text of one page; ``page`` and ``pages`` both ``None`` for a DOCX download."""
    _check_fields(form, version, doc_id)
    if page is None and pages is None:
        page_part = ""
    else:
        if not (isinstance(page, int) and isinstance(pages, int) and 1 <= page <= pages <= MAX_PAGES):
            raise ValueError(f"invalid page number {page!r}/{pages!r}")
        page_part = f"{page}/{pages}"
    return f"{PREFIX}|{form}|{version}|{page_part}|{doc_id}"


def parse_payload(text: str) -> QrInfo | None:
    """The fields of a payload, or ``None`` if ``text`` is not exactly one of ours."""
    if not isinstance(text, str):
        return None
    fields = text.split("|")
    if len(fields) != 5 or fields[0] != PREFIX:
        return None
    _, form, version, page_part, doc_id = fields
    try:
        _check_fields(form, version, doc_id)
    except ValueError:
        return None
    if page_part == "":
        return QrInfo(form, version, None, None, doc_id)
    numbers = page_part.split("/")
    if len(numbers) != 2 or not all(_INT_RE.fullmatch(n) for n in numbers):
        return None
    page, pages = int(numbers[0]), int(numbers[1])
    if page > pages:
        return None
    return QrInfo(form, version, page, pages, doc_id)


def ec_level(text: str) -> str:
    """Error correction level used for ``text``: Q when it fits in version 5, else M."""
    n = len(text.encode("ascii"))
    if n > _CAPACITY_M:
        raise ValueError(f"payload too long for a version-{geometry.QR_VERSION} QR: {n} bytes")
    return "Q" if n <= _CAPACITY_Q else "M"


@lru_cache(maxsize=256)
def _matrix(text: str) -> bytes:
    import zxingcpp

    code = zxingcpp.create_barcode(text, zxingcpp.QRCode, ec_level=ec_level(text), version=geometry.QR_VERSION)
    img = np.asarray(code.to_image(add_quiet_zones=False))
    if img.shape != (geometry.QR_MODULES, geometry.QR_MODULES):
        raise RuntimeError(f"unexpected QR symbol shape {img.shape}")
    return np.packbits(img < 128).tobytes()


def qr_matrix(text: str) -> np.ndarray:
    """Modules of the version-5 symbol for ``text`` (``True`` = dark), without quiet zone.

    Made with zxing-cpp's encoder (0.5 ms, standard mask selection), the one QR encoder
    of the service (page stamps and the DOCX header).
    """
    n = geometry.QR_MODULES
    bits = np.unpackbits(np.frombuffer(_matrix(text), dtype=np.uint8), count=n * n)
    return bits.reshape(n, n).astype(bool)


def qr_png(text: str, module_mm: float = 0.5, *, border: int = 4, dpi: int = 600) -> bytes:
    """PNG of the symbol for ``text`` (the DOCX header QR): :func:`qr_matrix`'s modules,
    written by Pillow.

    The image has ``border`` quiet-zone modules and carries its physical size (``dpi``
    metadata), so inserting it at its natural size in the DOCX gives ``module_mm`` modules.
    Insert it with docxtpl's ``InlineImage(tpl, io.BytesIO(png), width=Mm(qr_png_size_mm(...)))``.
    """
    from PIL import Image

    if module_mm < geometry.QR_MODULE_MM:
        raise ValueError(f"QR modules must be at least {geometry.QR_MODULE_MM} mm")
    scale = max(1, round(module_mm / 25.4 * dpi))
    real_dpi = round(scale * 25.4 / module_mm)
    light = np.pad(~qr_matrix(text), border, constant_values=True)
    pixels = np.kron(light, np.ones((scale, scale), dtype=bool))
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", dpi=(real_dpi, real_dpi), optimize=True)
    return buf.getvalue()


def qr_png_size_mm(module_mm: float = 0.5, *, border: int = 4) -> float:
    """Printed side of :func:`qr_png`'s image, quiet zone included."""
    return (geometry.QR_MODULES + 2 * border) * module_mm

"""Images the desk shows an agent: a received page, upright, and a stored review crop.

    png = page_png(settings, batch_file, file_page, rotation=90)   # PNG bytes, ≤ 1100 px wide
    png = zone_png(settings, batch_file, file_page, bbox, rotation=90)  # a field's zone of it
    path = crop_path(settings, crop)                               # None if outside the storage

The caller has checked access (``forms_service.access``) before asking: these
functions only read files under the storage root.
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from forms_service.desk import storage
from forms_service.errors import NotFound

#: Width of a page image on the review page (pixels): enough to read handwriting.
PAGE_WIDTH = 1100
A4_WIDTH_PT = 595.3


#: Margin around a field's zone (PDF points): the label and the neighbouring boxes show.
ZONE_MARGIN_PT = 28


def page_png(settings, batch_file, file_page: int, *, rotation: int = 0,
             width: int = PAGE_WIDTH) -> bytes:
    """Page ``file_page`` (1-based) of a received file as PNG, turned upright by
    ``rotation`` (the clockwise angle the page appears turned by, as the reader says)."""
    return _encode(page_image(settings, batch_file, file_page, rotation=rotation, width=width))


def zone_png(settings, batch_file, file_page: int, bbox_pt: list[float], *,
             rotation: int = 0) -> bytes:
    """The part of an upright page around ``bbox_pt`` (x0, top, x1, bottom in PDF points of
    the form's page), with a margin: where a field without a stored crop was read. The
    upright scan is taken as the A4 portrait page the forms are printed on."""
    image = page_image(settings, batch_file, file_page, rotation=rotation, width=2 * PAGE_WIDTH)
    k = image.width / A4_WIDTH_PT
    x0, top, x1, bottom = bbox_pt
    m = ZONE_MARGIN_PT
    box = (max(0, int((x0 - 4 * m) * k)), max(0, int((top - m) * k)),
           min(image.width, int((x1 + 4 * m) * k)), min(image.height, int((bottom + m) * k)))
    if box[2] <= box[0] or box[3] <= box[1]:
        raise NotFound("Zone introuvable", path="zone")
    return _encode(image.crop(box))


def _encode(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True)
    return out.getvalue()


def page_image(settings, batch_file, file_page: int, *, rotation: int = 0,
               width: int = PAGE_WIDTH) -> Image.Image:
    """The upright page image, at most ``width`` pixels wide."""
    source = storage.path(settings, batch_file.stored_path)
    if not source.is_file():
        raise NotFound("Fichier introuvable dans le stockage", path="page")
    if batch_file.kind == "pdf":
        image = _pdf_page(source, file_page, width)
    elif batch_file.kind in ("tiff", "jpeg", "png"):
        image = _image_page(source, file_page)
    else:
        raise NotFound("Page introuvable", path="page")
    if rotation % 360:
        image = image.rotate(rotation % 360, expand=True)   # counter-clockwise: back upright
    if image.width > width:
        image = image.resize((width, round(image.height * width / image.width)))
    return image


def _pdf_page(source: Path, file_page: int, width: int) -> Image.Image:
    from forms_service.pdfpages import grey, open_pdf

    with open_pdf(source) as pdf:
        if not 1 <= file_page <= len(pdf):
            raise NotFound("Page introuvable", path="page")
        page = pdf[file_page - 1]
        page_width = page.get_width() or A4_WIDTH_PT
        return Image.fromarray(grey(page, dpi=72 * width / page_width))


def _image_page(source: Path, file_page: int) -> Image.Image:
    with Image.open(source) as im:
        if not 1 <= file_page <= getattr(im, "n_frames", 1):
            raise NotFound("Page introuvable", path="page")
        im.seek(file_page - 1)
        return im.convert("L")


def crop_path(settings, crop) -> Path | None:
    """The crop's PNG file, only when it lies under the storage root."""
    root = Path(settings.storage_dir).resolve()
    path = Path(crop.stored_path)
    path = (path if path.is_absolute() else root / path).resolve()
    if root not in path.parents or not path.is_file():
        return None
    return path

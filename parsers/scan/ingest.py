"""Stage 0 of scan reading: the page images of a file, as greyscale arrays.

Image PDFs (JPEG, JBIG2 or CCITT inside) are rasterised by PDFium at a fixed
resolution; TIFF (multi-page), JPEG and PNG are decoded by Pillow. Every
input is bounded: pages, pixels per page, page size. A decompression bomb or
a 100 000-pixel image is refused before it is decoded.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass
from typing import Iterator

import numpy as np
from PIL import Image, ImageSequence

from forms_service.errors import BadDocument

from forms_service.pdfpages import grey, open_pdf

RENDER_DPI = 200                 # PDF pages are rasterised at this resolution
MAX_PIXELS = 60_000_000          # an A4 page at 600 dpi is 35 Mpx
MAX_SIDE = 12_000                # pixels
MAX_PAGE_PT = 1800               # a PDF page larger than this (≈ A2) is not a form page


@dataclass
class PageImage:
    file: str
    file_page: int               # 1-based, in the file
    gray: np.ndarray             # uint8, 2-D
    dpi: float | None            # as the file says (None: unknown, guess from the size)
    #: the page is a picture of its own (a scan, a photo, a scanner's one JPEG per page), whose
    #: pixels identify it; False for a digital PDF's page rendered here (two filled copies of
    #: one form render alike without their field values)
    own_image: bool = True


def _check_size(w: int, h: int, where: str) -> None:
    if w <= 0 or h <= 0:
        raise BadDocument(f"{where} : image vide", rule="image_invalide")
    if w > MAX_SIDE or h > MAX_SIDE or w * h > MAX_PIXELS:
        raise BadDocument(f"{where} : image trop grande ({w} × {h} pixels)", rule="image_trop_grande")


def _pil_gray(im: Image.Image) -> np.ndarray:
    if im.mode in ("1", "L"):
        return np.asarray(im.convert("L"), dtype=np.uint8)
    if im.mode in ("I;16", "I;16B", "I"):
        arr = np.asarray(im, dtype=np.float32)
        return np.clip(arr / max(arr.max(), 1) * 255, 0, 255).astype(np.uint8)
    return np.asarray(im.convert("L"), dtype=np.uint8)


def images_of(name: str, data: bytes, kind: str, max_pages: int) -> Iterator[PageImage]:
    if kind == "pdf":
        yield from _pdf_pages(name, data, max_pages)
        return
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            im = Image.open(io.BytesIO(data))
            n = getattr(im, "n_frames", 1)
            if n > max_pages:
                raise BadDocument(f"Trop de pages ({n} ; {max_pages} au plus)", rule="trop_de_pages")
            for i, frame in enumerate(ImageSequence.Iterator(im)):
                _check_size(frame.width, frame.height, f"Page {i + 1}")
                dpi = frame.info.get("dpi")
                dpi = float(dpi[0]) if dpi and dpi[0] and dpi[0] > 20 else None
                yield PageImage(name, i + 1, _pil_gray(frame), dpi)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise BadDocument("Image trop grande (bombe de décompression ?)", rule="image_trop_grande") from None
        except (OSError, SyntaxError, ValueError, EOFError):
            raise BadDocument("Image illisible ou tronquée", rule="image_illisible") from None


_DRAW_IMAGE = re.compile(rb"^\s*q\s+([-\d.]+)\s+0\s+0\s+([-\d.]+)\s+([-\d.]+)\s+([-\d.]+)\s+cm\s+"
                         rb"/(\S+)\s+Do\s+Q\s*$")


def _scanned_pages(name: str, data: bytes, max_pages: int) -> list[PageImage] | None:
    """The page images of a PDF made by a scanner, taken out without rendering, or None.

    A scanner's PDF draws one JPEG over each whole page: it is decoded as it is, at the
    scan's own resolution (12 ms a 200-dpi page, where PDFium takes 68 ms to render it).
    Any other PDF — 1-bit pages (PDFium is as fast), text, several images, a mask, a
    turned page — returns None and is rendered by PDFium.
    """
    import cv2
    import pikepdf

    if b"/DCTDecode" not in data:
        return None
    try:
        pdf = pikepdf.open(io.BytesIO(data))
    except pikepdf.PasswordError:
        raise BadDocument("PDF chiffré : impossible de le lire sans mot de passe", rule="pdf_chiffre") from None
    except Exception:
        return None
    with pdf:
        n = len(pdf.pages)
        if n == 0 or n > max_pages:
            return None          # said by the PDFium path
        out = []
        for i, page in enumerate(pdf.pages):
            try:
                x0, y0, x1, y1 = (float(v) for v in page.mediabox)
                if page.get("/Rotate", 0) or max(x1 - x0, y1 - y0) > MAX_PAGE_PT or min(x1 - x0, y1 - y0) < 50:
                    return None
                m = _DRAW_IMAGE.match(page.Contents.read_bytes() if not isinstance(page.Contents, pikepdf.Array)
                                      else b"")
                xobjects = page.Resources.get("/XObject") or {}
                if m is None or len(xobjects) != 1:
                    return None
                sx, sy, tx, ty = (float(v) for v in m.groups()[:4])
                if abs(sx - (x1 - x0)) > 2 or abs(sy - (y1 - y0)) > 2 or abs(tx - x0) > 2 or abs(ty - y0) > 2:
                    return None
                img = xobjects.get("/" + m.group(5).decode("latin-1"))
                if img is None or img.get("/Subtype") != "/Image" or "/SMask" in img or "/Mask" in img \
                        or "/Decode" in img:
                    return None
                w, h = int(img.Width), int(img.Height)
                _check_size(w, h, f"Page {i + 1}")
                filt = img.get("/Filter")
                cs = img.get("/ColorSpace")
                if filt != "/DCTDecode" or cs not in ("/DeviceGray", "/DeviceRGB"):
                    return None   # 1-bit (CCITT G4): PDFium renders it as fast as anything
                arr = cv2.imdecode(np.frombuffer(img.read_raw_bytes(), np.uint8), cv2.IMREAD_GRAYSCALE)
                if arr is None or arr.shape != (h, w):
                    return None
                dpi = w / ((x1 - x0) / 72)
                out.append(PageImage(name, i + 1, np.ascontiguousarray(arr), dpi))
            except BadDocument:
                raise
            except Exception:
                return None
        return out


def _pdf_pages(name: str, data: bytes, max_pages: int) -> Iterator[PageImage]:
    fast = _scanned_pages(name, data, max_pages)
    if fast is not None:
        yield from fast
        return
    pages = []
    with open_pdf(data, max_pages) as doc:
        if len(doc) == 0:
            raise BadDocument("PDF sans page", rule="pdf_vide")
        for i in range(len(doc)):
            page = doc[i]
            w, h = page.get_size()
            if max(w, h) > MAX_PAGE_PT or min(w, h) < 50:
                raise BadDocument(f"Page {i + 1} : format de page inattendu ({w:.0f} × {h:.0f} pt)",
                                  rule="page_invalide")
            pages.append(PageImage(name, i + 1, grey(page, RENDER_DPI), RENDER_DPI, own_image=False))
            page.close()
    yield from pages


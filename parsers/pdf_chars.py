"""The characters of a digital PDF's pages, as PDFium places them, and the lines and
runs they make: what the text reader (:mod:`parsers.pdf_text`) and the relocation of a
re-exported DOCX's zones (:mod:`parsers.pdf_relocate`) both read.
"""

from __future__ import annotations

import ctypes
import re
import unicodedata
from dataclasses import dataclass, field

import numpy as np
import pypdfium2.raw as pdfium_c

from forms_service.pdfpages import open_pdf

from . import pdf_marks


@dataclass
class Char:
    text: str
    x0: float
    top: float
    x1: float
    bottom: float
    #: the char's baseline (top-left origin) and font size: the same for every char of a
    #: line, spaces included, where the box above is the glyph's ink (a space has none, a
    #: comma hangs below the line, an accented capital rises above it)
    baseline: float | None = None
    size: float | None = None
    #: the flattened widget that drew the char (index in ``PageText.widgets``), or None: a
    #: widget's text is its field's value, whole, even where the widget clipped it
    owner: int | None = None


@dataclass
class PageText:
    number: int
    width: float
    height: float
    chars: list[Char] = field(default_factory=list)
    #: small non-text objects (n×4, top-left origin): what may be drawn over a box
    drawn: object = None
    #: form XObjects smaller than the page (n×4): flattened widgets' appearances
    widgets: object = None

    @property
    def text(self) -> str:
        return "".join(c.text for c in self.chars)

    def mids(self) -> np.ndarray:
        """The middle of each char's x-height (top-left origin), computed once."""
        if getattr(self, "_mids", None) is None or len(self._mids) != len(self.chars):
            self._mids = np.array([_mid(c) for c in self.chars], float)
        return self._mids


def extract(data: bytes, max_pages: int = 200) -> list[PageText]:
    """Characters with boxes (top-left origin), page by page."""
    with open_pdf(data, max_pages) as doc:
        pages = []
        for i in range(len(doc)):
            page = doc[i]
            w, h = page.get_size()
            tp = page.get_textpage()
            n = tp.count_chars()
            text = tp.get_text_range(0, n) if n else ""
            pt = PageText(i + 1, w, h)
            pt.drawn, pt.widgets, owners = pdf_marks.drawn_objects(page)
            ox, oy = ctypes.c_double(), ctypes.c_double()
            for j in range(min(n, len(text))):
                ch = text[j]
                if ch in "\r\n":
                    continue
                left, bottom, right, top = tp.get_charbox(j)
                base = None
                if pdfium_c.FPDFText_GetCharOrigin(tp, j, ctypes.byref(ox), ctypes.byref(oy)):
                    base = h - oy.value
                size = pdfium_c.FPDFText_GetFontSize(tp, j) or None
                pt.chars.append(Char(ch, left, h - top, right, h - bottom, base, size,
                                     pdf_marks.text_owner(tp, j, owners)))
            tp.close()
            page.close()
            pages.append(pt)
        return pages


def norm(text: str) -> str:
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = text.replace("’", "'").lower()
    return re.sub(r"[^a-z0-9]+", " ", text).strip()


# -- which form ----------------------------------------------------------------


def _base(c: Char) -> float:
    return c.baseline if c.baseline is not None else c.bottom


def _mid(c: Char) -> float:
    """The middle of the x-height."""
    if c.baseline is not None and c.size:
        return c.baseline - 0.3 * c.size
    return (c.top + c.bottom) / 2


def _by_baseline(chars: list[Char]) -> list[list[Char]]:
    """Chars grouped in lines by baseline (their ink boxes differ within a line: a space has
    none, a comma hangs below the line), each line left to right."""
    lines: list[list[Char]] = []
    for c in sorted(chars, key=_base):
        if lines and _base(c) - _base(lines[-1][0]) < max(1.5, 0.25 * (c.size or 6)):
            lines[-1].append(c)
        else:
            lines.append([c])
    return [sorted(line, key=lambda c: c.x0) for line in lines]


#: a gap wider than this (in font sizes) between two chars of a line separates two texts
#: (spaces are chars: words of one text touch)
RUN_GAP = 0.5


def _runs(line: list[Char]) -> list[list[Char]]:
    """A line cut where two chars are further apart than RUN_GAP: separate texts."""
    runs: list[list[Char]] = []
    for c in line:
        size = c.size or 6
        if runs and c.x0 - runs[-1][-1].x1 <= RUN_GAP * size:
            runs[-1].append(c)
        else:
            runs.append([c])
    return runs


__all__ = ["Char", "PageText", "extract", "norm", "RUN_GAP"]

"""Text widths in the body font, for the template builder: a column is never narrower than
its longest word (LibreOffice and Word break a word inside only when it does not fit).

Carlito is metric-compatible with Calibri (the templates' font), so widths measured with
it hold in Word too. Without the font file (a machine without fonts-crosextra-carlito),
an average advance of 0.55 em is assumed, which errs on the wide side.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

MM_PER_PT = 25.4 / 72
FONT_FILES = {
    False: Path("/usr/share/fonts/truetype/crosextra/Carlito-Regular.ttf"),
    True: Path("/usr/share/fonts/truetype/crosextra/Carlito-Bold.ttf"),
}
#: what a table cell takes on each side of its text (template_ooxml.set_cell_margins: 60 twips)
CELL_PADDING_MM = 2 * 60 / 1440 * 25.4
_WORD = re.compile(r"\S+")


@lru_cache(maxsize=2)
def _font(bold: bool):
    path = FONT_FILES[bold]
    if not path.exists():
        return None
    from reportlab.pdfbase.pdfmetrics import registerFont
    from reportlab.pdfbase.ttfonts import TTFont
    name = "RsaCarlitoBold" if bold else "RsaCarlito"
    registerFont(TTFont(name, str(path)))
    return name


def text_width_mm(text: str, size_pt: float, bold: bool = False) -> float:
    name = _font(bold)
    if name is None:
        return len(text) * 0.55 * size_pt * MM_PER_PT
    from reportlab.pdfbase.pdfmetrics import stringWidth
    return stringWidth(text, name, size_pt) * MM_PER_PT


def longest_word_mm(text: str, size_pt: float, bold: bool = False) -> float:
    """The widest unbreakable piece of ``text`` (words; a « / » does not break a line)."""
    return max((text_width_mm(w, size_pt, bold) for w in _WORD.findall(text or "")), default=0.0)


def fits(text: str, width_mm: float, size_pt: float, bold: bool = False) -> bool:
    """Whether every word of ``text`` fits a cell ``width_mm`` wide (padding included)."""
    return longest_word_mm(text, size_pt, bold) <= width_mm - CELL_PADDING_MM

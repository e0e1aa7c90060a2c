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


#: LibreOffice's line pitch for Carlito at single spacing, in em (measured on a print: 9.8 pt
#: from one baseline to the next at 7 pt; the font's ascent and descent alone give 1.22)
LINE_PITCH_EM = 1.4
#: the words of the longest value a text field allows (:func:`long_text`): French words of
#: 4–14 letters, the long ones a narrow column wraps worst
LONG_WORDS = "accompagnement situation logement emploi démarches référent formation santé mobilité".split()


def long_text(n: int) -> str:
    """A French-looking text of exactly ``n`` characters, the stand-in for a field's
    longest value (the print checks and the template builder's list rows)."""
    out, i = "", 0
    while len(out) < n:
        out += ("" if not out else " ") + LONG_WORDS[i % len(LONG_WORDS)]
        i += 1
    return out[:n].rstrip() + "x" * (n - len(out[:n].rstrip()))


def wrapped_lines(text: str, width_mm: float, size_pt: float) -> int:
    """How many lines ``text`` takes in a column ``width_mm`` wide (its text width, padding
    excluded), wrapped word by word as LibreOffice and Word do; a word wider than the column
    is broken, one line for each width it takes."""
    lines, line = 0, ""
    for word in _WORD.findall(text or ""):
        candidate = f"{line} {word}" if line else word
        if text_width_mm(candidate, size_pt) <= width_mm:
            line = candidate
            continue
        if line:
            lines += 1
        wide = text_width_mm(word, size_pt)
        if wide > width_mm:            # broken inside: the full widths, then the rest
            lines += int(wide // width_mm)
            word = word[-max(1, int(len(word) * (wide % width_mm) / wide)):]
        line = word
    return lines + (1 if line else 0)


def line_pitch_mm(size_pt: float) -> float:
    return size_pt * LINE_PITCH_EM * MM_PER_PT


#: the box glyph's advance (☐, U+2610, in DejaVu Sans), in em
BOX_ADVANCE_EM = 0.8984


def box_hang_mm(box_pt: float, label_pt: float) -> float:
    """How far an option's label starts from its box: the box's advance and a space."""
    return box_pt * BOX_ADVANCE_EM * MM_PER_PT + text_width_mm(" ", label_pt)

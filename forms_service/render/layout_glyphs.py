"""Where a ☐/☒ glyph's ink is: its square from the font's own outline box.

pdfplumber gives a glyph's *advance* box; the square a person ticks is its ink, read
from the installed font file the PDF names (TrueType ``glyf`` bounding box).
"""

from __future__ import annotations

import logging
import subprocess
from functools import lru_cache

log = logging.getLogger(__name__)

@lru_cache(maxsize=32)
def _font_file(postscript_name: str) -> str | None:
    """The installed font file whose PostScript name is ``postscript_name``, or None."""
    try:
        out = subprocess.run(["fc-match", "-f", "%{file}|%{postscriptname}",
                              f":postscriptname={postscript_name}"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    path, _, name = out.stdout.partition("|")
    return path if out.returncode == 0 and name == postscript_name and path else None


@lru_cache(maxsize=64)
def glyph_ink(fontname: str, char: str) -> tuple[float, float, float, float] | None:
    """Ink box of ``char`` in ``fontname``, in em units from the glyph origin, y up.

    ``fontname`` is the PDF's name (``DAAAAA+DejaVuSans``): the subset prefix is
    dropped and the installed font file of that PostScript name is read (TrueType
    ``glyf`` bounding box). None when the font is not found (the caller falls back to
    the glyph's advance box).
    """
    ps_name = fontname.split("+", 1)[-1]
    path = _font_file(ps_name)
    if not path:
        return None
    try:
        from reportlab.pdfbase.ttfonts import TTFontFile

        ttf = TTFontFile(path)
        gid = ttf.charToGlyph.get(ord(char))
        if not gid:
            return None
        glyf, _ = ttf.get_table_pos("glyf")
        ttf.seek(glyf + ttf.glyphPos[gid] + 2)   # skip numberOfContours
        xmin, ymin, xmax, ymax = (ttf.read_short() for _ in range(4))
        upm = float(ttf.unitsPerEm)
    except Exception as exc:  # a font reportlab cannot read (CFF, collection…)
        log.warning("glyph box unavailable for %s: %s", ps_name, exc)
        return None
    if xmax <= xmin or ymax <= ymin:
        return None
    return (xmin / upm, ymin / upm, xmax / upm, ymax / upm)


def box_bbox(ch: dict, page_height: float) -> tuple[float, float, float, float]:
    """The printed square of a ☐/☒ char (pdfplumber char dict), top-left origin."""
    ink = glyph_ink(ch["fontname"], ch["text"])
    m = ch.get("matrix")
    if ink is None or not m or abs(m[1]) > 1e-6 or abs(m[2]) > 1e-6 or m[0] <= 0 or m[3] <= 0:
        return (ch["x0"], ch["top"], ch["x1"], ch["bottom"])   # advance box
    size = ch["size"]
    ox, oy = m[4], m[5]
    sx = m[0] / max(abs(m[3]), 1e-9)   # horizontal scaling relative to the size
    x0, y0, x1, y1 = ink
    return (ox + x0 * size * sx, page_height - (oy + y1 * size),
            ox + x1 * size * sx, page_height - (oy + y0 * size))

"""The layout map: where each checkbox, text zone and signature zone of a form is printed.

Nobody measures a template by hand. The map of a form at one template version (and
one number of printed rows per list) is derived from real renders of blank data,
nothing ticked, nothing written, list rows as in the data asked for:

1. a *probe* DOCX, rendered with :class:`~forms_service.render.context.Recording` in
   probe mode (``for_pdf=True``): the Jinja ``finalize`` hook records, in document
   order, one :class:`~forms_service.render.context.Mark` per printed box, text zone
   and signature zone, and each text or signature zone prints a marker ``⟦n⟧`` (``n`` =
   index of its mark); and the same data rendered normally (the *printed* DOCX);
2. both converted to PDF by the LibreOffice pool (side by side);
3. both read with pdfplumber, in content order. The i-th ☐/☒ glyph (U+2610 / U+2612)
   is the i-th recorded box, in both PDFs (the counts must match, else
   :class:`~forms_service.errors.TemplateError`); its bbox is the glyph's *ink* square
   in the printed PDF, from the font's own outline box (read from the installed font
   file the PDF names), not the glyph's advance box. Each marker ``⟦n⟧`` of the probe
   is found by position (LibreOffice writes a line font by font, so its digits and
   brackets are not contiguous in content order) and carried over to the printed PDF
   by the shift of a nearby label character (both PDFs print the same text in the same
   order, markers aside); the zone is the table cell there that encloses it (rays cast
   to the page's ruling lines) minus the label text printed in the cell, or a
   line-sized box after the marker when no cell encloses it.

Positions come from the printed render because the probe's markers may change line
heights (an empty paragraph is not as tall as one holding a marker): the map is that of
the document a person fills in by hand. A render whose *values* change row heights
(text at a larger size than its label, text wrapping) moves what follows; see
``docs/layout-map.md``.

Format (a contract; bboxes ``[x0, top, x1, bottom]`` in PDF points from the page's
top-left corner; see ``docs/layout-map.md``)::

    {"form": "fiche-liaison", "template_version": "041084df1be1", "rows": {},
     "pages": [{"number": 1, "width": 595.3, "height": 841.9}, ...],
     "boxes": [{"page": 2, "path": "suspension.motifs", "value": "refus_controle",
                "label": "Refus de se soumettre au contrôle", "bbox": [...]}, ...],
     "zones": [{"page": 3, "path": "signature_referent", "kind": "signature",
                "bbox": [...]}, ...]}

``rows`` gives the number of rows each list (table loop) printed, padding included.

Maps are cached in memory by (form, template version, printed rows); the blank form's
map is also stored in the ``template_version`` table, whose rows are never deleted nor
their maps overwritten: a printed document is read back with the map of the version it
names, even after the template changed or LibreOffice was upgraded.
"""

from __future__ import annotations

import copy
import io
import logging
import subprocess
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..catalogue import FormDefinition
from ..config import Settings
from ..errors import TemplateError
from . import geometry
from .context import CHECKED, UNCHECKED, Mark, Recording

log = logging.getLogger(__name__)

MARK_OPEN, MARK_CLOSE = "\u27e6", "\u27e7"   # ⟦ ⟧
BOX_GLYPHS = {UNCHECKED: False, CHECKED: True}
#: Document id printed by probe renders (never stamped: the probe PDF is thrown away).
PROBE_DOCUMENT_ID = "LAYOUT"

_EDGE_TOL = 1.0          # points: an edge "spans" a point within this tolerance
_THIN = 2.0              # a filled rectangle thinner than this is a ruling line
_INSET = 0.75            # a zone stays this far inside its cell's borders
_MAX_CELL_HEIGHT = 400.0
_ROUND = 2
_LINE = 10.0             # points: the least height of a line of handwriting or text


# --------------------------------------------------------------------------- data

def _get(data: dict, path: str) -> Any:
    cur: Any = data
    for part in path.split("."):
        if isinstance(cur, dict):
            cur = cur.get(part)
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return None
    return cur


def _set(data: dict, path: str, value: Any) -> None:
    parts = path.split(".")
    cur = data
    for part in parts[:-1]:
        cur = cur.setdefault(part, {})
    cur[parts[-1]] = value


def _blank(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _blank(v) for k, v in value.items()}
    if isinstance(value, list):
        return []
    if isinstance(value, bool):
        return False
    return None


def list_fields(fd: FormDefinition) -> list[str]:
    return [f.path for f in fd.fields if f.type == "list"]


def row_counts(fd: FormDefinition, data_dump: dict | None = None) -> dict[str, int]:
    """Rows of each list (table loop) in ``data_dump`` (0 for every list when None)."""
    counts = {}
    for path in list_fields(fd):
        rows = _get(data_dump, path) if data_dump else None
        counts[path] = len(rows) if isinstance(rows, list) else 0
    return counts


def printed_rows(fd: FormDefinition, marks: list[Mark]) -> dict[str, int]:
    """Rows each list printed (padding included), from a render's marks."""
    out = {}
    for path in list_fields(fd):
        prefix = path + "."
        idx = {m.path[len(prefix):].split(".", 1)[0] for m in marks if m.path.startswith(prefix)}
        out[path] = len({i for i in idx if i.isdigit()})
    return out


def probe_data(fd: FormDefinition, data_dump: dict | None = None) -> dict:
    """Blank data for the map's renders: nothing ticked, nothing written, the same list rows.

    The map therefore depends only on the template and the rows printed, which is what
    it is cached by.
    """
    data = fd.model().model_dump(mode="python")
    for path in list_fields(fd):
        rows = _get(data_dump, path) if data_dump else None
        if isinstance(rows, list):
            _set(data, path, [_blank(r) if isinstance(r, dict) else None for r in rows])
    return data


def _cache_rows(rows: dict[str, int]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(rows.items()))


# --------------------------------------------------------------------------- glyph ink

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


def _box_bbox(ch: dict, page_height: float) -> tuple[float, float, float, float]:
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


# --------------------------------------------------------------------------- zones

@dataclass
class _Edges:
    h: list[tuple[float, float, float]]   # (y, x0, x1)
    v: list[tuple[float, float, float]]   # (x, top, bottom)


def _edges(page) -> _Edges:
    """Ruling lines of a page: stroked lines and rectangles, and filled thin rectangles."""
    h, v = [], []
    for obj in page.lines:
        if obj["x1"] - obj["x0"] >= obj["bottom"] - obj["top"]:
            h.append(((obj["top"] + obj["bottom"]) / 2, obj["x0"], obj["x1"]))
        else:
            v.append(((obj["x0"] + obj["x1"]) / 2, obj["top"], obj["bottom"]))
    for r in page.rects:
        w, hh = r["x1"] - r["x0"], r["bottom"] - r["top"]
        if r.get("stroke") or min(w, hh) < _THIN:
            if hh < _THIN:
                h.append(((r["top"] + r["bottom"]) / 2, r["x0"], r["x1"]))
            elif w < _THIN:
                v.append(((r["x0"] + r["x1"]) / 2, r["top"], r["bottom"]))
            else:
                h += [(r["top"], r["x0"], r["x1"]), (r["bottom"], r["x0"], r["x1"])]
                v += [(r["x0"], r["top"], r["bottom"]), (r["x1"], r["top"], r["bottom"])]
    return _Edges(h, v)


def _cell_at(edges: _Edges, x: float, y: float) -> tuple[float, float, float, float] | None:
    """The cell around (x, y): the nearest ruling line in each direction."""
    t = _EDGE_TOL
    above = [ey for ey, ex0, ex1 in edges.h if ex0 - t <= x <= ex1 + t and ey < y]
    below = [ey for ey, ex0, ex1 in edges.h if ex0 - t <= x <= ex1 + t and ey > y]
    left = [ex for ex, et, eb in edges.v if et - t <= y <= eb + t and ex < x]
    right = [ex for ex, et, eb in edges.v if et - t <= y <= eb + t and ex > x]
    if not (above and below and left and right):
        return None
    cell = (max(left), max(above), min(right), min(below))
    if cell[3] - cell[1] > _MAX_CELL_HEIGHT:
        return None
    return cell


def _area(b) -> float:
    return max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])


def _zone_bbox(kind: str, marker: tuple[float, float, float, float], cell,
              others: list[dict]) -> tuple[float, float, float, float]:
    """Where a zone's value goes: its cell, minus the label text printed in the cell.

    ``marker`` is the bbox of the marker's first glyph; ``others`` the page's other
    non-blank chars. Two candidates: right of the marker (from the marker to the next
    text on its line, between the text above and below it), or the cell's full width
    below the label; the larger one wins.
    """
    mx0, mtop, mx1, mbottom = marker
    mid = (mtop + mbottom) / 2
    if cell is None:
        right = geometry.CONTENT_BOX[2]
        after = [c["x0"] for c in others if c["x0"] >= mx1 and c["top"] < mid < c["bottom"]]
        x1 = min([right, *after]) - 1
        height = geometry.mm(12) if kind == "signature" else max(mbottom - mtop, _LINE)
        return (mx0, mbottom - _LINE, max(x1, mx0 + 20), mbottom - _LINE + height + 1)
    cx0, ctop, cx1, cbottom = (cell[0] + _INSET, cell[1] + _INSET, cell[2] - _INSET, cell[3] - _INSET)
    inside = [c for c in others
              if cx0 <= (c["x0"] + c["x1"]) / 2 <= cx1 and ctop <= (c["top"] + c["bottom"]) / 2 <= cbottom]
    if not inside:
        return (cx0, ctop, cx1, cbottom)
    same_line = [c for c in inside if c["top"] < mid < c["bottom"]]
    after = [c["x0"] for c in same_line if c["x0"] > mx0 + 1]   # not the value itself
    rx1 = min([cx1, *[a - 1 for a in after]])
    over = [c for c in inside if c not in same_line and c["x1"] > mx0 and c["x0"] < rx1]
    rtop = max([ctop, *[c["bottom"] for c in over if c["bottom"] <= mid]])
    rbottom = min([cbottom, *[c["top"] for c in over if c["top"] >= mid]])
    right_box = (mx0 - 0.5, rtop, rx1, rbottom)
    label_bottom = max([mbottom, *[c["bottom"] for c in inside if c["top"] < mid]])
    under = [c["top"] for c in inside if c["top"] >= label_bottom]
    below_box = (cx0, label_bottom + 0.5, cx1, min([cbottom, *under]))
    best = max((right_box, below_box), key=_area)
    if best[3] - best[1] < min(_LINE, cbottom - ctop) * 0.6 or best[2] - best[0] < 10:
        best = right_box if best is below_box else below_box
    cell_box = (cx0, ctop, cx1, cbottom)
    if best[3] - best[1] <= 0 or best[2] - best[0] <= 0:
        return cell_box
    if kind == "signature" and _area(best) < 0.35 * _area(cell_box):
        return cell_box   # no room beside the label: sign over the whole cell
    return best


# --------------------------------------------------------------------------- the map

def _r(b) -> list[float]:
    return [round(float(v), _ROUND) for v in b]


def _baseline(ch: dict) -> float:
    m = ch.get("matrix")
    return float(m[5]) if m else float(ch["y0"])


def _markers(chars: list[dict]) -> dict[int, tuple[dict, set[int]]]:
    """``{n: (⟦ char, indices of the marker's chars)}`` for the markers ``⟦n⟧`` of a page.

    Found by position, not by content order: LibreOffice writes a line's glyphs font
    by font, so the digits (body font) may come before the brackets (DejaVu Sans).
    """
    wanted = sorted((k for k, c in enumerate(chars)
                     if c["text"] in (MARK_OPEN, MARK_CLOSE) or c["text"].isdigit()),
                    key=lambda k: _baseline(chars[k]))
    lines: list[list[int]] = []
    for k in wanted:   # baselines within 1 pt: one line
        if lines and abs(_baseline(chars[k]) - _baseline(chars[lines[-1][-1]])) <= 1.0:
            lines[-1].append(k)
        else:
            lines.append([k])
    out: dict[int, tuple[dict, set[int]]] = {}
    for idx in lines:
        line = sorted(idx, key=lambda k: chars[k]["x0"])
        for pos, k in enumerate(line):
            if chars[k]["text"] != MARK_OPEN:
                continue
            digits, own = "", {k}
            for k2 in line[pos + 1:]:
                t = chars[k2]["text"]
                if t.isdigit():
                    digits += t
                    own.add(k2)
                    continue
                if t == MARK_CLOSE and digits:
                    own.add(k2)
                    out[int(digits)] = (chars[k], own)
                break
    return out


def box_label(fd: FormDefinition, path: str, value: Any) -> str:
    f = fd.field(path)
    if f is None:
        return ""
    if value is True or f.type == "bool":
        return f.label
    opt = f.option(str(value))
    return opt.label if opt else ""


@dataclass
class _Page:
    number: int
    width: float
    height: float
    chars: list[dict]
    edges: _Edges


def _read_pdf(pdf: bytes) -> list[_Page]:
    import pdfplumber

    out = []
    with pdfplumber.open(io.BytesIO(pdf)) as doc:
        for page in doc.pages:
            out.append(_Page(page.page_number, float(page.width), float(page.height),
                             page.chars, _edges(page)))
    return out


def _glyphs(pages: list[_Page]) -> list[tuple[int, dict, tuple]]:
    """The ☐/☒ glyphs of a document in content order: (page, char, ink bbox)."""
    return [(p.number, ch, _box_bbox(ch, p.height)) for p in pages for ch in p.chars
            if ch["text"] in BOX_GLYPHS]


def _text_sequence(pages: list[_Page], skip: dict[int, set[int]] | None = None) -> list[tuple[int, int]]:
    """(page index, char index) of the printed non-blank chars, in content order."""
    skip = skip or {}
    return [(i, k) for i, p in enumerate(pages) for k, c in enumerate(p.chars)
            if c["text"].strip() and k not in skip.get(i, ())]


def _anchor(page: _Page, ch: dict, candidates: list[int]) -> int | None:
    """The char of ``candidates`` (indices in ``page.chars``) that moves with the marker
    ``ch`` between two renders: on its line if any, else in its table row (the band of
    its cell), else the nearest one vertically."""
    if not candidates:
        return None
    base = _baseline(ch)
    same = [k for k in candidates if abs(_baseline(page.chars[k]) - base) <= 1.0]
    if same:
        return min(same, key=lambda k: abs(page.chars[k]["x0"] - ch["x0"]))
    mid = (ch["top"] + ch["bottom"]) / 2
    cell = _cell_at(page.edges, (ch["x0"] + ch["x1"]) / 2, mid)
    if cell is not None:
        row = [k for k in candidates
               if page.chars[k]["top"] >= cell[1] - 1 and page.chars[k]["bottom"] <= cell[3] + 1]
        if row:
            return min(row, key=lambda k: (abs(page.chars[k]["x0"] - ch["x0"])
                                           + abs(_baseline(page.chars[k]) - base)))
    return min(candidates, key=lambda k: (abs(_baseline(page.chars[k]) - base) * 10
                                          + abs(page.chars[k]["x0"] - ch["x0"])))


def analyse_pdf(pdf: bytes, marks: list[Mark], fd: FormDefinition, version: str,
                rows: dict[str, int] | None = None, blank_pdf: bytes | None = None) -> dict:
    """The layout map of a probe render ``pdf``, which printed ``marks`` in document order.

    ``blank_pdf``: a normal render of the same template and list rows — of the blank
    data (the map of the blank form) or of real data (the map of that very print).
    Positions are then taken from it, the probe only telling which glyph or cell is
    which: the i-th box glyph of both renders is the i-th box mark, and a zone's marker
    is carried over by the shift of a nearby label character (matched between the two
    texts: identical for blank data, the longest common runs otherwise).
    """
    probe = _read_pdf(pdf)
    geo = _read_pdf(blank_pdf) if blank_pdf is not None else probe
    box_marks = [m for m in marks if m.kind == "box"]
    markers: dict[int, tuple[int, dict, set[int]]] = {}
    own_by_page: dict[int, set[int]] = {}
    for i, page in enumerate(probe):
        for n, (ch, own) in _markers(page.chars).items():
            if n in markers:
                raise TemplateError(
                    f"{fd.id} : la zone n° {n} apparaît deux fois dans le PDF de repérage",
                    rule="carte_zone_dupliquee")
            markers[n] = (i, ch, own)
            own_by_page.setdefault(i, set()).update(own)
    glyphs = _glyphs(geo)
    probe_glyphs = _glyphs(probe) if geo is not probe else glyphs
    for found in {len(glyphs), len(probe_glyphs)}:
        if found != len(box_marks):
            raise TemplateError(
                f"{fd.id} (modèle {version}) : le PDF contient {found} cases ☐/☒ mais le modèle "
                f"en imprime {len(box_marks)} ; une case a été ajoutée ou supprimée à la main dans "
                "le modèle, ou une police remplace le caractère ☐ : la carte des cases est impossible.",
                rule="carte_cases_incoherente")
    if geo is not probe:
        drift = max((abs(a[2][1] - b[2][1]) + abs(a[2][0] - b[2][0]) + 1000 * (a[0] != b[0])
                     for a, b in zip(glyphs, probe_glyphs)), default=0.0)
        if drift > 0.5:
            log.info("probe render geometry differs from the printed one; positions taken "
                     "from the printed render", extra={"form": fd.id, "drift_pt": round(drift, 2)})
    boxes = [{"page": page, "path": mark.path, "value": mark.value,
              "label": box_label(fd, mark.path, mark.value), "bbox": _r(bbox)}
             for mark, (page, ch, bbox) in zip(box_marks, glyphs)]

    # Probe chars -> printed chars: one to one when both print the same text (blank
    # data); else (a print with values) the longest matching runs of text.
    carry: dict[tuple[int, int], tuple[int, int]] | None = None
    values_by_page: dict[int, set[int]] = {}
    if geo is not probe:
        seq_p = _text_sequence(probe, own_by_page)
        seq_g = _text_sequence(geo)
        text_p = [probe[i].chars[k]["text"] for i, k in seq_p]
        text_g = [geo[i].chars[k]["text"] for i, k in seq_g]
        if text_p == text_g:
            carry = dict(zip(seq_p, seq_g))
        else:
            from difflib import SequenceMatcher

            carry = {}
            for a, b, size in SequenceMatcher(None, text_p, text_g, autojunk=False).get_matching_blocks():
                if size >= 2:   # a lone matching char is as likely a value's as a label's
                    carry.update(zip(seq_p[a:a + size], seq_g[b:b + size]))
            # what the print has and the probe not: the values (not labels of any zone)
            matched = set(carry.values())
            for gi, gk in seq_g:
                if (gi, gk) not in matched:
                    values_by_page.setdefault(gi, set()).add(gk)
    zones, missing = [], []
    for n, mark in enumerate(marks):
        if mark.kind == "box":
            continue
        if n not in markers:
            missing.append(mark.path)
            continue
        i, ch, own = markers[n]
        marker = (ch["x0"], ch["top"], ch["x1"], ch["bottom"])
        page = probe[i]
        skip = own_by_page.get(i, set())
        if carry is not None:
            cands = [k for k, c in enumerate(page.chars)
                     if c["text"].strip() and k not in skip and (i, k) in carry]
            a = _anchor(page, ch, cands)
            if a is not None and (i, a) in carry:
                gi, gk = carry[(i, a)]
                src, dst = page.chars[a], geo[gi].chars[gk]
                dx, dy = dst["x0"] - src["x0"], dst["top"] - src["top"]
                marker = (marker[0] + dx, marker[1] + dy, marker[2] + dx, marker[3] + dy)
                page, skip = geo[gi], values_by_page.get(gi, set())
        others = [c for k, c in enumerate(page.chars) if k not in skip and c["text"].strip()]
        cell = _cell_at(page.edges, (marker[0] + marker[2]) / 2, (marker[1] + marker[3]) / 2)
        bbox = _zone_bbox(mark.kind, marker, cell, others)
        zones.append({"page": page.number, "path": mark.path, "kind": mark.kind, "bbox": _r(bbox)})
    if missing:
        raise TemplateError(
            f"{fd.id} (modèle {version}) : zone(s) introuvable(s) dans le PDF de repérage : "
            + ", ".join(missing[:10]), rule="carte_zone_introuvable")
    return {"form": fd.id, "template_version": version, "rows": dict(rows or {}),
            "pages": [{"number": p.number, "width": round(p.width, 1), "height": round(p.height, 1)}
                      for p in geo],
            "boxes": boxes, "zones": zones}


def render_probe(fd: FormDefinition, *, settings: Settings, version: str,
                 data_dump: dict | None = None) -> tuple[bytes, list[Mark]]:
    """The probe DOCX (markers instead of values, nothing ticked) and its marks in order."""
    from .pipeline import render_docx

    rec = Recording(probe=True)
    docx = render_docx(fd, probe_data(fd, data_dump), settings=settings,
                       document_id=PROBE_DOCUMENT_ID, version=version, for_pdf=True, record=rec)
    return docx, rec.marks


def render_blank(fd: FormDefinition, *, settings: Settings, version: str,
                 data_dump: dict | None = None) -> bytes:
    """The printed DOCX of the probe's data: nothing ticked, nothing written, same rows."""
    from .pipeline import render_docx

    return render_docx(fd, probe_data(fd, data_dump), settings=settings,
                       document_id=PROBE_DOCUMENT_ID, version=version, for_pdf=True)


def build_layout_and_pdf(fd: FormDefinition, *, settings: Settings, pool,
                         data_dump: dict | None = None, version: str | None = None,
                         probe: tuple[bytes, list[Mark]] | None = None,
                         timings: dict | None = None) -> tuple[dict, bytes]:
    """One layout map (no cache) and the blank PDF it describes (not stamped).

    Two renders of the same blank data (list rows as in ``data_dump``): the probe
    (markers) and the printed one, converted side by side when the pool has two free
    instances. The map's positions are the printed render's. ``timings`` (a dict)
    receives the milliseconds of each step (render, convert, read).
    """
    from concurrent.futures import ThreadPoolExecutor

    from .pipeline import template_version

    version = version or template_version(fd, settings)
    t0 = time.perf_counter()
    probe_docx, marks = probe or render_probe(fd, settings=settings, version=version,
                                              data_dump=data_dump)
    rows = printed_rows(fd, marks)
    blank_docx = render_blank(fd, settings=settings, version=version, data_dump=data_dump)
    t1 = time.perf_counter()
    with ThreadPoolExecutor(2, thread_name_prefix="layout") as ex:
        probe_future = ex.submit(pool.convert, probe_docx)
        blank_pdf = pool.convert(blank_docx)
        probe_pdf = probe_future.result()
    t2 = time.perf_counter()
    layout = analyse_pdf(probe_pdf, marks, fd, version, rows, blank_pdf=blank_pdf)
    t3 = time.perf_counter()
    if template_version(fd, settings) != version:
        raise TemplateError(f"Le modèle « {fd.id} » a changé pendant le calcul de sa carte : "
                            "recommencez.", rule="modele_modifie")
    steps = {"render_ms": round((t1 - t0) * 1000, 1), "convert_ms": round((t2 - t1) * 1000, 1),
             "read_ms": round((t3 - t2) * 1000, 1)}
    if timings is not None:
        timings.update(steps)
    log.info("layout map built", extra={"form": fd.id, "template_version": version,
                                        "boxes": len(layout["boxes"]), "zones": len(layout["zones"]),
                                        **steps})
    return layout, blank_pdf


def build_layout(fd: FormDefinition, *, settings: Settings, pool, data_dump: dict | None = None,
                 version: str | None = None) -> dict:
    """One layout map, not cached (see :func:`layout_for`). About 2 s; see the docs."""
    return build_layout_and_pdf(fd, settings=settings, pool=pool, data_dump=data_dump,
                                version=version)[0]


def layout_of_print(fd: FormDefinition, printed_pdf: bytes, *, settings: Settings, pool,
                    data_dump: dict | None = None, version: str | None = None) -> dict:
    """The map of one print *with its values* (not cached; ~1 conversion + 2 reads).

    ``printed_pdf``: the print of ``data_dump`` before stamping. Values can change row
    heights (a value at a larger size than its label, text that wraps): this map follows
    them, where the blank form's map does not.
    """
    from .pipeline import template_version

    version = version or template_version(fd, settings)
    docx, marks = render_probe(fd, settings=settings, version=version, data_dump=data_dump)
    probe_pdf = pool.convert(docx)
    return analyse_pdf(probe_pdf, marks, fd, version, printed_rows(fd, marks), blank_pdf=printed_pdf)


# --------------------------------------------------------------------------- storage

def stored_layout(session, form_id: str, version: str) -> dict | None:
    """The map stored for a template version (any version ever stored), or None."""
    from ..db.models import TemplateVersion

    row = session.get(TemplateVersion, (form_id, version))
    return copy.deepcopy(row.layout) if row is not None and row.layout else None


def save_layout(session, fd: FormDefinition, version: str, layout: dict, template_sha: str) -> bool:
    """Record a template version and its blank map in ``template_version``.

    Never deletes a row and never replaces a stored map (a printed document must be
    read with the map it was printed with, even if LibreOffice is upgraded later); a
    row that exists without a map gets this one. Safe when two processes race (insert
    … on conflict do nothing). The caller's session commits. True when written.
    """
    from sqlalchemy import update

    from ..db.models import TemplateVersion, utcnow

    values = {"form_id": fd.id, "version": version, "layout": layout,
              "template_sha": template_sha, "created_at": utcnow()}
    dialect = session.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:
            from sqlalchemy.dialects.postgresql import insert
        stmt = insert(TemplateVersion).values(**values).on_conflict_do_nothing(
            index_elements=["form_id", "version"])
        if session.execute(stmt).rowcount:
            return True
    else:
        if session.get(TemplateVersion, (fd.id, version)) is None:
            session.add(TemplateVersion(**values))
            session.flush()
            return True
    row = session.get(TemplateVersion, (fd.id, version), populate_existing=True)
    if row is not None and not row.layout:
        session.execute(update(TemplateVersion)
                        .where(TemplateVersion.form_id == fd.id, TemplateVersion.version == version)
                        .values(layout=layout))
        session.expire(row)
        return True
    return False


# --------------------------------------------------------------------------- cache

_CACHE: OrderedDict[tuple, dict] = OrderedDict()   # (form, version, printed rows) -> map
_ROWS: OrderedDict[tuple, tuple] = OrderedDict()    # (form, version, data rows) -> printed rows
_CACHE_SIZE = 128
_CACHE_LOCK = threading.Lock()
_BUILD_LOCKS: dict[tuple, threading.Lock] = {}


def clear_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()
        _ROWS.clear()


def _lru_get(store: OrderedDict, key: tuple):
    with _CACHE_LOCK:
        hit = store.get(key)
        if hit is not None:
            store.move_to_end(key)
        return hit


def _lru_put(store: OrderedDict, key: tuple, value, size: int) -> None:
    with _CACHE_LOCK:
        store[key] = value
        store.move_to_end(key)
        while len(store) > size:
            store.popitem(last=False)


def layout_for(fd: FormDefinition, *, settings: Settings, pool, data_dump: dict | None = None,
               session=None) -> dict:
    """The layout map of ``fd`` at its current template version, for ``data_dump``'s list rows.

    Maps are cached by (form, template version, rows printed per list): lists are
    padded to whole pages of rows, so data with 1 or 5 PAP rows shares one map. The
    printed rows come from the probe DOCX (no conversion, ~50 ms), remembered per
    data row counts. Then, with a ``session``, the map stored in ``template_version``
    serves when it has the same printed rows; otherwise the map is built
    (:func:`build_layout_and_pdf`), and stored when the data has no list rows (the
    blank form's map). Returns a copy.
    """
    from .pipeline import file_digest, template_path, template_version

    version = template_version(fd, settings)
    data_rows = row_counts(fd, data_dump)
    rows_key = (fd.id, version, _cache_rows(data_rows))
    printed = _lru_get(_ROWS, rows_key)
    probe = None
    if printed is None:
        probe = render_probe(fd, settings=settings, version=version, data_dump=data_dump)
        printed = _cache_rows(printed_rows(fd, probe[1]))
        _lru_put(_ROWS, rows_key, printed, 8 * _CACHE_SIZE)
    key = (fd.id, version, printed)
    hit = _lru_get(_CACHE, key)
    if hit is not None:
        return copy.deepcopy(hit)
    blank = not any(data_rows.values())
    with _CACHE_LOCK:
        lock = _BUILD_LOCKS.setdefault(key, threading.Lock())
    try:
        with lock:
            hit = _lru_get(_CACHE, key)
            if hit is not None:
                return copy.deepcopy(hit)
            layout = stored_layout(session, fd.id, version) if session is not None else None
            if layout is not None and _cache_rows(layout.get("rows") or {}) != printed:
                layout = None
            if layout is None:
                layout, _ = build_layout_and_pdf(fd, settings=settings, pool=pool,
                                                 data_dump=data_dump, version=version, probe=probe)
                if blank and session is not None:
                    save_layout(session, fd, version, layout,
                                file_digest(template_path(fd, settings)))
            _lru_put(_CACHE, key, layout, _CACHE_SIZE)
    finally:
        with _CACHE_LOCK:
            _BUILD_LOCKS.pop(key, None)
    return copy.deepcopy(layout)


def blank_layout(fd: FormDefinition, settings: Settings, pool, session=None) -> dict:
    """The map of the blank form (no list rows filled) at the current template version."""
    return layout_for(fd, settings=settings, pool=pool, data_dump=None, session=session)


def boxes_by_value(layout: dict) -> dict[tuple[str, Any], list[dict]]:
    """``{(path, value): [box, ...]}`` — a box printed twice has two entries."""
    out: dict[tuple[str, Any], list[dict]] = {}
    for b in layout["boxes"]:
        out.setdefault((b["path"], b["value"]), []).append(b)
    return out


def checked_boxes(fd: FormDefinition, layout: dict, data_dump: dict) -> list[dict]:
    """The boxes of ``layout`` that ``data_dump`` ticks (what a render prints as ☒)."""
    out = []
    for b in layout["boxes"]:
        value = _get(data_dump, b["path"])
        code = b["value"]
        if code is True:
            ticked = bool(value)
        elif isinstance(value, (list, tuple)):
            ticked = code in value
        else:
            ticked = value == code
        if ticked:
            out.append(b)
    return out



# --------------------------------------------------------------------------- command line

def main(argv: list[str] | None = None) -> int:
    """``python -m forms_service.render.layout``: print a map, or time its build."""
    import argparse
    import json
    import statistics
    import sys

    parser = argparse.ArgumentParser(prog="python -m forms_service.render.layout",
                                     description="Layout maps of the forms (needs LibreOffice).")
    parser.add_argument("forms", nargs="*", help="form ids (default: every form with a template)")
    parser.add_argument("--time", type=int, default=0, metavar="N",
                        help="build each map N times and print the median of each step")
    parser.add_argument("--data", help="a JSON file of data (its list rows shape the map)")
    parser.add_argument("--pool-size", type=int, default=2)
    args = parser.parse_args(argv)
    from ..catalogue import catalogue
    from ..config import Settings
    from .fillable import template_forms
    from .pdf import ConverterPool

    settings = Settings.from_env()
    forms = [catalogue.get(f) for f in args.forms] or template_forms(settings)
    data = json.loads(open(args.data, encoding="utf-8").read()) if args.data else None
    with ConverterPool(size=args.pool_size, work_dir=Path(settings.var_dir) / "lo-layout",
                       cold_fallback=False) as pool:
        pool.start()
        for fd in forms:
            if not args.time:
                print(json.dumps(build_layout(fd, settings=settings, pool=pool, data_dump=data),
                                 ensure_ascii=False, indent=1))
                continue
            runs = []
            for _ in range(args.time):
                steps: dict = {}
                t0 = time.perf_counter()
                c0 = time.process_time()
                layout, _ = build_layout_and_pdf(fd, settings=settings, pool=pool, data_dump=data,
                                                 timings=steps)
                steps["total_ms"] = (time.perf_counter() - t0) * 1000
                steps["cpu_ms"] = (time.process_time() - c0) * 1000
                runs.append(steps)
            med = {k: round(statistics.median(r[k] for r in runs)) for k in runs[0]}
            print(f"{fd.id}: {len(layout['pages'])} p, {len(layout['boxes'])} boxes, "
                  f"{len(layout['zones'])} zones; median of {len(runs)}: " +
                  ", ".join(f"{k} {v}" for k, v in med.items()), file=sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

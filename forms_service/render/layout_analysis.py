"""Reading a layout map out of two PDFs of the same form: the probe and the printed one.

See :mod:`forms_service.render.layout` for the method (markers ``⟦n⟧``, glyphs in
content order, cells found by rays cast to the ruling lines) and the map's format.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from typing import Any

from ..catalogue import FormDefinition
from ..errors import TemplateError
from . import geometry
from .context import CHECKED, UNCHECKED, Mark
from .layout_glyphs import box_bbox

log = logging.getLogger(__name__)

MARK_OPEN, MARK_CLOSE = "\u27e6", "\u27e7"   # ⟦ ⟧
BOX_GLYPHS = {UNCHECKED: False, CHECKED: True}

_EDGE_TOL = 1.0          # points: an edge "spans" a point within this tolerance
_THIN = 2.0              # a filled rectangle thinner than this is a ruling line
_INSET = 0.75            # a zone stays this far inside its cell's borders
_MAX_CELL_HEIGHT = 400.0
_ROUND = 2
_LINE = 10.0             # points: the least height of a line of handwriting or text


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
    return [(p.number, ch, box_bbox(ch, p.height)) for p in pages for ch in p.chars
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

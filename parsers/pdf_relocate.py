"""Text zones of a digital PDF whose lines moved: a DOCX edited and exported again.

Such a PDF has no footer of ours (it is identified by its title) and its lines moved: a
paragraph added at the top, a table row added, a paragraph reflowed. The layout map's
zones (made on the blank form) no longer lie where its values are. They are found again
by the printed labels around them, as the boxes are:

1. the text runs of the blank form as shipped (``templates/pdf/<form>.pdf``, the version
   of the layout) and of the PDF read, in reading order, are aligned by their text
   (difflib): each run printed by both is an *anchor*, with its shift (page, dx, dy);
2. a zone moves with the anchor just before it (its label, on its line or above it),
   and only when the first anchor below it moved the same way (nothing was added or
   grew between them: the zone is the same size) and no anchor lands inside it.

A zone that cannot be placed so is not read (its field goes to review): a value longer
than the blank form's line, a row added in its table, a page break moved into it.
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .pdf_chars import PageText, _base, _by_baseline, _runs, extract, norm

log = logging.getLogger(__name__)

#: how far two anchors' shifts may differ (points) for a zone between them to be placed
SHIFT_TOLERANCE = 1.5
#: the shortest run (normalised chars) taken as an anchor
MIN_ANCHOR = 3


@dataclass(frozen=True)
class Run:
    page: int
    text: str           # normalised
    bbox: tuple         # x0, top, x1, bottom (top-left origin)
    baseline: float


def runs(pages: list[PageText]) -> list[Run]:
    """The text runs of the pages, in reading order (page, line by baseline, left to right)."""
    out = []
    for p in pages:
        for line in _by_baseline(p.chars):
            for run in _runs(line):
                text = norm("".join(c.text for c in run))
                if len(text) >= MIN_ANCHOR:
                    out.append(Run(p.number, text, (min(c.x0 for c in run), min(c.top for c in run),
                                                    max(c.x1 for c in run), max(c.bottom for c in run)),
                                   _base(run[0])))
    return out


@lru_cache(maxsize=16)
def _blank_runs(path: str, mtime: float) -> tuple[Run, ...]:
    return tuple(runs(extract(Path(path).read_bytes())))


def blank_runs(templates_dir: Path, form_id: str, version: str | None) -> tuple[Run, ...] | None:
    """The runs of the shipped blank form, when it is of ``version`` (that of the layout)."""
    import json

    base = Path(templates_dir) / "pdf"
    path = base / f"{form_id}.pdf"
    try:
        manifest = json.loads((base / "manifest.json").read_text())
        shipped = (manifest.get("forms", {}).get(form_id) or {}).get("template_version")
        if not path.exists() or not version or shipped != version:
            return None
        return _blank_runs(str(path), path.stat().st_mtime)
    except (OSError, ValueError):
        log.warning("blank form unreadable for relocation", extra={"form": form_id})
        return None


def anchors(blank: tuple[Run, ...], found: list[Run]) -> list[tuple[Run, Run]]:
    """(blank run, run found) printed by both, in order."""
    sm = difflib.SequenceMatcher(a=[r.text for r in blank], b=[r.text for r in found], autojunk=False)
    out = []
    for a, b, n in sm.get_matching_blocks():
        out += [(blank[a + k], found[b + k]) for k in range(n)]
    return out


def _shift(pair: tuple[Run, Run]) -> tuple[int, float, float]:
    a, b = pair
    return b.page, b.bbox[0] - a.bbox[0], b.baseline - a.baseline


def relocate(zones: list[dict], blank: tuple[Run, ...], found: list[Run]) -> dict[int, dict]:
    """Index in ``zones`` → the zone moved onto the PDF read (same keys, new page and
    bbox), for the zones that can be placed by their anchors; the others are left out."""
    pairs = anchors(blank, found)
    moved: dict[int, dict] = {}
    for i, z in enumerate(zones):
        x0, y0, x1, y1 = z["bbox"]
        page = z["page"]
        before = [p for p in pairs if p[0].page == page and (
            p[0].bbox[3] <= y0 + 2 or (p[0].bbox[2] <= x0 + 2 and p[0].bbox[1] < y1 and p[0].bbox[3] > y0))]
        after = [p for p in pairs if p[0].page == page and p[0].bbox[1] >= y1 - 1]
        if not before or not after:
            continue
        # the label: the nearest anchor before the zone (on its line, else above it)
        a = min(before, key=lambda p: (max(0.0, y0 - p[0].bbox[3]), max(0.0, x0 - p[0].bbox[2])))
        b = min(after, key=lambda p: (p[0].bbox[1], p[0].bbox[0]))
        (pa, dxa, dya), (pb, dxb, dyb) = _shift(a), _shift(b)
        if pa != pb or abs(dya - dyb) > SHIFT_TOLERANCE or abs(dxa - dxb) > SHIFT_TOLERANCE:
            continue
        bbox = [x0 + dxa, y0 + dya, x1 + dxa, y1 + dya]
        inside = [r for _, r in pairs if r.page == pa and bbox[0] <= (r.bbox[0] + r.bbox[2]) / 2 <= bbox[2]
                  and bbox[1] <= (r.bbox[1] + r.bbox[3]) / 2 <= bbox[3]]
        if inside:   # a label where the value should be: the zone is not where we think
            continue
        moved[i] = {**z, "page": pa, "bbox": [round(v, 2) for v in bbox]}
    return moved

"""Stage 4 of scan reading: from ink to answers, with a confidence.

A box is ``checked``, ``empty``, ``corrected`` (blackened all over: a person
changed their mind, or made it unreadable) or ``uncertain``. A group is
accepted automatically only when its reading is unambiguous: a one-choice
group with exactly one checked box and the others clearly empty. Any
uncertain box, any box blackened all over, or two ticks in a one-choice group,
sends the field to review: nothing is decided silently. A blackened box beside
one clear tick is most likely a tick taken back (SDAPS' convention): the tick is
proposed as the value, and a person confirms it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .measure import PX_PER_MM, BoxInk, ZoneInk

# Thresholds on the box interior (see measure.py), tuned on the scan test bench
# (``python -m benchmarks.parse --dir DIR --dump-boxes FILE``; figures in docs/reading.md).
# Tuning seed 42, 300 pages, ~6000 boxes: empty boxes reach light 0.045 / darkness 0.033 (dust,
# grey cells), the faintest mark (a pencil tick) light 0.145 / darkness 0.052; a box
# blackened all over has coverage and solid 1.0, the blackest tick or scribble (felt-tip)
# coverage 0.89.
EMPTY_LIGHT = 0.035          # below (and darkness below CHECK_DARKNESS): clearly empty
CHECK_LIGHT = 0.075          # above: a mark
CHECK_DARKNESS = 0.05
#: a box whose grains were taken out as dust is clearly empty only below this darkness (empty
#: boxes reach 0.033 on seed 42): a faint pencil tick, its strokes broken into dust-sized
#: grains, left darkness 0.047 and no light ink (seed 19 docx, batch 7, page 2) and was read
#: empty with confidence 1.0. Without grains, a shaded phone photo's empty box may reach it.
EMPTY_DARKNESS = 0.04
#: a box blackened all over: nearly all of it inked… (the blackest tick of tuning seed 7
#: covers 0.88 of its box; a blackened box faxed at 100 dpi covered 0.9375, seed 31 batch 21)
CORRECTED_COVERAGE = 0.90
CORRECTED_SOLID = 0.90       # …in a solid mass, not strokes
HEAVY_COVERAGE = 0.80        # a tick this heavy is close to a correction: lower confidence


@dataclass
class BoxState:
    state: str               # checked | empty | corrected | uncertain
    confidence: float
    #: why an uncertain box is (French, for the reviewer), when the figures say more than
    #: « Marque incertaine »
    why: str | None = None


#: the reason a box crossed by a stroke goes to review with
CROSSED_WHY = "Trait qui traverse la case (écriture voisine ?)"


# The page's own empty boxes (issue 15: uneven light, a photo's shade, a fax's grey): a box
# between "clearly empty" and "a mark" on the fixed thresholds above is judged against the
# boxes around it on the same page. Where those are as dark as it is, the page (its shade,
# its paper, its print) explains its ink: it is empty, less confidently.
#: a box's background is made by the BACKGROUND_NEAREST quiet boxes (no mark by the fixed
#: thresholds) nearest to it, within BACKGROUND_MM (centre to centre)…
BACKGROUND_NEAREST = 6
#: (seed 31, batch 2, page 0: a shaded phone photo whose boxes in the right-hand column had
#: 2 or 3 quiet boxes within 50 mm, its empties at darkness 0.041–0.044 on a page at ~0.038,
#: uncertain; a reach of 50 mm left them without background)
BACKGROUND_MM = 100.0
#: …when at least this many of them are found
BACKGROUND_BOXES = 4
#: a box no darker than its background by more than this (mean ink), and no more light ink
#: than its background by more than BACKGROUND_LIGHT, is as empty as its neighbours
BACKGROUND_DARKNESS = 0.012
BACKGROUND_LIGHT = 0.02


@dataclass
class Background:
    """What the quiet boxes around a box look like on its page (medians)."""
    darkness: float
    light: float
    boxes: int


def _quiet(ink: BoxInk) -> bool:
    return ink.light < CHECK_LIGHT and ink.darkness < CHECK_DARKNESS * 1.6 and not ink.speck and not ink.streak


def backgrounds(centres_pt: list[tuple[float, float]], inks: list[BoxInk]) -> list[Background | None]:
    """For each box of one page (its centre in PDF points, its ink), the background its
    BACKGROUND_NEAREST nearest quiet neighbours within BACKGROUND_MM make (itself left
    out), or None (fewer than BACKGROUND_BOXES)."""
    if not inks:
        return []
    c = np.asarray(centres_pt, float) / 72.0 * 25.4            # mm
    quiet = np.array([_quiet(i) for i in inks])
    dark = np.array([i.darkness for i in inks])
    light = np.array([i.light for i in inks])
    d = np.hypot(c[:, None, 0] - c[None, :, 0], c[:, None, 1] - c[None, :, 1])
    out: list[Background | None] = []
    for k in range(len(inks)):
        near = quiet & (d[k] <= BACKGROUND_MM)
        near[k] = False
        if near.sum() > BACKGROUND_NEAREST:
            near &= d[k] <= np.sort(d[k][near])[BACKGROUND_NEAREST - 1]
        n = int(near.sum())
        out.append(Background(float(np.median(dark[near])), float(np.median(light[near])), n)
                   if n >= BACKGROUND_BOXES else None)
    return out


def _conf(x: float, lo: float, hi: float) -> float:
    """0.5 at a threshold, towards 1 far from it."""
    if hi <= lo:
        return 1.0
    return float(max(0.5, min(1.0, 0.5 + abs(x - (lo + hi) / 2) / (hi - lo))))


#: A box whose printed square a heavy mark hides is where the alignment puts it when the
#: squares of at least NEIGHBOURS_FOUND boxes within NEIGHBOURS_MM of it were found again
#: within NEIGHBOURS_OFFSET_MM of their places (each of them; the page fits there).
NEIGHBOURS_MM = 30.0
NEIGHBOURS_FOUND = 2
NEIGHBOURS_OFFSET_MM = 0.4


def placed_by_neighbours(k: int, centres_pt: list[tuple[float, float]], inks: list[BoxInk]) -> bool:
    """Whether the boxes around box ``k`` of a page (centres in PDF points) vouch for its place."""
    cx, cy = centres_pt[k]
    near = [i for i, (x, y) in enumerate(centres_pt)
            if i != k and np.hypot(x - cx, y - cy) / 72.0 * 25.4 <= NEIGHBOURS_MM]
    found = [inks[i] for i in near if inks[i].found]
    return len(found) >= NEIGHBOURS_FOUND and all(i.offset_mm <= NEIGHBOURS_OFFSET_MM for i in found)


def box_state(ink: BoxInk, background: Background | None = None) -> BoxState:
    """The box's state from its ink; ``background``: its page's quiet boxes around it."""
    if ink.coverage >= CORRECTED_COVERAGE and ink.solid >= CORRECTED_SOLID:
        return BoxState("corrected", _conf(ink.coverage, HEAVY_COVERAGE, CORRECTED_COVERAGE))
    if ink.light <= EMPTY_LIGHT and ink.darkness < (EMPTY_DARKNESS if ink.dusted else CHECK_DARKNESS):
        return BoxState("empty", _conf(ink.light, 0.0, EMPTY_LIGHT * 2))
    if background is not None and _quiet(ink) and \
            ink.darkness <= background.darkness + BACKGROUND_DARKNESS and \
            ink.light <= background.light + BACKGROUND_LIGHT:
        return BoxState("empty", 0.75)   # as dark as the empty boxes around it: the page's shade
    if ink.light >= CHECK_LIGHT or ink.darkness >= CHECK_DARKNESS * 1.6:
        if ink.speck or ink.streak:   # dust or a tiny dot? a scan line over the box?
            return BoxState("uncertain", 0.4)
        if ink.crossed:   # a stroke passing through, not a mark anyone can vouch for
            return BoxState("uncertain", 0.4, CROSSED_WHY)
        conf = max(_conf(ink.light, CHECK_LIGHT / 2, CHECK_LIGHT), _conf(ink.darkness, 0.0, CHECK_DARKNESS * 2))
        if ink.coverage >= HEAVY_COVERAGE:   # heavy ink, close to a correction
            conf = min(conf, 0.7)
        return BoxState("checked", conf)
    return BoxState("uncertain", 0.4, CROSSED_WHY if ink.crossed else None)


@dataclass
class GroupDecision:
    value: object
    confidence: float
    needs_review: bool
    reason: str | None = None


def decide_group(ftype: str, states: dict, codes: list) -> GroupDecision:
    """``states``: option code (or True for a box alone) → BoxState."""
    bad = {c: s for c, s in states.items() if s.state in ("uncertain", "corrected")}
    checked = [c for c in codes if c in states and states[c].state == "checked"]
    conf = min((s.confidence for s in states.values()), default=1.0)
    reason = None
    if bad:
        kinds = {s.state for s in bad.values()}
        why = next((s.why for s in bad.values() if s.why), None)
        reason = ("Case noircie (correction ?)" if "corrected" in kinds else why or "Marque incertaine") + \
                 " : " + ", ".join(str(c) for c in bad)
    if ftype == "bool":
        s = states.get(True)
        if s is None:
            return GroupDecision(None, 0.0, True, "Case introuvable")
        if s.state in ("checked", "empty"):
            return GroupDecision(s.state == "checked", s.confidence, False)
        return GroupDecision(None, s.confidence, True, reason)
    if ftype == "multi":
        return GroupDecision(checked, conf, bool(bad), reason)
    # one choice
    if len(checked) > 1:
        return GroupDecision(None, min(conf, 0.5), True,
                             "Plusieurs cases cochées pour un choix unique : " + ", ".join(map(str, checked)))
    corrected = [c for c, st in bad.items() if st.state == "corrected"]
    if len(checked) == 1 and bad and len(corrected) == len(bad) and states[checked[0]].confidence >= 0.75:
        # SDAPS' rule: a box blackened all over is a box taken back; with exactly one clear
        # tick beside it, the tick is the answer (a blackened box alone stays for review)
        return GroupDecision(checked[0], min(conf, states[checked[0]].confidence, 0.8), True,
                             "Case noircie, sans doute une correction : la case cochée est proposée ("
                             + ", ".join(map(str, corrected)) + " noircie) ; à confirmer")
    if bad:
        return GroupDecision(checked[0] if checked else None, min(conf, 0.5), True, reason)
    return GroupDecision(checked[0] if checked else None, conf, False)


SIGNED_INK = 0.004
SIGNED_WIDTH_MM = 6.0
UNSIGNED_INK = 0.0008


def signature_state(z: ZoneInk) -> GroupDecision:
    if z.ink >= SIGNED_INK and z.width_mm >= SIGNED_WIDTH_MM:
        return GroupDecision(True, _conf(z.ink, SIGNED_INK / 2, SIGNED_INK * 2), False)
    if z.ink <= UNSIGNED_INK:
        return GroupDecision(False, _conf(z.ink, 0.0, UNSIGNED_INK * 2), False)
    return GroupDecision(None, 0.4, True, "Signature incertaine : à vérifier")


# Handwriting in a text zone: ink the printed page does not explain, wide enough to be
# writing rather than dust.
WRITTEN_INK = 0.002
WRITTEN_WIDTH_MM = 3.0


def is_written(z: ZoneInk) -> bool:
    return z.ink > WRITTEN_INK and z.width_mm > WRITTEN_WIDTH_MM


# Pages: a page is blank under this share of dark pixels; a page without QR code is
# taken for the blank form page it correlates with at least REFERENCE_LIKENESS; a page
# matched to a page its batch lacks must correlate MATCH_LIKENESS with that issued page
# (50 dpi, page interior) and MATCH_MARGIN more than the next candidate.
BLANK_INK = 0.0015
REFERENCE_LIKENESS = 0.55
MATCH_LIKENESS = 0.5
MATCH_MARGIN = 0.08


def is_blank(ink_share: float) -> bool:
    return ink_share < BLANK_INK

"""The decide stage alone: box states from ink figures, then group rules (no image needed)."""

from parsers.scan.decide import BoxState, box_state, decide_group
from parsers.scan.measure import BoxInk

SQ = (0, 0, 10, 10)
EMPTY = BoxInk(darkness=0.0, coverage=0.0, light=0.0, solid=0.0, square=SQ, found=True)
TICK = BoxInk(darkness=0.3, coverage=0.3, light=0.35, solid=0.0, square=SQ, found=True)
BLACK = BoxInk(darkness=0.98, coverage=1.0, light=1.0, solid=1.0, square=SQ, found=True)
FAINT = BoxInk(darkness=0.045, coverage=0.0, light=0.05, solid=0.0, square=SQ, found=True)


def test_box_states():
    assert box_state(EMPTY).state == "empty"
    assert box_state(TICK).state == "checked"
    assert box_state(BLACK).state == "corrected"
    assert box_state(FAINT).state == "uncertain"


def states(**kw):
    return {k: box_state(v) for k, v in kw.items()}


def test_one_choice_with_one_tick_is_accepted():
    d = decide_group("choice", states(favorable=TICK, defavorable=EMPTY), ["favorable", "defavorable"])
    assert (d.value, d.needs_review) == ("favorable", False)


def test_two_ticks_in_a_one_choice_group_go_to_review():
    d = decide_group("choice", states(favorable=TICK, defavorable=TICK), ["favorable", "defavorable"])
    assert d.needs_review and d.value is None and "Plusieurs cases" in d.reason


def test_a_blackened_box_is_never_decided_silently():
    alone = decide_group("choice", states(favorable=BLACK, defavorable=EMPTY), ["favorable", "defavorable"])
    assert alone.needs_review
    beside_tick = decide_group("choice", states(favorable=BLACK, defavorable=TICK),
                               ["favorable", "defavorable"])
    assert beside_tick.needs_review and beside_tick.value == "defavorable"   # proposed, to confirm
    multi = decide_group("multi", states(a=BLACK, b=TICK), ["a", "b"])
    assert multi.needs_review
    box = decide_group("bool", {True: box_state(BLACK)}, [True])
    assert box.needs_review and box.value is None


def test_uncertain_mark_goes_to_review():
    d = decide_group("multi", states(a=FAINT, b=TICK), ["a", "b"])
    assert d.needs_review and d.value == ["b"]


# -- ink spilt in from a neighbour (the wip-measure-spill change, taken in issue 15) --

def _page_with_box(side_mm: float = 3.55):
    """A white page at WORK_DPI with one printed ☐ (a 0.25 mm outline) at (100, 100) pt."""
    import cv2
    import numpy as np
    from parsers.scan import measure

    k = measure.K
    page = np.full((int(300 * k), int(300 * k)), 255, np.uint8)
    side = side_mm * 72 / 25.4
    bbox = [100.0, 100.0, 100.0 + side, 100.0 + side]
    x0, y0, x1, y1 = (int(round(v * k)) for v in bbox)
    cv2.rectangle(page, (x0, y0), (x1, y1), 0, max(2, int(round(0.25 * measure.PX_PER_MM))))
    return page, bbox, (x0, y0, x1, y1)


def test_ink_spilt_in_along_one_edge_from_a_blackened_neighbour_is_not_a_mark():
    import numpy as np
    from parsers.scan import measure

    page, bbox, (x0, y0, x1, y1) = _page_with_box()
    band = max(2, int(round(0.25 * measure.PX_PER_MM)))
    margin = band + max(1, int(round(0.3 * measure.PX_PER_MM)))   # what measure_box leaves out
    depth = margin + int(0.2 * (x1 - x0 - 2 * margin))              # a fifth of the interior
    page[y0 - 40:y1 + 40, x0 - 40:x0 + depth] = 0   # the box at its left blackened, overflowing
    assert box_state(measure.measure_box(page, bbox)).state == "empty"


def test_a_tick_crossing_the_border_is_still_a_mark():
    import cv2
    from parsers.scan import measure

    page, bbox, (x0, y0, x1, y1) = _page_with_box()
    w = x1 - x0
    cv2.line(page, (x0 + w // 5, y0 + w // 2), (x0 + w // 2, y1 - w // 6), 0, 4)
    cv2.line(page, (x0 + w // 2, y1 - w // 6), (x1 + w, y0 - w), 0, 4)   # long arm out of the box
    assert box_state(measure.measure_box(page, bbox)).state == "checked"


def _ink(darkness, light, **kw):
    return BoxInk(darkness=darkness, coverage=kw.pop("coverage", 0.0), light=light, solid=kw.pop("solid", 0.0),
                  square=SQ, found=kw.pop("found", True), **kw)


def test_a_box_as_dark_as_the_empty_boxes_around_it_is_empty():
    """Issue 15: a phone photo's shade darkens every box of a region. A box between the fixed
    thresholds (darkness 0.042, like an empty box of tuning seed 23's shaded photos, whose
    neighbours were at 0.034) is empty when the quiet boxes nearest to it are as dark; a pencil
    tick there (0.065 against 0.025, seed 23) stays uncertain, and so does the box alone."""
    from parsers.scan.decide import backgrounds

    shaded = [(100.0 + 14 * i, 300.0) for i in range(6)]
    grey = _ink(0.042, 0.0, dusted=True)
    assert box_state(grey).state == "uncertain"          # the fixed thresholds alone
    inks = [_ink(0.034 + 0.002 * (i % 2), 0.0) for i in range(5)] + [grey]
    bg = backgrounds(shaded, inks)[-1]
    assert bg is not None and bg.boxes == 5 and abs(bg.darkness - 0.034) < 0.003
    assert box_state(grey, bg).state == "empty"
    tick = _ink(0.065, 0.0, dusted=True)
    assert box_state(tick, backgrounds(shaded, inks[:5] + [tick])[-1]).state == "uncertain"
    # too few quiet neighbours, or neighbours far away: no background
    assert backgrounds(shaded[:3], inks[:2] + [grey])[-1] is None
    far = [(100.0 + 200 * i, 300.0) for i in range(6)]
    assert backgrounds(far, inks)[-1] is None
    # ticked neighbours make no background
    ticks = [TICK] * 5 + [grey]
    assert backgrounds(shaded, ticks)[-1] is None


def test_a_blackened_box_faxed_is_blackened_not_a_tick():
    """Seed 31, batch 21, page 2 (a CERS faxed): `pap.6.derogation` blackened with a blue
    ballpoint covered 0.9375 of its box, solid 0.9375 — under the 0.94 asked then — and was read
    ticked, a planted ambiguity unflagged. The blackest tick of tuning seed 7 covers 0.88."""
    ink = _ink(0.929, 0.95, coverage=0.9375, solid=0.9375, found=False)
    assert box_state(ink).state == "corrected"
    felt_tick = _ink(0.8, 0.9, coverage=0.8775, solid=0.87)
    assert box_state(felt_tick).state == "checked"


def test_the_squares_of_the_boxes_around_vouch_for_a_square_a_mark_hides():
    from parsers.scan.decide import placed_by_neighbours

    centres = [(100.0, 300.0), (100.0, 314.0), (100.0, 328.0), (400.0, 300.0)]
    hidden = _ink(0.5, 0.6, coverage=0.5, found=False)
    placed = [hidden, _ink(0, 0, offset_mm=0.13), _ink(0, 0, offset_mm=0.25), _ink(0, 0)]
    assert placed_by_neighbours(0, centres, placed)
    off = [hidden, _ink(0, 0, offset_mm=0.13), _ink(0, 0, offset_mm=0.9), _ink(0, 0)]
    assert not placed_by_neighbours(0, centres, off)           # the page is off there
    alone = [hidden, _ink(0, 0, found=False), _ink(0, 0, offset_mm=0.1), _ink(0, 0)]
    assert not placed_by_neighbours(0, centres, alone)         # one square found near it only


def test_a_mark_crossed_by_a_stroke_is_uncertain_with_its_reason():
    """Ink inside a box that a stroke passing through explains (measure.crossing_stroke) is no
    tick to decide on: uncertain, and the group says why."""
    import dataclasses

    crossed = dataclasses.replace(TICK, crossed=True)
    st = box_state(crossed)
    assert (st.state, st.why) == ("uncertain", "Trait qui traverse la case (écriture voisine ?)")
    d = decide_group("choice", {"favorable": st, "defavorable": box_state(EMPTY)}, ["favorable", "defavorable"])
    assert d.needs_review and d.value is None and d.reason.startswith("Trait qui traverse la case")
    assert box_state(dataclasses.replace(EMPTY, crossed=True)).state == "empty"   # nothing inside: empty

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

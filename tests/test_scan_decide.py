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

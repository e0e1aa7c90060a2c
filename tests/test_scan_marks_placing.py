"""Boxes looked for again where the page lies (pipeline._placed_where_the_page_lies), on a
drawn page: no LibreOffice, no bench."""

import cv2
import numpy as np

from parsers.scan import decide, fit, measure, pipeline

K, MM = measure.K, measure.PX_PER_MM
SIDE_PT = measure.BOX_MM * 72 / 25.4


def _page(bboxes, shift_mm, ticked=()):
    """A white page at WORK_DPI with each ☐ printed ``shift_mm`` (dx, dy) off its bbox, the
    boxes of ``ticked`` ticked; and the printed page where the layout puts them."""
    page = np.full((int(400 * K), int(400 * K)), 255, np.uint8)
    ref = page.copy()
    band = max(2, int(round(0.25 * MM)))
    for i, (x0, y0, x1, y1) in enumerate(bboxes):
        for img, (dx, dy) in ((page, shift_mm), (ref, (0, 0))):
            a = (int(round(x0 * K + dx * MM)), int(round(y0 * K + dy * MM)))
            b = (int(round(x1 * K + dx * MM)), int(round(y1 * K + dy * MM)))
            cv2.rectangle(img, a, b, 0, band)
            if img is page and i in ticked:
                cv2.line(img, (a[0] + 6, a[1] + 14), (a[0] + 12, b[1] - 6), 0, 3)
                cv2.line(img, (a[0] + 12, b[1] - 6), (b[0] - 5, a[1] + 5), 0, 3)
    return page, ref


def _grid(pitch_pt):
    return [[100 + c * pitch_pt, 100 + r * pitch_pt, 100 + c * pitch_pt + SIDE_PT, 100 + r * pitch_pt + SIDE_PT]
            for r in range(3) for c in range(4)]


def _fit(shift_mm):
    """The page's content found ``shift_mm`` off everywhere (patches around the grid)."""
    pts = np.array([[x, y] for x in (250, 450, 650) for y in (250, 450, 650)], float)
    vec = np.tile(np.array(shift_mm) * MM, (len(pts), 1))
    return fit.PageFit(pts, np.full(len(pts), float(np.hypot(*shift_mm))), None, (), vec)


def _read(bboxes, page, ref, pf):
    squares = np.array(bboxes, float)
    centres = [((b[0] + b[2]) / 2, (b[1] + b[3]) / 2) for b in bboxes]
    inks = [measure.measure_box(page, b, ref, squares) for b in bboxes]
    boxes = [{"bbox": b} for b in bboxes]
    placed = pipeline._placed_where_the_page_lies(page, ref, squares, boxes, centres, inks, pf)
    return placed, [decide.box_state(i).state for i in inks]


def test_boxes_printed_2_mm_off_are_found_again_and_read():
    bboxes = _grid(30.0)                                   # 10.6 mm apart
    page, ref = _page(bboxes, (1.3, -1.7), ticked={1, 6})
    pf = _fit((1.3, -1.7))
    assert all(pf.doubt(b) for b in bboxes)                # « Page déformée » everywhere
    placed, states = _read(bboxes, page, ref, pf)
    assert placed == set(range(len(bboxes)))
    assert states == ["checked" if k in (1, 6) else "empty" for k in range(len(bboxes))]


def test_a_box_is_not_looked_for_beyond_halfway_to_the_next():
    bboxes = _grid(12.0)                                   # 4.2 mm apart: at most 1.7 mm
    page, ref = _page(bboxes, (2.4, 0.0), ticked={1})
    placed, _ = _read(bboxes, page, ref, _fit((2.4, 0.0)))
    assert placed == set()                                 # they stay to review

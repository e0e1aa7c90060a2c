"""Replays of the scan bench's failures, one image each (no LibreOffice, no bench run).

Each fixture under ``tests/scan_replays/`` is the rectified page (WORK_DPI, as
:mod:`parsers.scan.measure` sees it) around the box the bench got wrong, cut from the
failing run's page; the test says what the reader must do with it now.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import cv2

from parsers.scan import decide, measure

REPLAYS = Path(__file__).parent / "scan_replays"


@contextmanager
def _issued_database(tmp_path: Path, *issued: tuple[str, str, str, Path]):
    """A database with the schema and these issued documents (id, form, template version,
    stored PDF), disposed of afterwards."""
    from forms_service import db

    database = db.Database(f"sqlite:///{tmp_path / 'issued.sqlite'}")
    db.models.Base.metadata.create_all(database.engine)
    try:
        with database.session() as s:
            for doc_id, form, version, path in issued:
                s.add(db.IssuedDocument(document_id=doc_id, form_id=form, template_version=version, data={},
                                        file_path=str(path), layout={}, format="pdf", created_by="test"))
        yield database
    finally:
        database.dispose()


def test_a_fax_speck_in_an_empty_box_is_not_a_confident_tick():
    """Seed 7, batch 12, page 1 (`python -m benchmarks.parse --out DIR --seed 7 --replay 12`,
    r7-reading's templates): a fiche de liaison faxed (1-bit, 100 dpi); in the empty box
    `reorientation.motifs` « autres » one dust speck, two or three fax pixels, grows to
    ~1.0 mm once resampled to 200 dpi — just over DUST_MM — and its ink (light 0.08) read
    as a tick with confidence 1.0. A lone speck under DOT_MM is now uncertain (review)."""
    flat = cv2.imread(str(REPLAYS / "seed7-12-1-fax-autres.png"), cv2.IMREAD_GRAYSCALE)
    ink = measure.measure_box(flat, [21.86, 14.92, 31.86, 25.12])
    assert ink.found and ink.speck
    assert ink.light >= decide.CHECK_LIGHT        # the figures alone said "ticked"
    assert decide.box_state(ink).state == "uncertain"


def test_a_pen_dot_is_still_a_tick():
    """A pressed pen dot (1.3 mm or more) stays a confident tick (the bench's `dot` mark)."""
    flat = cv2.imread(str(REPLAYS / "seed7-12-1-fax-autres.png"), cv2.IMREAD_GRAYSCALE)
    cx, cy = 74, 54                       # the box's centre (pixels)
    r = int(round(0.8 * measure.PX_PER_MM))   # a 1.6 mm dot
    cv2.circle(flat, (cx, cy), r, 0, -1)
    ink = measure.measure_box(flat, [21.86, 14.92, 31.86, 25.12])
    assert not ink.speck
    st = decide.box_state(ink)
    assert st.state == "checked" and st.confidence >= 0.9


def test_a_footer_read_by_ocr_with_an_o_for_a_zero_keeps_its_document_id(monkeypatch):
    """Seed 13, batch 5, page 4 (`python -m benchmarks.parse --dir DIR --batches 5` on the
    bench of `--seed 13`): an Annexe 2 page fed sideways, identified by its footer, whose
    OCR read « 01KF76PNZOTJ… » for « 01KF76PNZ0TJ… »: a document of its own, without an
    issued document (« no record »). A ULID holds no O, I or L: they are read 0, 1, 1."""
    import numpy as np

    from parsers.scan import ocr

    line = "annexe-2 · modèle e57aeecb79dc · page 5/5 · doc 01KF76PNZOTJ1CEG42GNZVM6V1"
    monkeypatch.setattr(ocr, "available", lambda: True)
    monkeypatch.setattr(ocr, "_tesseract", lambda img, psm: line)
    footer = ocr.read_footer(np.full((2339, 1654), 255, np.uint8))
    assert footer["doc_id"] == "01KF76PNZ0TJ1CEG42GNZVM6V1"
    assert (footer["form"], footer["page"], footer["pages"]) == ("annexe-2", 5, 5)


def test_a_fax_scan_line_through_an_empty_box_is_not_a_confident_tick():
    """Seed 17, batch 45, page 5 (`python -m benchmarks.parse --dir DIR --batches 45` on the
    bench of `--seed 17`): a fiche de liaison faxed; a dark scan line (the fax's) runs across
    the page through the empty box `actions_cg` « Autres actions collectives »: light 0.15,
    read ticked with confidence 1.0. A line through the box and on past it both ways is no
    mark: the box is uncertain (review)."""
    flat = cv2.imread(str(REPLAYS / "seed17-45-5-fax-line.png"), cv2.IMREAD_GRAYSCALE)
    ink = measure.measure_box(flat, [21.86, 14.4, 31.86, 24.6])
    assert ink.found and ink.streak and not ink.speck
    assert ink.light >= decide.CHECK_LIGHT
    assert decide.box_state(ink).state == "uncertain"


def test_a_tick_is_no_scan_line():
    """A tick whose stroke crosses the box is still a confident tick (no line runs past it)."""
    flat = cv2.imread(str(REPLAYS / "seed7-12-1-fax-autres.png"), cv2.IMREAD_GRAYSCALE)
    cv2.line(flat, (64, 52), (71, 62), 0, 3)
    cv2.line(flat, (71, 62), (86, 38), 0, 3)
    ink = measure.measure_box(flat, [21.86, 14.92, 31.86, 25.12])
    assert not ink.streak
    assert decide.box_state(ink).state == "checked"


def test_a_faint_pencil_tick_is_not_a_confident_empty_box():
    """Seed 19 docx (`python -m benchmarks.parse --out DIR --pages 60 --seed 19 --condition
    docx`, batch 7, page 2): an Annexe 2 printed from its DOCX, a pencil tick (0.30 mm,
    blurred) in `situation_professionnelle.cessderact` « 2701 »: its strokes broke into
    dust-sized grains, left darkness 0.047 (empty boxes reach 0.033) and no light ink, and
    the box was read empty with confidence 1.0. Between EMPTY_DARKNESS and a mark: uncertain."""
    flat = cv2.imread(str(REPLAYS / "seed19-docx-7-2-pencil.png"), cv2.IMREAD_GRAYSCALE)
    ink = measure.measure_box(flat, [21.3, 14.56, 31.3, 24.76])
    assert ink.found and ink.dusted and ink.darkness >= decide.EMPTY_DARKNESS
    assert decide.box_state(ink).state == "uncertain"


def test_a_footer_document_id_misread_by_ocr_names_its_issued_document(tmp_path):
    """Seed 31, batch 17, page 1 (`python -m benchmarks.parse --out DIR --seed 31 --replay 17:1`):
    a fiche de liaison scanned 1-bit at 200 dpi whose QR codes were unreadable, identified by
    its footer, whose OCR read « D1KGNJHK31HJCMJCS6GKX7MJG5 » for « 01KGNJHK31HJCMJC56GKX7MJG5 »
    (D for 0, S for 5: both are ULID characters): no issued document had that id, and the page
    was in no record. The one issued id of the form within three characters is now taken (the
    page is then checked against that document's printed page before its boxes are read)."""
    from forms_service import db
    from parsers.scan.references import References
    from parsers.store import Store

    database = db.Database(f"sqlite:///{tmp_path / 'issued.sqlite'}")
    db.models.Base.metadata.create_all(database.engine)
    try:
        store = Store(None, database=database)   # ids only: no settings, no pool
        issued = {"01KGNJHK31HJCMJC56GKX7MJG5": "fiche-liaison", "01KGNJHK31HJCMJC5ZZZZZZZZZ": "fiche-liaison",
                  "01KGNJHK31HJCMJC56GKX7MJG6": "cers"}
        with store.database.session() as s:
            for doc_id, form in issued.items():
                s.add(db.IssuedDocument(document_id=doc_id, form_id=form, template_version="37c5215fbe0c",
                                        data={}, file_path=str(tmp_path / "none.pdf"), layout={},
                                        format="pdf", created_by="test"))
        refs = References(store)
        read = "D1KGNJHK31HJCMJCS6GKX7MJG5"
        assert refs.known_document_id(read, "fiche-liaison", "37c5215fbe0c") == "01KGNJHK31HJCMJC56GKX7MJG5"
        # an id read right is itself; one far from every issued id of its form names none
        assert refs.known_document_id("01KGNJHK31HJCMJC5ZZZZZZZZZ", "fiche-liaison", None) == \
            "01KGNJHK31HJCMJC5ZZZZZZZZZ"
        assert refs.known_document_id("01KGNJHK31HJCMJCQQQQQQQQQQ", "fiche-liaison", None) is None
        # two issued ids equally near: neither is taken
        assert refs.known_document_id("01KGNJHK31HJCMJC56GKX7MJG6", "cers", None) == "01KGNJHK31HJCMJC56GKX7MJG6"
        with store.database.session() as s:
            s.add(db.IssuedDocument(document_id="01KGNJHK31HJCMJCS6GKX7MJH5", form_id="fiche-liaison",
                                    template_version="37c5215fbe0c", data={}, file_path=str(tmp_path / "n.pdf"),
                                    layout={}, format="pdf", created_by="test"))
        assert References(store).known_document_id(read, "fiche-liaison", None) is None
    finally:
        database.dispose()


def test_a_layout_follows_the_printed_pages_when_wrapped_rows_push_them_on():
    """Seed 7, batch 25 (`python -m benchmarks.parse --dir DIR --batches 25` on the bench of
    `--seed 7`): a CERP whose table rows wrapped was printed on 7 pages, its layout map on 6
    (boxes on pages 1, 3, 4, 5, 6; printed on 1, 3, 5, 6, 7, and 26 pt lower on page 3): the
    layout was kept as it was, and 19 boxes were read one row off, confidently. The boxes now
    take their glyphs' places and pages, and the zones go with their page's boxes."""
    from parsers.store import fit_layout

    layout = {"boxes": [{"path": "a", "value": "x", "page": 1, "bbox": [10, 100, 20, 110]},
                        {"path": "b", "value": "y", "page": 3, "bbox": [10, 447.29, 20, 457.5]},
                        {"path": "c", "value": True, "page": 4, "bbox": [10, 200, 20, 210]}],
              "zones": [{"path": "t", "page": 3, "bbox": [30, 470, 200, 490], "kind": "text"},
                        {"path": "s", "page": 6, "bbox": [30, 600, 200, 650], "kind": "signature"}]}
    glyphs = [(1, [10, 100, 20, 110]), (3, [10, 473.29, 20, 483.5]), (5, [10, 90, 20, 100])]
    fitted = fit_layout(layout, glyphs)
    assert [(b["page"], b["bbox"][1]) for b in fitted["boxes"]] == [(1, 100), (3, 473.29), (5, 90)]
    assert [(z["page"], z["bbox"][1]) for z in fitted["zones"]] == [(3, 496.0), (7, 600)]
    # two layout pages on one printed page, or out of order: unchanged
    assert fit_layout(layout, [(1, g) for _, g in glyphs]) is layout
    assert fit_layout(layout, [(3, glyphs[0][1]), (1, glyphs[1][1]), (5, glyphs[2][1])]) is layout


def test_a_docx_print_registered_a_little_off_is_refined_before_it_is_judged():
    """Seed 41 docx (`python -m benchmarks.parse --out DIR --pages 100 --seed 41 --condition docx
    --stacks 0`, batch 4, page 8): a CERS page 2 printed from its DOCX, scanned 1-bit at 300 dpi.
    ORB paired look-alike rows of its table and left the page's height 1 % off: likeness 0.38 to
    its issued print, under MATCH_LIKENESS, « non reconnue » with its 20 boxes. Refined on the
    printed content before it is judged, it is 0.72 alike and read."""
    from parsers.scan import locate

    scan = cv2.imread(str(REPLAYS / "seed41-docx-4-8-cers2-scan.png"), cv2.IMREAD_GRAYSCALE)
    issued = cv2.imread(str(REPLAYS / "seed41-docx-4-8-cers2-issued.png"), cv2.IMREAD_GRAYSCALE)
    found, scores = locate.content_match(scan, [(2, issued)], keep_scores=True)
    assert found is not None and found[0] == 2, scores
    assert scores[0][0] >= decide.MATCH_LIKENESS + 0.1


def test_a_reflowed_docx_page_is_aligned_in_parts_and_its_boxes_read_where_they_were_printed():
    """Seed 41 docx-reflow (`python -m benchmarks.parse --out DIR --pages 40 --seed 41 --condition
    docx-reflow --stacks 0`, batch 0, page 1): a CERP page 1 whose DOCX another word processor laid
    out (its first paragraph breaks a line later): everything below sits 4.5 mm lower than on the
    issued print, likeness 0.26, « non reconnue », its 15 boxes not read. Aligned in parts (each
    run of lines, each table found by its printed content), it is matched and every box is read
    right where it is placed; what was found nowhere is flagged, never read with confidence."""
    import json

    from parsers.scan import fit, locate

    scan = cv2.imread(str(REPLAYS / "seed41-reflow-0-0-cerp1-scan.jpg"), cv2.IMREAD_GRAYSCALE)
    issued = cv2.imread(str(REPLAYS / "seed41-reflow-0-0-cerp1-issued.png"), cv2.IMREAD_GRAYSCALE)
    boxes = json.loads((REPLAYS / "seed41-reflow-0-0-cerp1-boxes.json").read_text())
    assert locate.content_match(scan, [(1, issued)]) is None     # as a whole: not alike
    found = locate.content_match(scan, [(1, issued)], in_parts=True)
    assert found is not None and found[0] == 1
    _, _, flat, unplaced = found
    page = fit.page_fit(flat, issued, None, unplaced)
    read = 0
    for b in boxes:
        st = decide.box_state(measure.measure_box(flat, b["bbox"]))
        if page.doubt(b["bbox"]) is None and st.state in ("checked", "empty"):
            assert st.state == b["state"], b        # read: right
            read += 1
        else:
            assert fit.in_unplaced(b["bbox"], unplaced) or st.state == "uncertain", b
    assert read == len(boxes) == 15
    # a box in a part found nowhere is doubted (flagged), whatever its ink says
    assert unplaced and page.doubt([20.0, unplaced[0][0], 30.0, unplaced[0][0] + 8.0]).startswith("Partie")

# Seed 37, batch 27, page 4: the CERP's offers page faxed; the bench's handwriting of a zone
# runs across the boxes (the crop's PDF-point boxes: its origin is the page's (116.64, 116.64)).
CROSSED_BOXES = {   # (path, code): bbox
    ("offres.0.raisonnable", "oui"): [18.46, 16.66, 28.46, 26.86],
    ("offres.0.raisonnable", "non"): [18.46, 28.56, 28.46, 38.76],
    ("offres.0.refusee", True): [18.46, 40.46, 28.46, 50.66],
    ("offres.0.resultat", "atteint"): [222.16, 16.66, 232.16, 26.86],
    ("offres.0.resultat", "partiellement_atteint"): [222.16, 28.56, 232.16, 38.76],
    ("offres.0.resultat", "non_atteint"): [222.16, 40.46, 232.16, 50.66],
    ("offres.1.refusee", True): [18.46, 128.26, 28.46, 138.46],
    ("offres.1.resultat", "non_atteint"): [222.16, 128.26, 232.16, 138.46],
    ("offres.2.raisonnable", "oui"): [18.46, 192.36, 28.46, 202.56],
    ("offres.2.raisonnable", "non"): [18.46, 204.26, 28.46, 214.46],
    ("offres.2.refusee", True): [18.46, 216.16, 28.46, 226.36],
}


def _crossed_page():
    flat = cv2.imread(str(REPLAYS / "seed37-27-4-fax-crossed.png"), cv2.IMREAD_GRAYSCALE)
    printed = cv2.imread(str(REPLAYS / "seed37-27-4-fax-crossed-printed.png"), cv2.IMREAD_GRAYSCALE)
    return flat, printed


def _measure(flat, printed, key):
    """As pipeline.read_boxes measures: with every box of the page (itself among them)."""
    return measure.measure_box(flat, CROSSED_BOXES[key], printed, list(CROSSED_BOXES.values()))


def test_handwriting_run_across_boxes_is_not_a_confident_tick():
    """Seed 37, batch 27, page 4 (`python -m benchmarks.parse --out DIR --seed 37 --replay 27:4`):
    a CERP offers page faxed (1-bit, 100 dpi); a line of handwriting runs across « Offre
    refusée » and « Non atteint » of the first offer, a signature's stroke through « Offre
    refusée » of the third: three empty boxes read ticked with confidence 1.0. Ink the printed
    page does not have goes on beyond each box on opposite sides (or, where print hides one
    side, the box holds one straight run in line with the other): uncertain, to review."""
    flat, printed = _crossed_page()
    for key in [("offres.0.refusee", True), ("offres.0.resultat", "non_atteint"), ("offres.2.refusee", True)]:
        ink = _measure(flat, printed, key)
        assert ink.light >= decide.CHECK_LIGHT, key                      # the figures alone say "ticked"
        assert decide.box_state(measure.measure_box(flat, CROSSED_BOXES[key])).state == "checked"   # as before
        assert ink.crossed, key
        st = decide.box_state(ink)
        assert (st.state, st.why) == ("uncertain", decide.CROSSED_WHY), key
    group = {c: decide.box_state(_measure(flat, printed, ("offres.0.resultat", c)))
             for c in ("atteint", "partiellement_atteint", "non_atteint")}
    d = decide.decide_group("choice", group, list(group))
    assert d.needs_review and d.value is None and d.reason.startswith(decide.CROSSED_WHY)


def test_marks_beside_a_line_of_handwriting_are_still_ticks():
    """On that page, a tick, a cross overshooting its corners and a big tick whose long arm
    crosses the border up and right stay confident ticks; the untouched boxes stay empty."""
    import numpy as np

    flat, printed = _crossed_page()
    k = measure.K
    for key, kind in [(("offres.1.refusee", True), "tick"), (("offres.1.resultat", "non_atteint"), "cross"),
                      (("offres.2.raisonnable", "oui"), "big tick")]:
        x0, y0, x1, y1 = (v * k for v in CROSSED_BOXES[key])
        s = x1 - x0
        pts = {"tick": [(0.2, 0.5), (0.42, 0.85), (0.85, 0.15)],
               "big tick": [(0.15, 0.45), (0.45, 0.85), (1.5, -0.7)]}.get(kind)
        if pts:
            cv2.polylines(flat, [np.int32([(x0 + u * s, y0 + v * s) for u, v in pts])], False, 0, 3)
        else:   # arms 0.3 of a side past each corner
            for (u0, v0, u1, v1) in ((-0.3, -0.3, 1.3, 1.3), (1.3, -0.3, -0.3, 1.3)):
                cv2.line(flat, (int(x0 + u0 * s), int(y0 + v0 * s)), (int(x0 + u1 * s), int(y0 + v1 * s)), 0, 3)
        ink = _measure(flat, printed, key)
        st = decide.box_state(ink)
        assert not ink.crossed and st.state == "checked" and st.confidence >= 0.9, (key, kind)
    for key in [("offres.0.raisonnable", "oui"), ("offres.0.resultat", "atteint"), ("offres.2.raisonnable", "non")]:
        assert decide.box_state(_measure(flat, printed, key)).state == "empty", key


def test_a_tick_between_two_lines_of_handwriting_is_a_tick(monkeypatch):
    """Seed 23, batch 11, page 8 (a tuning seed; `python -m benchmarks.parse --out DIR --seed 23
    --replay 11:8`): a fiche de liaison scanned grey; a big tick in `referent.type`
    « professionnel », with handwriting in the cells above and below it, 1.6 box sides away.
    Those lines are opposite each other but do not come near the box: still a tick."""
    flat = cv2.imread(str(REPLAYS / "seed23-11-8-tick-between-lines.png"), cv2.IMREAD_GRAYSCALE)
    printed = cv2.imread(str(REPLAYS / "seed23-11-8-tick-between-lines-printed.png"), cv2.IMREAD_GRAYSCALE)
    bbox = [35.96, 35.86, 45.96, 46.06]
    ink = measure.measure_box(flat, bbox, printed)
    st = decide.box_state(ink)
    assert not ink.crossed and st.state == "checked" and st.confidence >= 0.9
    monkeypatch.setattr(measure, "CROSS_REACH", measure.CROSS_FAR)   # any piece in the band counts
    assert measure.measure_box(flat, bbox, printed).crossed


def test_a_big_tick_whose_short_arm_hardly_shows_is_a_tick():
    """Seed 31, batch 11, page 4 (`python -m benchmarks.parse --dir DIR --batches 11` on the bench
    of `--seed 31`): an Annexe 2 photographed; a big tick in `logement.diflog` « 1006 », its long
    arm over the border up and right, its short arm hardly there: inside, one straight run going
    on beyond the box in line with it, as a stroke passing through does (and the page's rules,
    1 mm off their print, on the other side). Up and right is where a tick's arm goes: a tick."""
    flat = cv2.imread(str(REPLAYS / "seed31-11-4-phone-big-tick.png"), cv2.IMREAD_GRAYSCALE)
    printed = cv2.imread(str(REPLAYS / "seed31-11-4-phone-big-tick-printed.png"), cv2.IMREAD_GRAYSCALE)
    ink = measure.measure_box(flat, [39.54, 39.66, 49.54, 49.86], printed)
    st = decide.box_state(ink)
    assert not ink.crossed and st.state == "checked" and st.confidence >= 0.9


# -- v3-review: fewer boxes sent to review, never a confident error --

def _dumped_page(name: str) -> tuple[list[dict], list[tuple[float, float]], list[measure.BoxInk]]:
    """A page's boxes as `benchmarks.parse --dump-boxes` wrote them: the truth, the centres
    (PDF points) and the ink figures measure_box gave on the failing run."""
    import json

    boxes = json.loads((REPLAYS / name).read_text(encoding="utf-8"))["boxes"]
    centres = [((b["bbox"][0] + b["bbox"][2]) / 2, (b["bbox"][1] + b["bbox"][3]) / 2) for b in boxes]
    inks = [measure.BoxInk(b["darkness"], b["coverage"], b["light"], b["solid"], (0, 0, 0, 0), b["found"],
                           b["speck"], b["streak"], b["dusted"], b["match"], b["offset_mm"], b["crossed"])
            for b in boxes]
    return boxes, centres, inks


def test_a_shaded_phone_page_s_empty_boxes_far_from_others_are_judged_against_the_page(monkeypatch):
    """Seed 31, batch 2, page 0 (`python -m benchmarks.parse --dir DIR --batches 2 --dump-boxes
    FILE` on the bench of `--seed 31`): a fiche de liaison photographed, shaded; its empty boxes
    sit at darkness 0.026–0.046 once JPEG specks are taken out as dust. Those of the right-hand
    column (« autres », « aides financières ») had 2 or 3 quiet boxes within 50 mm: no
    background, uncertain at 0.041–0.044, and their fields went to review. Their 6 nearest
    quiet boxes (within 100 mm) sit at ~0.039: empty. Every box of the page reads its truth."""
    boxes, centres, inks = _dumped_page("seed31-2-0-phone-shade.json")
    got = [decide.box_state(ink, bg).state for ink, bg in zip(inks, decide.backgrounds(centres, inks))]
    assert [b["truth"] for b in boxes] == got
    assert sum(decide.box_state(ink).state == "uncertain" for ink in inks) == 9    # the page not used
    monkeypatch.setattr(decide, "BACKGROUND_MM", 50.0)          # the quiet boxes within 50 mm only
    monkeypatch.setattr(decide, "BACKGROUND_NEAREST", len(inks))
    old = [decide.box_state(ink, bg).state for ink, bg in zip(inks, decide.backgrounds(centres, inks))]
    assert old.count("uncertain") == 4


def test_boxes_of_a_photographed_page_the_alignment_leaves_off_are_read_where_the_page_lies():
    """Seed 13, batch 4, page 0 (`python -m benchmarks.parse --dir DIR --batches 4` on the bench
    of `--seed 13`): an Annexe 3 photographed with a phone; its perspective is not what the
    alignment fitted, and the « paliers » grid lies ~2 mm off (1.3 mm right, 1.7 mm up, less
    to the right of the page). The squares were looked for ±1.2 mm around their places and not
    found; measured there, an empty box reads its own border (darkness ~0.14), and the whole
    grid went to review (« Page déformée »). Looked for again where the printed content near
    each box lies, and then where the squares found around it say (an affine map of their
    shifts), the boxes are placed and read right; none is read confidently wrong."""
    import json

    import numpy as np

    from parsers.scan import fit, pipeline

    case = json.loads((REPLAYS / "seed13-4-0-phone-perspective.json").read_text(encoding="utf-8"))
    flat = cv2.imread(str(REPLAYS / "seed13-4-0-phone-perspective.jpg"), cv2.IMREAD_GRAYSCALE)
    ref = cv2.imread(str(REPLAYS / "seed13-4-0-phone-perspective-printed.png"), cv2.IMREAD_GRAYSCALE)
    f = case["fit"]
    pf = fit.PageFit(np.array(f["points"]), np.array(f["shift_mm"]), f["marks_mm"], (), np.array(f["vectors"]))
    boxes = case["boxes"]
    squares = np.array([b["bbox"] for b in boxes], float)
    centres = [((b["bbox"][0] + b["bbox"][2]) / 2, (b["bbox"][1] + b["bbox"][3]) / 2) for b in boxes]
    inks = [measure.measure_box(flat, b["bbox"], ref, squares) for b in boxes]
    before = [decide.box_state(i, bg) for i, bg in zip(inks, decide.backgrounds(centres, inks))]
    doubted = [k for k, b in enumerate(boxes) if pf.doubt(b["bbox"]) or before[k].state == "uncertain"]
    assert len(doubted) >= 25                        # the grid went to review
    placed = pipeline._placed_where_the_page_lies(flat, ref, squares, boxes, centres, inks, pf)
    after = [decide.box_state(i, bg) for i, bg in zip(inks, decide.backgrounds(centres, inks))]
    assert len(placed) >= 20
    for k in placed:
        assert after[k].state in ("uncertain", boxes[k]["truth"]), boxes[k]
    right = sum(after[k].state == boxes[k]["truth"] for k in placed)
    assert right >= 20


def test_a_square_found_firmly_near_its_place_vouches_for_its_box_where_the_page_does_not_fit():
    """Seed 23, batch 5, page 2 (`python -m benchmarks.parse --dir DIR --batches 5` on the bench
    of `--seed 23`): a DSP page photographed; the printed content near « avis_ep » lies 1.2 mm
    off (« Page déformée »), and the empty box « favorable » went to review with its field,
    though its own square was found 1.25 mm off with a firm match (0.66): its interior is
    read where it was printed. It is placed (FIRM_MATCH) and reads empty."""
    import json

    import numpy as np

    from parsers.scan import fit, pipeline

    case = json.loads((REPLAYS / "seed23-5-2-phone-avis.json").read_text(encoding="utf-8"))
    flat = cv2.imread(str(REPLAYS / "seed23-5-2-phone-avis.png"), cv2.IMREAD_GRAYSCALE)
    ref = cv2.imread(str(REPLAYS / "seed23-5-2-phone-avis-printed.png"), cv2.IMREAD_GRAYSCALE)
    f = case["fit"]
    pf = fit.PageFit(np.array(f["points"]), np.array(f["shift_mm"]), f["marks_mm"], (), np.array(f["vectors"]))
    boxes = case["boxes"]
    squares = np.array([b["bbox"] for b in boxes], float)
    centres = [((b["bbox"][0] + b["bbox"][2]) / 2, (b["bbox"][1] + b["bbox"][3]) / 2) for b in boxes]
    inks = [measure.measure_box(flat, b["bbox"], ref, squares) for b in boxes]
    assert pf.doubt(boxes[0]["bbox"]) and inks[0].match >= pipeline.FIRM_MATCH and inks[0].offset_mm > 1.0
    assert pipeline._placed_where_the_page_lies(flat, ref, squares, boxes, centres, inks, pf) == {0}
    assert decide.box_state(inks[0]).state == "empty"


def test_a_tick_hiding_its_square_in_a_row_of_boxes_far_apart_is_placed_by_the_squares_around():
    """Seed 13, batch 22, page 6 (`python -m benchmarks.parse --dir DIR --batches 22` on the
    bench of `--seed 13`): a DSP page 2 photographed; « nataccosocfam » is one row of four
    boxes 20–25 mm apart, no printed content near enough to compare, and the ticks of 0412
    and 0413 hide their squares. With fewer than two squares found within 30 mm
    (`placed_by_neighbours`), both went to review (« Case imprimée non retrouvée »). The
    squares found within 60 mm all lie within 0.4 mm of their places: they place them."""
    import json

    import numpy as np

    from parsers.scan import fit, pipeline

    case = json.loads((REPLAYS / "seed13-22-6-phone-hidden-squares.json").read_text(encoding="utf-8"))
    f = case["fit"]
    pf = fit.PageFit(np.array(f["points"]), np.array(f["shift_mm"]), f["marks_mm"], (), np.array(f["vectors"]))
    boxes = case["boxes"]
    inks = [measure.BoxInk(b["darkness"], b["coverage"], b["light"], b["solid"], tuple(b["square"]), b["found"],
                           match=b["match"], offset_mm=b["offset_mm"]) for b in boxes]
    squares = np.array([b["bbox"] for b in boxes], float)
    centres = [((b["bbox"][0] + b["bbox"][2]) / 2, (b["bbox"][1] + b["bbox"][3]) / 2) for b in boxes]
    hidden = [k for k, b in enumerate(boxes) if b["value"] in ("0412", "0413")]
    for k in hidden:       # what sent them to review
        assert not inks[k].found and not pf.fits_at(boxes[k]["bbox"])
    assert not decide.placed_by_neighbours(hidden[1], centres, inks)
    white = np.full(case["shape"], 255, np.uint8)      # nothing is measured again
    placed = pipeline._placed_where_the_page_lies(white, None, squares, boxes, centres, inks, pf)
    assert set(hidden) <= placed
    assert all(decide.box_state(inks[k]).state == "checked" for k in hidden)


def test_a_footer_whose_version_names_no_issued_document_is_matched_by_its_id(tmp_path):
    """Seed 31, batch 17, page 1 (`python -m benchmarks.parse --dir DIR --batches 17` on the bench
    of `--seed 31`): the fiche de liaison scanned 1-bit whose footer OCR read the document id
    with two slips (« D1KGNJHK31HJCMJCS6GKX7MJG5 ») was still in no record (« Mise en page
    inconnue »): the near id was looked for among the issued documents of the template version
    read, « 37c5215fbe0c », and the document was issued with another (the version is OCR too:
    12 hex digits). The id names its document whatever the version read; the issued document
    then gives its own version and layout."""
    from parsers.scan.references import References
    from parsers.store import Store

    with _issued_database(tmp_path, ("01KGNJHK31HJCMJC56GKX7MJG5", "fiche-liaison", "4a0f3c2d9e11",
                                     tmp_path / "n.pdf")) as database:
        store = Store(None, database=database)
        read = "D1KGNJHK31HJCMJCS6GKX7MJG5"
        assert References(store).known_document_id(read, "fiche-liaison", "37c5215fbe0c") == \
            "01KGNJHK31HJCMJC56GKX7MJG5"
        assert References(store).known_document_id(read, "cers", "37c5215fbe0c") is None   # its form only


def test_a_fax_identified_by_its_content_alone_is_checked_on_its_blank_page(tmp_path):
    """Seed 43, batch 3, page 1 (`python -m benchmarks.parse --dir DIR --batches 3` on the bench
    of `--seed 43 --pages 80 --stacks 0`): an Annexe 3 faxed (1-bit, 100 dpi), its QR codes and
    footer unreadable, taken for the Annexe 3 by its rough likeness to the blank page
    (:meth:`References.match_reference`) and, having no document id to be checked against,
    never checked: 52 of its boxes sent to review (« page identifiée par son contenu »). It is
    now checked on the blank pages as a page :meth:`ScanBatch._match_blank` identifies is: alike
    enough, and clearly more than any other page. The fixture is the rectified page at 50 dpi,
    the resolution pages are compared at (:func:`references.likeness`)."""
    import shutil

    from forms_service import db
    from forms_service.catalogue import catalogue
    from forms_service.config import Settings
    from parsers.scan.batch import ScanBatch
    from parsers.scan.ingest import PageImage
    from parsers.scan.locate import PageResult
    from parsers.store import Store

    templates = tmp_path / "templates" / "pdf"
    templates.mkdir(parents=True)
    shutil.copy(Path(__file__).parents[1] / "templates" / "pdf" / "annexe-3.pdf", templates)   # one page
    small = cv2.imread(str(REPLAYS / "seed43-3-0-fax-annexe3-50dpi.png"), cv2.IMREAD_GRAYSCALE)
    flat = cv2.resize(small, (1654, 2339), interpolation=cv2.INTER_NEAREST)   # A4 at WORK_DPI
    database = db.Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        store = Store(Settings(var_dir=tmp_path, templates_dir=tmp_path / "templates"), database=database)

        def located(form: str, page: int) -> ScanBatch:
            fd = catalogue.get(form)
            batch = ScanBatch(store)
            batch.add_page(PageResult(PageImage("fax.pdf", 1, flat[:0], 100.0), "form", None, fd, page, fd.pages,
                                      0, "content", flat, "QR code illisible : page identifiée par son contenu"))
            batch.match_pending()
            (doc,) = batch.docs.values()
            return doc.pages[page]

        assert located("annexe-3", 1).verified
        assert not located("fiche-liaison", 1).verified   # taken for another page: not vouched for
    finally:
        database.dispose()


def test_a_reflowed_docx_page_whose_qr_code_was_lost_is_matched_in_parts():
    """Seed 47 docx-reflow (`python -m benchmarks.parse --dir DIR --batches 3` on the bench of
    `--seed 47 --pages 40 --condition docx-reflow --stacks 0`, page 3:4): a CERS page 1 printed
    from its DOCX by another word processor, fed upside down, its QR code lost: matched to the
    page its batch lacks (:meth:`ScanBatch._match`) by registration as a whole only, likeness
    0.41, and read nowhere (a page in no record). A document issued as DOCX is now matched as a
    page identified in its header is: aligned in parts when somewhat alike."""
    import numpy as np

    from parsers.scan import locate

    scan = cv2.imread(str(REPLAYS / "seed47-reflow-3-4-cers1-scan.png"), cv2.IMREAD_GRAYSCALE)
    issued = cv2.imread(str(REPLAYS / "seed47-reflow-3-4-cers1-issued.png"), cv2.IMREAD_GRAYSCALE)
    score, matrix, flat, parts = locate.registered_in_parts(scan, issued)
    assert parts    # aligned in parts: as a whole it was not alike enough (under MATCH_LIKENESS)
    assert score >= decide.MATCH_LIKENESS
    assert round(float(np.degrees(np.arctan2(matrix[1, 0], matrix[0, 0]))) / 90) % 4 == 2   # upside down
    unplaced = locate.unplaced_parts(parts)
    assert unplaced and all(top < bottom for top, bottom in unplaced)   # what was found nowhere is said


def test_a_reflowed_docx_page_registered_into_a_stretch_is_registered_as_a_sheet_moves():
    """Seed 47 docx-reflow (`python -m benchmarks.parse --dir DIR --batches 5` on the same bench,
    page 5:0): a CERS page 1 printed from its DOCX by another word processor, scanned grey at
    150 dpi a little enlarged and its top (with the QR code) cut off. Its moved lines pulled the
    free affine registration into a stretch (about 9 % taller than wide): likeness 0.14, in parts
    0.38, « Page non reconnue ». Registered again as a sheet moves (rotation, one scale, shift),
    then aligned in parts, it is the page its batch lacks. The fixture is the scan at the 100 dpi
    the registration works at (the very image its features were found on)."""
    import numpy as np

    from parsers.scan import locate

    scan = cv2.imread(str(REPLAYS / "seed47-reflow-5-0-cers1-scan.png"), cv2.IMREAD_GRAYSCALE)
    issued = cv2.imread(str(REPLAYS / "seed47-reflow-5-0-cers1-issued.png"), cv2.IMREAD_GRAYSCALE)
    score, matrix, flat, parts = locate.registered_in_parts(scan, issued)
    assert score >= decide.MATCH_LIKENESS and parts
    sx, sy = np.hypot(matrix[0, 0], matrix[1, 0]), np.hypot(matrix[0, 1], matrix[1, 1])
    assert abs(sx / sy - 1) < 0.01        # not stretched


def test_the_bench_writes_a_list_row_s_cells_where_its_row_was_printed():
    """The bench's truth (`benchmarks/scanbench/generate.py`, :func:`placed`): a zone moved like
    the printed label text nearest above it. In a list, the text above a row's cells is the
    table's heading, so every row's handwriting was drawn where the layout map put the row,
    not where the print did: seed 47 docx (`python -m benchmarks.parse --out DIR --pages 100
    --seed 47 --condition docx --stacks 0 --replay 3`), a CERS page 2 printed from its DOCX,
    row 4's handwriting drawn in row 3 (six zones « written, not flagged », three printed ones
    flagged); and rows that wrapped onto the next page (seed 37's CERP, `--replay 27:4`) left
    their handwriting on the page before, across the boxes there. A row's cells now go where
    its boxes were printed (page and height), the other zones to the page their page's
    boxes went to."""
    from types import SimpleNamespace

    from benchmarks.scanbench import generate

    layout = {
        "boxes": [{"path": "pap.3.resultat", "value": "atteint", "page": 2, "bbox": [300.0, 600.0, 310.0, 610.0]},
                  {"path": "pap.4.resultat", "value": "atteint", "page": 2, "bbox": [300.0, 700.0, 310.0, 710.0]},
                  {"path": "accord", "value": True, "page": 3, "bbox": [60.0, 100.0, 70.0, 110.0]}],
        "zones": [{"path": "pap.3.code", "kind": "text", "page": 2, "bbox": [40.0, 596.0, 90.0, 660.0]},
                  {"path": "pap.4.code", "kind": "text", "page": 2, "bbox": [40.0, 696.0, 90.0, 760.0]},
                  {"path": "signature", "kind": "signature", "page": 3, "bbox": [40.0, 300.0, 200.0, 360.0]}],
    }
    # as printed: row 3 taller above it (10 pt lower), row 4 pushed onto page 3, page 3 onto 4
    glyphs = [(2, 305.0, 615.0), (3, 305.0, 85.0), (4, 65.0, 105.0)]
    key = ("test-form", "v", ())
    generate._BLANK_RUNS[key] = {}
    try:
        rendered = generate.Rendered(b"", layout, "v", 4, key)
        boxes, zones = generate.placed(rendered, glyphs, {}, SimpleNamespace(form="cers", document_id="x"))
    finally:
        generate._BLANK_RUNS.pop(key, None)
    where = {z["path"]: (z["page"], z["bbox"][1]) for z in zones}
    assert where["pap.3.code"] == (2, 606.0)
    assert where["pap.4.code"] == (3, 76.0)        # with its row, on the next page
    assert where["signature"][0] == 4              # its page's boxes went to page 4


def test_a_page_aligned_by_its_marks_is_matched_to_the_page_its_batch_lacks(tmp_path):
    """Seed 31, batches 3 and 30 (`python -m benchmarks.parse --dir DIR --batches 3,30` on the
    bench of `--seed 31`): faxes whose QR codes were lost, aligned by their marks, matched as
    they are to the pages their batch lacks (:meth:`ScanBatch._match`). The faxed Annexe 3 of
    seed 43 (the fixture, at 50 dpi) stands for one: its document lacks its page 1, issued as
    the blank form's PDF; the page is that page, read like a page identified by its QR code."""
    import shutil

    from forms_service.catalogue import catalogue
    from forms_service.config import Settings
    from parsers.scan.batch import ScanBatch
    from parsers.scan.ingest import PageImage
    from parsers.scan.locate import PageResult
    from parsers.scan.pipeline import DocPages
    from parsers.store import Store

    issued = tmp_path / "issued.pdf"
    shutil.copy(Path(__file__).parents[1] / "templates" / "pdf" / "annexe-3.pdf", issued)
    small = cv2.imread(str(REPLAYS / "seed43-3-0-fax-annexe3-50dpi.png"), cv2.IMREAD_GRAYSCALE)
    flat = cv2.resize(small, (1654, 2339), interpolation=cv2.INTER_NEAREST)
    doc_id = "01KHMEGJS0ARAGAQP73CA8FRMS"
    with _issued_database(tmp_path, (doc_id, "annexe-3", "e993ce5b6a92", issued)) as database:
        store = Store(Settings(var_dir=tmp_path, templates_dir=tmp_path / "templates"), database=database)
        fd = catalogue.get("annexe-3")
        batch = ScanBatch(store)
        key = ("annexe-3", "e993ce5b6a92", doc_id, 0)
        batch.docs[key] = DocPages(fd, "e993ce5b6a92", doc_id, page_count=1)   # its page 1 missing
        batch.order.append(key)
        batch.pending.append(PageResult(PageImage("fax.pdf", 1, flat[:0], 100.0), "unknown", flat=flat,
                                        message="Page non reconnue : QR code illisible et contenu inconnu"))
        batch.match_pending()
        page = batch.docs[key].pages[1]
        assert page.verified and page.image.file == "fax.pdf" and page.flat is flat


def test_a_footer_whose_version_slipped_joins_its_issued_document(tmp_path):
    """A page whose QR codes were unreadable and whose footer's OCR read the document id right
    and the template version with a slip (« 570ca0865321 » for « 570ca0956321 », as on seed 53,
    stack 902, page 2) started a document of its own, of a version with no layout: « Mise en
    page inconnue ». The issued document's own version is the page's: it joins its copy."""
    import numpy as np

    from forms_service.catalogue import catalogue
    from forms_service.render.qr import QrInfo
    from parsers.scan.batch import ScanBatch
    from parsers.scan.ingest import PageImage
    from parsers.scan.locate import PageResult
    from parsers.store import Store

    doc_id = "01KH6KQ2V8M5T3R9X0Y4Z7W1AB"
    with _issued_database(tmp_path, (doc_id, "cers", "570ca0956321", tmp_path / "c.pdf")) as database:
        store = Store(None, database=database)
        batch, cers = ScanBatch(store), catalogue.get("cers")

        def page(n, version):
            return PageResult(image=PageImage("pile.tif", n, np.zeros((0, 0), np.uint8), 200.0), status="form",
                              info=QrInfo("cers", version, n, 3, doc_id), form=cers, page=n, pages=3,
                              identified_by="qr" if version == "570ca0956321" else "footer",
                              digest=f"page-{n}")

        for n, version in ((1, "570ca0956321"), (2, "570ca0956321"), (3, "570ca0865321")):
            batch.add_page(page(n, version))
        assert [(d.version, sorted(d.pages)) for d in batch.docs.values()] == [("570ca0956321", [1, 2, 3])]


def test_a_footer_whose_id_and_version_both_slipped_names_no_document(tmp_path):
    """Seed 53, stack 902, page 2 (`python -m benchmarks.parse --dir DIR --batches 902` on the
    bench of `--seed 53`): a photocopied CERS page 3, 1-bit, QR codes unreadable, whose footer's
    OCR slipped on the id (« 01KJFBXWJ0BEKP0SMNSE425THA » for « 01KJFSXWJ069KP03MN3E425THA »,
    too far to be matched) and on the version (« 570ca0865321 »). The whole id was kept as
    read, a document of its own with no layout: « Mise en page inconnue pour cers ». An id
    that names no issued document is kept only with a version this service knows; else the
    page joins the document of its form that lacks it."""
    from forms_service import db
    from parsers.scan.references import References
    from parsers.store import Store

    issued = "01KJFSXWJ069KP03MN3E425THA"
    with _issued_database(tmp_path, (issued, "cers", "570ca0956321", tmp_path / "c.pdf")) as database:
        store = Store(None, database=database)
        with store.database.session() as s:
            s.add(db.TemplateVersion(form_id="cers", version="570ca0956321", layout={"pages": [{}]},
                                     template_sha="0" * 64))
        refs = References(store)
        other = "01KJFBXWJ0BEKP0SMNSE425THA"
        assert refs.footer_document_id(issued, "cers", "570ca0865321") == issued
        assert refs.footer_document_id(other, "cers", "570ca0956321") == other   # not issued here: its version's layout
        assert refs.footer_document_id(other, "cers", "570ca0865321") is None    # both slipped: an orphan
        assert refs.footer_document_id("01KJFS", "cers", "570ca0956321") is None  # cut short

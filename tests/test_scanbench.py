"""The scan test bench generator (benchmarks/scanbench): a few pages, fast.

One converter pool for the module; two 4-page runs of the same seed (the second is
quick: layout maps are cached) and one 2-page 1-bit run. Tests that render are skipped,
with the reason, only when LibreOffice is not installed.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from benchmarks.scanbench import damage as dmg
from benchmarks.scanbench import marks as mk
from benchmarks.scanbench.generate import Options, load_samples, plan_batch, run
from forms_service.render.pdf import ConverterPool, libreoffice_available

needs_libreoffice = pytest.mark.skipif(
    not libreoffice_available(),
    reason="LibreOffice is not installed (no soffice): scan bench generation tests skipped")

FORMS = ["annexe-3", "fiche-liaison"]
SEED = 20261105
STATES = {"checked", "empty", "blackened"}
KINDS = {"printed", "fill", *mk.BOX_KINDS}


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    if not libreoffice_available():
        pytest.skip("LibreOffice is not installed (no soffice): scan bench generation tests skipped")
    p = ConverterPool(size=2, work_dir=tmp_path_factory.mktemp("lo"))
    p.start()
    yield p
    p.close()


@pytest.fixture(scope="module")
def bench(pool, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    index = run(out / "a", 4, SEED, FORMS, pool=pool, options=Options(debug=True))
    return out, index


def truths(directory: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(directory.glob("*.truth.json"))}


def read_pages(path: Path) -> list[np.ndarray]:
    """The page images of an output file, as uint8 arrays (1-bit pages as 0/255)."""
    if path.suffix == ".pdf":
        import pikepdf
        from pikepdf import PdfImage

        out = []
        with pikepdf.open(path) as pdf:
            for page in pdf.pages:
                (_, raw), = dict(page.get_images()).items()
                out.append(np.array(PdfImage(raw).as_pil_image().convert("L")))
        return out
    with Image.open(path) as im:
        frames = []
        for i in range(getattr(im, "n_frames", 1)):
            im.seek(i)
            frames.append(np.array(im.convert("L")))
        return frames


def all_pages(directory: Path):
    for name, truth in truths(directory).items():
        images = read_pages(directory / truth["file"])
        assert len(images) == len(truth["pages"]), name
        for image, page in zip(images, truth["pages"]):
            yield truth, page, image


# --------------------------------------------------------------------------- generated files

@needs_libreoffice
def test_files_and_truth_are_well_formed(bench):
    out, index = bench
    a = out / "a"
    assert index["pages"] == 4 and len(index["rows"]) == 4
    assert json.loads((a / "index.json").read_text())["pages"] == 4
    for row in index["rows"]:
        assert (a / row["file"]).is_file() and (a / f"{row['file']}.truth.json").is_file()
    seen_boxes = 0
    for truth, page, image in all_pages(a):
        assert truth["seed"] == SEED and truth["format"] in ("pdf", "tiff", "jpeg", "png")
        assert page["replay"].startswith(f"--seed {SEED} --replay {truth['batch']}:")
        assert list(image.shape[::-1]) == page["size"]
        assert page["rotation"] in (0, 90, 180, 270) and abs(page["skew_deg"]) <= 3
        assert 150 <= page["dpi"] <= 300 and page["mode"] in ("color", "grey", "bw")
        if page["blank"]:
            assert page["form"] is None and page["boxes"] == []
            continue
        assert page["form"] in FORMS and len(page["document_id"]) == 26
        assert len(page["template_version"]) == 12 and 1 <= page["page_number"] <= page["page_count"]
        doc = next(d for d in truth["documents"] if d["document_id"] == page["document_id"])
        assert doc["form"] == page["form"] and isinstance(doc["data"], dict)
        for box in page["boxes"]:
            seen_boxes += 1
            assert box["state"] in STATES and len(box["bbox"]) == 4 and len(box["px_bbox"]) == 4
            assert (box["mark"] is None) == (box["state"] == "empty")
            assert box["mark"] is None or box["mark"] in KINDS
            assert isinstance(box["ambiguous"], bool)
            if box["state"] == "blackened":
                assert box["mark"] == "fill"
        for sig in page["signatures"]:
            assert isinstance(sig["signed"], bool) and len(sig["px_bbox"]) == 4
    assert seen_boxes > 0


@needs_libreoffice
def test_same_seed_same_truth(bench, pool):
    out, _ = bench
    run(out / "b", 4, SEED, FORMS, pool=pool)
    first, second = truths(out / "a"), truths(out / "b")
    assert first.keys() == second.keys()
    assert first == second


@needs_libreoffice
def test_replay_gives_the_same_page(bench, pool):
    out, index = bench
    row = next(r for r in index["rows"] if not r["blank"])
    run(out / "replay", 0, SEED, FORMS, pool=pool, replay=(row["batch"], row["index"]))
    page = next(p for t in truths(out / "a").values() for p in t["pages"]
                if t["batch"] == row["batch"] and p["index"] == row["index"])
    again = next(p for t in truths(out / "replay").values() for p in t["pages"])
    assert again == page


@needs_libreoffice
def test_damaged_image_differs_from_clean(bench):
    out, _ = bench
    a = out / "a"
    compared = 0
    for truth, page, image in all_pages(a):
        if page["blank"]:
            continue
        n = truth["pages"].index(page) + 1
        clean = cv2.imread(str(a / "debug" / f"{truth['file']}-p{n}-clean.png"), cv2.IMREAD_GRAYSCALE)
        assert clean is not None
        clean = dmg.orient(cv2.resize(clean, dmg.a4_pixels(page["dpi"]), interpolation=cv2.INTER_AREA),
                           page["rotation"])
        assert clean.shape == image.shape
        diff = np.abs(clean.astype(np.int16) - image.astype(np.int16))
        assert diff.mean() > 2.0
        compared += 1
    assert compared


@needs_libreoffice
def test_hand_marks_are_visible_after_damage(bench):
    """Hand-ticked boxes are darker than empty ones in the scanned image, where the truth says."""
    out, _ = bench
    checked_seen = 0
    for _, page, image in all_pages(out / "a"):
        def darkness(b):
            x0, y0, x1, y1 = b["px_bbox"]
            w, h = x1 - x0, y1 - y0
            crop = image[int(y0 + 0.25 * h):int(y1 - 0.25 * h), int(x0 + 0.25 * w):int(x1 - 0.25 * w)]
            return 255.0 - float(crop.mean()) if crop.size else 0.0
        empty = [darkness(b) for b in page["boxes"] if b["state"] == "empty"]
        hand = [darkness(b) for b in page["boxes"] if b["state"] != "empty" and b["mark"] != "printed"]
        if hand and empty:
            checked_seen += len(hand)
            assert np.mean(hand) > np.median(empty) + 15, page["replay"]
    assert checked_seen


@needs_libreoffice
def test_one_bit_pages_have_no_pencil(pool, tmp_path):
    index = run(tmp_path, 2, SEED + 1, FORMS, pool=pool,
                options=Options(formats=("tiff", "pdf"), modes=("bw",)))
    assert index["pages"] == 2
    for truth, page, image in all_pages(tmp_path):
        assert page["mode"] == "bw"
        assert set(np.unique(image)) <= {0, 255}
        assert image.mean() > 128            # white paper, black ink (not inverted)
        inks = [x.get("ink") for x in page["boxes"] + page["signatures"] + page["handwriting"]]
        assert "pencil" not in inks
        if truth["format"] == "tiff":
            with Image.open(tmp_path / truth["file"]) as im:
                assert im.info.get("compression") == "group4"


# --------------------------------------------------------------------------- no LibreOffice needed

def _forms():
    from forms_service.catalogue import catalogue
    return [catalogue.get(f) for f in FORMS]


def test_plans_never_use_pencil_on_one_bit_pages():
    forms = _forms()
    samples = load_samples({fd.id: fd for fd in forms})
    bw_pens, grey_pens = set(), set()
    for b in range(60):
        for mode, pens in (("bw", bw_pens), ("grey", grey_pens)):
            plan = plan_batch(7, b, forms, samples, formats=("tiff",), modes=(mode,))
            for doc in plan.docs:
                assert doc.mode == mode
                pens |= {bp.pen for bp in doc.boxes.values()} | set(doc.handwritten.values())
                pens |= {p for p in doc.signed.values() if p}
    assert "pencil" not in bw_pens
    assert "pencil" in grey_pens          # pencil does occur where it may


def test_planted_ambiguities_are_flagged():
    forms = _forms()
    samples = load_samples({fd.id: fd for fd in forms})
    kinds = set()
    for b in range(80):
        for doc in plan_batch(3, b, forms, samples).docs:
            for a in doc.ambiguous:
                kinds.add(a["kind"])
                planted = [bp for (path, _), bp in doc.boxes.items() if path == a["path"] and bp.ambiguous]
                assert planted
                if a["kind"] == "double_tick":
                    assert len(planted) == 2 and all(bp.state == "checked" for bp in planted)
                else:
                    assert planted[0].state == "blackened"
    assert kinds == {"double_tick", "blackened"}


def _ink_width_mm(kind: str, pen: mk.Pen, dpi: int, seed: int) -> float:
    """Stroke width measured on the drawn pixels: ink area / stroke length (ends add a
    little area, crossings remove some: close to the true width)."""
    ppm = dpi / 25.4
    size = int(20 * ppm)
    rng = np.random.default_rng(seed)
    box = (size / 2 - 1.75 * ppm, size / 2 - 1.75 * ppm, size / 2 + 1.75 * ppm, size / 2 + 1.75 * ppm)
    width_mm, width_px = mk.stroke_width_px(pen, rng, ppm)
    strokes = mk.box_mark_strokes(kind, box, rng, width_px)
    area = length = 0.0
    for s in strokes:
        canvas = np.full((size, size), 255, np.uint8)
        mk.render_strokes(canvas, [s], pen, width_px, rng)
        coverage = (255.0 - canvas) / (255.0 - pen.grey) / pen.opacity
        area += float(coverage.sum())
        length += float(np.linalg.norm(np.diff(s.points, axis=0), axis=1).sum())
    assert width_mm >= mk.MIN_STROKE_MM
    return area / length / ppm


@pytest.mark.parametrize("dpi", [150, 200, 300])
def test_mark_strokes_at_least_a_quarter_millimetre(dpi):
    pens = [p for p in mk.PENS.values() if not p.grain]     # pencil grain lowers coverage, not width
    for pen in pens:
        for kind in ("tick", "cross", "scribble", "border"):
            for seed in range(3):
                measured = _ink_width_mm(kind, pen, dpi, seed)
                assert measured >= 0.25 * 0.95, (pen.name, kind, dpi, measured)
    for name, pen in mk.PENS.items():
        assert pen.width_mm[0] >= mk.MIN_STROKE_MM, name


def test_damage_geometry_maps_page_points_to_pixels():
    """The truth's matrix says where a page point lands, for every quarter turn."""
    page = (595.276, 841.89)
    for rotation in (0, 90, 180, 270):
        d = dmg.PageDamage(dpi=200, mode="grey", rotation=rotation, skew_deg=1.5, scale=0.97,
                           shift_mm=(4.0, -6.0), noise=0, speckles=0, paper=255, lid=255)
        w, h = dmg.a4_pixels(200)
        img = np.full((int(round(page[1] * 200 / 72)), int(round(page[0] * 200 / 72))), 255, np.uint8)
        x, y = 300.0, 200.0                                   # a dot at (300 pt, 200 pt)
        k = 200 / 72
        cv2.circle(img, (int(x * k), int(y * k)), 6, 0, -1)
        out, m = dmg.scan_damage(img, d, np.random.default_rng(0), page)
        px = m[:2] @ np.array([x, y, 1.0])
        ys, xs = np.where(out < 128)
        assert abs(xs.mean() - px[0]) < 2 and abs(ys.mean() - px[1]) < 2, rotation
        assert out.shape[::-1] == ((w, h) if rotation in (0, 180) else (h, w))


# ---------------------------------------------------------------------- issue 15: conditions

def _dot_page(page, x, y, dpi):
    k = dpi / 72
    img = np.full((int(round(page[1] * k)), int(round(page[0] * k))), 255, np.uint8)
    cv2.circle(img, (int(x * k), int(y * k)), max(3, int(6 * dpi / 200)), 0, -1)
    return img


def _project(m, x, y):
    v = np.asarray(m, float) @ np.array([x, y, 1.0])
    return v[:2] / v[2]


@pytest.mark.parametrize("condition", ["phone", "fax", "fit"])
def test_condition_geometry_maps_page_points_to_pixels(condition):
    """Phone photos (a homography), faxes and fit-to-page prints: the truth's 3×3 matrix
    still says where a page point lands (seeded)."""
    page = (595.276, 841.89)
    rng = np.random.default_rng(15)
    if condition == "phone":
        d = dmg.sample_phone_damage(rng, mode="grey", quarter_turn=90)
        assert d.tilt and d.frame and 30 <= d.jpeg_quality <= 70 and d.dpi == 150
    elif condition == "fax":
        d = dmg.sample_fax_damage(rng)
        assert d.dpi == 100 and d.mode == "bw"
    else:
        d = dmg.sample_page_damage(rng, dpi=200, mode="grey")
        d.fit = dmg.sample_fit(rng)
        assert 0.92 <= d.fit["scale"] <= 0.95
    d.noise, d.speckles, d.blur, d.shade = 0, 0, 0, None
    for x, y in ((300.0, 200.0), (60.0, 780.0), (540.0, 700.0)):
        img = _dot_page(page, x, y, d.dpi)
        out, m = dmg.scan_damage(img, d, np.random.default_rng(0), page)
        if d.mode == "bw":
            out = dmg.binarize(out, d)
        px = _project(m, x, y)
        ys, xs = np.where(out < 100)
        near = (abs(xs - px[0]) < 25) & (abs(ys - px[1]) < 25)
        assert near.sum() > 5, (condition, x, y)
        assert abs(xs[near].mean() - px[0]) < 2 and abs(ys[near].mean() - px[1]) < 2, (condition, x, y)
    if condition == "phone":   # a perspective, not an affine image: the table shows around the sheet
        assert abs(m[2, 0]) + abs(m[2, 1]) > 1e-6
        assert out.shape[0] * out.shape[1] > 1.2 * np.prod(dmg.a4_pixels(150))


def test_mixed_bench_holds_the_issues_shares_and_replays():
    """A third scanner pages, a third phone photos, a sixth faxes, a sixth sideways or
    fit-to-page (files mixing them draw with the same shares), by batch, seeded."""
    from benchmarks.scanbench.generate import MIX_BLOCK, PAGE_SHARES, batch_condition

    conds = [batch_condition(9, b, "mixed") for b in range(len(MIX_BLOCK) * 4)]
    assert conds == [batch_condition(9, b, "mixed") for b in range(len(MIX_BLOCK) * 4)]
    share = {c: conds.count(c) / len(conds) for c in set(conds)}
    mixed = share["mixed-file"]
    assert abs(share["scanner"] + mixed * PAGE_SHARES["scanner"] - 1 / 3) < 0.02
    assert abs(share["phone"] + mixed * PAGE_SHARES["phone"] - 1 / 3) < 0.02
    assert abs(share["fax"] + mixed * PAGE_SHARES["fax"] - 1 / 6) < 0.02
    assert abs(share["sideways"] + share["fit"] + mixed / 6 - 1 / 6) < 0.02
    assert batch_condition(9, 3, "phone") == "phone"
    forms = _forms()
    for b, cond in enumerate(conds[:24]):
        plan = plan_batch(9, b, forms, {}, condition="mixed")
        assert plan.condition == cond
        if cond == "fax":
            assert {d.mode for d in plan.docs} == {"bw"} and {d.dpi for d in plan.docs} == {100}
        if cond == "phone":
            assert {d.dpi for d in plan.docs} == {150} and 30 <= plan.jpeg_quality <= 70
        if cond == "mixed-file":
            assert plan.format == "pdf" and len(plan.docs) >= 2


def _forms():
    from forms_service.catalogue import catalogue

    return [fd for fd in catalogue.forms() if fd.id in FORMS]

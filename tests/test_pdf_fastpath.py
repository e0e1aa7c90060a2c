"""The PDF fast path (``render/fastpath.py``) against LibreOffice, on every sample and on
seeded random data made from the forms' own schemas.

For each document the fast path takes, its PDF and LibreOffice's PDF of the same data
must be the same to the eye and to a program:

* **pixels**, every page at 150 dpi in grey, each pixel compared with the nearest match
  in the other print's 3 × 3 neighbourhood: at most ``MAX_PIXELS`` pixels differing by more
  than half the range, and a mean difference under ``MAX_MEAN`` grey levels. Why: LibreOffice
  places glyphs on its own grid (its advances differ from the font's by up to ±0.07 pt a
  glyph, which the fast path bounds by writing no value wider than ``MAX_RUN_PT``) and a ligature
  is written as its characters spread over the ligature's advance; both move edges by less
  than a pixel (0.48 pt), invisible at print size. A value misplaced by a pixel or more,
  a missing or different character, a box ticked differently differ by dozens to hundreds
  of such pixels (a ☒ against a ☐: ~150).
* **text**: the same words on the same lines, line by line (a line: the words whose
  baseline is within 1 pt), order-insensitive within a line — LibreOffice writes a line
  font by font and the fast path writes values after the labels, so content order differs
  while what is printed where does not;
* **layout map**: the map of that very print (``layout.layout_of_print``) equal, boxes
  and zones within 0.1 pt;
* **read back**: the service's PDF (fast path) read by the parsers (``pdf-text``, no
  reconciliation) gives back the record of its data.

The fallbacks are tested too: a value that would wrap, a character the font lacks, the
setting off, a template edited by a département (a new version: a new probe, the edit
printed). Needs LibreOffice (skipped with the reason without ``soffice``).
"""

from __future__ import annotations

import copy
import json
import os
import random
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pymupdf
import pytest

from forms_service.catalogue import catalogue
from forms_service.catalogue.paths import get_path, set_path
from forms_service.render import fastpath, layout as layout_mod
from forms_service.render.pdf import get_pool, libreoffice_available
from forms_service.render.pipeline import render_docx, template_version
from forms_service.validation import validate

from tests.test_parse_roundtrip import differences, expected, one_record, parse, review_report

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = sorted((ROOT / "samples").glob("*.json"))
MAX_PIXELS = 60
MAX_MEAN = 0.15
RANDOM_DOCS = 6

pytestmark = pytest.mark.skipif(not libreoffice_available(),
                                reason="LibreOffice is not installed (no soffice)")


def form_of(path: Path) -> str:
    return max((fd.id for fd in catalogue.forms() if path.stem.startswith(fd.id)), key=len)


# ---------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def fp_app(tmp_path_factory):
    from forms_service.app import create_app

    pool = get_pool({"VAR_DIR": str(tmp_path_factory.getbasetemp() / "render-pool"), "PDF_POOL_SIZE": 2})
    pool.start()
    var = tmp_path_factory.mktemp("fastpath")
    app = create_app({"var_dir": var / "var", "database_url": None, "departement_logo": None,
                      "TESTING": True, "PDF_POOL": pool,
                      "PDF_FAST_PATH": True})   # off by default until re-proven (config.py)
    yield app
    app.extensions["forms_service.db"].dispose()


@pytest.fixture(scope="module")
def service(fp_app):
    from forms_service.render.service import get_service

    return get_service(fp_app)


# ---------------------------------------------------------------------- helpers

class Case:
    """One data set of one form: the fast PDF (or the fallback reason) and LibreOffice's."""

    def __init__(self, service, form_id: str, data: dict):
        self.fd = catalogue.get(form_id)
        self.settings = service.settings
        self.pool = service.pool
        report = validate(self.fd, data)
        assert report.model_valid, [p.as_dict() for p in report.problems]
        self.data, self.derived = data, dict(report.derived)
        self.dump = report.instance.model_dump(mode="python")
        self.version = template_version(self.fd, self.settings)
        self.layout = layout_mod.layout_for(self.fd, settings=self.settings, pool=self.pool,
                                            data_dump=self.dump)
        self.fast, self.reason = fastpath.fast_pdf(
            self.fd, self.dump, derived=self.derived, settings=self.settings,
            version=self.version, pool=self.pool, layout=self.layout)

    def libreoffice(self) -> bytes:
        docx = render_docx(self.fd, self.dump, settings=self.settings, document_id="TEST",
                           version=self.version, derived=self.derived, for_pdf=True)
        return self.pool.convert(docx)


def grey_pages(pdf: bytes) -> list[np.ndarray]:
    with fastpath._MUPDF, pymupdf.open("pdf", pdf) as doc:
        out = []
        for page in doc:
            pix = page.get_pixmap(dpi=150, colorspace=pymupdf.csGRAY)
            out.append(np.frombuffer(pix.samples, np.uint8).reshape(pix.h, pix.w).astype(np.int16))
        return out


def lines(pdf: bytes) -> tuple[list[dict[int, str]], list[list[str]]]:
    """Per page: baseline (1 pt, nearby baselines merged) → its characters, sorted; and
    the page's words, sorted."""
    pages, words = [], []
    for chars in fastpath._chars(pdf):
        by_line: dict[int, list[str]] = {}
        for ch in chars:
            if ch["c"].isspace():
                continue
            y = round(ch["y"])
            key = next((k for k in by_line if abs(k - y) <= 1), y)
            by_line.setdefault(key, []).append(ch["c"])
        pages.append({y: "".join(sorted(cs)) for y, cs in by_line.items()})
    with fastpath._MUPDF, pymupdf.open("pdf", pdf) as doc:
        words = [sorted(w[4] for w in page.get_text("words")) for page in doc]
    return pages, words


def near_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per pixel, how far each print is from the nearest match in the other's 3 × 3
    neighbourhood (the larger of both ways): a shift of under a pixel (0.48 pt) costs
    nothing, a value printed elsewhere or differently everything."""
    def one_way(x, y):
        pad = np.pad(y, 1, mode="edge")
        h, w = x.shape
        return np.min([np.abs(x - pad[dy:dy + h, dx:dx + w]) for dy in range(3) for dx in range(3)],
                      axis=0)
    return np.maximum(one_way(a, b), one_way(b, a))


def assert_same_print(fast: bytes, lo: bytes) -> None:
    a, b = grey_pages(fast), grey_pages(lo)
    assert len(a) == len(b)
    for i, (pa, pb) in enumerate(zip(a, b)):
        d = near_diff(pa, pb)
        if os.environ.get("FASTPATH_DIFF_DIR") and (d > 128).sum() > MAX_PIXELS:
            from PIL import Image   # the two prints in red and green, where they differ
            ys, xs = np.nonzero(d > 128)
            crop = (slice(max(0, ys.min() - 30), ys.max() + 30), slice(max(0, xs.min() - 30), xs.max() + 30))
            rgb = np.stack([pa[crop], pb[crop], np.minimum(pa, pb)[crop]], -1).astype(np.uint8)
            Image.fromarray(rgb).save(Path(os.environ["FASTPATH_DIFF_DIR"]) / f"page{i + 1}.png")
            cells: dict = {}
            for y, x in zip(ys // 30, xs // 30):
                cells[(int(y) * 30, int(x) * 30)] = cells.get((int(y) * 30, int(x) * 30), 0) + 1
            print("diff cells (px at 150 dpi)", sorted(cells.items()))
            y0, x0 = max(cells, key=cells.get)
            zoom = np.stack([pa, pb, np.minimum(pa, pb)], -1)[max(0, y0 - 20):y0 + 50, max(0, x0 - 150):x0 + 150]
            Image.fromarray(zoom.astype(np.uint8)).resize((zoom.shape[1] * 4, zoom.shape[0] * 4)).save(
                Path(os.environ["FASTPATH_DIFF_DIR"]) / f"page{i + 1}-zoom.png")
        assert (d > 128).sum() <= MAX_PIXELS and d.mean() <= MAX_MEAN, \
            (i + 1, int((d > 128).sum()), float(d.mean()))
    (la, wa), (lb, wb) = lines(fast), lines(lo)
    for i in range(len(la)):
        assert sorted(la[i].values()) == sorted(lb[i].values()), (i + 1, la[i], lb[i])
        assert wa[i] == wb[i], (i + 1, [w for w in wa[i] if w not in wb[i]],
                                [w for w in wb[i] if w not in wa[i]])


def text_paths(case: Case) -> list[str]:
    """The paths the template prints as text, from the skeleton render of the data."""
    _, marks = fastpath.skeleton(case.fd, case.dump, settings=case.settings,
                                 version=case.version, derived=case.derived)
    return [p for k, p, *_ in marks if k == "text"]


WORDS = ["Arras", "Lens", "rue", "des", "Tisserands", "Béthune", "Élodie", "MARTIN", "Noël",
         "effectif", "entretien", "l'atelier", "Saint-Omer", "Ça", "12", "bis", "œuvre", "Hénin",
         "Beaumont", "DUPONT", "Léa", "fiche", "2026", "n°", "AVENUE", "Wattrelos", "Lys"]


def random_data(service, form_id: str, base: dict, seed: int) -> tuple[dict, bool]:
    """``base`` with each value the probe placed left, emptied or replaced by 1–3 random
    words, and now and then a value where the probe placed none (LibreOffice's then); a
    value the form's schema refuses (a date, a code, a number) is put back. Returns the
    data and whether a value was put where the fast path must decline."""
    rng = random.Random(seed)
    data = copy.deepcopy(base)
    case = Case(service, form_id, data)
    probe = fastpath.probe_for(case.fd, settings=case.settings, pool=case.pool,
                               version=case.version, layout=case.layout)
    _, marks = fastpath.skeleton(case.fd, case.dump, settings=case.settings,
                                 version=case.version, derived=case.derived)
    declined = False
    for n, (kind, path, *_rest) in enumerate(marks):
        if kind != "text":
            continue
        old = get_path(data, path)
        roll = rng.random()
        if n not in probe.slots:
            if roll > 0.03 or declined:
                continue
            roll = 1.0
        elif roll < 0.3:
            continue
        # mostly names and short texts; longer ones (4–8 words, ~200 pt); and now and then
        # a text over several lines (9–40 words: wrapped by the fast path where the line
        # probe says LibreOffice breaks, or more lines than its zone holds: LibreOffice's)
        size = rng.random()
        words = (rng.randint(1, 3) if size < 0.55 else rng.randint(4, 8) if size < 0.8
                 else rng.randint(9, 40))
        new = None if roll < 0.45 else " ".join(rng.choice(WORDS) for _ in range(words))
        try:
            set_path(data, path, new)
        except (KeyError, IndexError, TypeError):
            continue
        if not validate(case.fd, data).model_valid:
            set_path(data, path, old)
        elif n not in probe.slots:
            declined = True
    return data, declined


# ---------------------------------------------------------------------- the proofs

@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.stem)
def test_every_sample_fast_or_fallback_prints_like_libreoffice(service, sample):
    """Every sample: the fast PDF equals LibreOffice's, or the fast path declined with a
    reason code (and the service then converts with LibreOffice)."""
    case = Case(service, form_of(sample), json.loads(sample.read_text(encoding="utf-8")))
    if case.fast is None:
        assert case.reason in {"skeleton", "not_probed", "does_not_fit"} or \
            case.reason.startswith("probe_"), case.reason
        return
    assert_same_print(case.fast, case.libreoffice())


def test_seeded_random_data_prints_like_libreoffice(service):
    """Random data from each sample (seeded): every fast PDF equals LibreOffice's; the fast
    path takes documents of several forms, and declines those with a value where it placed
    none."""
    taken: dict[str, int] = {}
    probed: set[str] = set()
    for s, sample in enumerate(SAMPLES):
        form_id = form_of(sample)
        base = prefilled(service, form_id, json.loads(sample.read_text(encoding="utf-8")))
        for k in range(RANDOM_DOCS if s % 2 == 0 else 2):
            data, declined = random_data(service, form_id, base, seed=1000 * s + k)
            case = Case(service, form_id, data)
            probe = fastpath.probe_for(case.fd, settings=case.settings, pool=case.pool,
                                       version=case.version, layout=case.layout)
            if probe.ok and probe.slots:
                probed.add(form_id)
            if declined:
                assert case.fast is None and case.reason in ("not_probed", "does_not_fit")
            if case.fast is None:
                continue
            taken[form_id] = taken.get(form_id, 0) + 1
            assert_same_print(case.fast, case.libreoffice())
    assert len(taken) >= 2 and set(taken) <= probed, (taken, probed)


def test_realistic_prefilled_fiches_take_the_fast_path(service):
    """The benchmark's realistic pre-filled fiches de liaison (the sample, another person,
    référent and territory each time: ``benchmarks/render.py: realistic``) take the fast
    path, and print as LibreOffice prints them."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_render", ROOT / "benchmarks" / "render.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    fd = catalogue.get("fiche-liaison")
    for data in bench.realistic(fd, sample_of("fiche-liaison"), 3, seed=29):
        case = Case(service, "fiche-liaison", data)
        assert case.fast is not None, case.reason
        assert_same_print(case.fast, case.libreoffice())


def prefilled(service, form_id: str, data: dict) -> dict:
    """``data`` without the values the fast path declines (what a référent writes later)."""
    data = copy.deepcopy(data)
    for _ in range(200):
        case = Case(service, form_id, data)
        _, paths = fastpath.declined(case.fd, case.dump, derived=case.derived,
                                     settings=case.settings, version=case.version,
                                     pool=case.pool, layout=case.layout)
        if not paths:
            return data
        set_path(data, paths[0], None)
    return data


def sample_of(form_id: str) -> dict:
    return json.loads((ROOT / "samples" / f"{form_id}.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("form_id", ["fiche-liaison", "annexe-2"])
def test_fast_print_has_the_same_layout_map_and_reads_back(fp_app, service, form_id):
    data = prefilled(service, form_id, sample_of(form_id))
    case = Case(service, form_id, data)
    assert case.fast is not None, case.reason
    lo = case.libreoffice()
    maps = [layout_mod.layout_of_print(case.fd, pdf, settings=case.settings, pool=case.pool,
                                       data_dump=case.dump) for pdf in (case.fast, lo)]
    assert [b["path"] for b in maps[0]["boxes"]] == [b["path"] for b in maps[1]["boxes"]]
    for kind in ("boxes", "zones"):
        for x, y in zip(maps[0][kind], maps[1][kind]):
            assert (x["page"], x["path"]) == (y["page"], y["path"])
            assert max(abs(u - v) for u, v in zip(x["bbox"], y["bbox"])) <= 0.1, (kind, x, y)
        assert len(maps[0][kind]) == len(maps[1][kind])
    # through the service (stamped), read back by the parsers from its text alone
    before = service.fast_stats.get("fast", 0)
    doc = service.render(form_id, data, fmt="pdf", actor="test-fastpath")
    assert service.fast_stats.get("fast", 0) == before + 1
    record = one_record(parse(fp_app, [(f"{form_id}.pdf", doc.content)], reconcile=False), "pdf-text")
    assert record["document_id"] == doc.document_id
    assert differences(record, expected(form_id, data, "pdf-text")) == {}
    assert not review_report(record)


# ---------------------------------------------------------------------- fallbacks

def test_a_value_with_more_lines_than_its_zone_goes_to_libreoffice(service):
    """A free text that wraps within its zone is written over its lines (the random data
    above); one line more than the zone holds (it would grow its row) goes to LibreOffice."""
    data = prefilled(service, "fiche-liaison", sample_of("fiche-liaison"))
    case = Case(service, "fiche-liaison", data)
    assert case.fast is not None, case.reason
    probe = fastpath.probe_for(case.fd, settings=case.settings, pool=case.pool,
                               version=case.version, layout=case.layout)
    _, marks = fastpath.skeleton(case.fd, case.dump, settings=case.settings,
                                 version=case.version, derived=case.derived)
    # the first free text over lines whose schema allows one line more than its zone holds
    for n, (kind, path, *_rest) in enumerate(marks):
        f = case.fd.field(path)
        slot = probe.slots.get(n)
        if slot is None or f is None or f.type != "text" or not slot.cap:
            continue
        per_line = int((slot.cap - slot.next_x) / fastpath._width(slot, "mot ")) - 1
        text = " ".join(["mot"] * (per_line * slot.lines + per_line // 2 + 2))
        if len(text) <= (f.max_length or 10 ** 6):
            break
    else:
        pytest.skip("no free text over lines")
    long = copy.deepcopy(data)
    set_path(long, path, text)
    assert Case(service, "fiche-liaison", long).reason == "does_not_fit"
    within = copy.deepcopy(data)
    set_path(within, path, " ".join(["mot"] * max(1, (per_line - 1) * min(slot.lines, 2))))
    fits = Case(service, "fiche-liaison", within)
    assert fits.fast is not None, fits.reason
    assert_same_print(fits.fast, fits.libreoffice())
    before = dict(service.fast_stats)
    doc = service.render("fiche-liaison", long, fmt="pdf", actor="test-fastpath")
    assert service.fast_stats.get("does_not_fit", 0) == before.get("does_not_fit", 0) + 1
    assert doc.content.startswith(b"%PDF")


def test_a_character_the_font_lacks_goes_to_libreoffice(service):
    data = prefilled(service, "annexe-2", sample_of("annexe-2"))
    case = Case(service, "annexe-2", data)
    assert case.fast is not None, case.reason
    path = next(p for p in text_paths(case) if isinstance(get_path(data, p), str) and get_path(data, p))
    odd = copy.deepcopy(data)
    set_path(odd, path, "漢")   # a Han character: in no font of the templates' runs
    assert Case(service, "annexe-2", odd).reason == "does_not_fit"


def test_the_setting_turns_the_fast_path_off(make_app, lo_pool):
    from forms_service.render.service import get_service

    app = make_app(PDF_POOL=lo_pool, PDF_FAST_PATH=False)
    svc = get_service(app)
    assert svc.settings.pdf_fast_path is False
    doc = svc.render("annexe-2", sample_of("annexe-2"), fmt="pdf", actor="test-fastpath")
    assert doc.content.startswith(b"%PDF") and svc.fast_stats == {}


def test_probes_are_kept_on_disk_per_template_version(make_app, lo_pool):
    """A probe is saved under the var cache by its template version: a new process (the
    memory cache emptied) reads it instead of printing four renders again, and prints the
    same PDF with it."""
    from forms_service.render import fastpath_store
    from forms_service.render.service import get_service

    svc = get_service(make_app(PDF_POOL=lo_pool))
    data = prefilled(svc, "annexe-2", sample_of("annexe-2"))
    built = Case(svc, "annexe-2", data)
    assert built.fast is not None, built.reason
    files = sorted(fastpath_store.directory(svc.settings).glob("annexe-2-*.probe"))
    assert [f.name[len("annexe-2-"):].split("-")[0] for f in files] == [built.version]
    fastpath.clear_cache()
    again = Case(svc, "annexe-2", data)
    probe = fastpath.probe_for(again.fd, settings=again.settings, pool=again.pool,
                               version=again.version, layout=again.layout)
    assert probe.source == "disk" and probe.ok
    assert again.fast is not None, again.reason
    assert all(np.array_equal(a, b) for a, b in zip(grey_pages(again.fast), grey_pages(built.fast)))
    # a file that cannot be read is built again, never a failure
    files[0].write_bytes(b"not a probe")
    fastpath.clear_cache()
    third = Case(svc, "annexe-2", data)
    assert third.fast is not None and fastpath.probe_for(
        third.fd, settings=third.settings, pool=third.pool, version=third.version,
        layout=third.layout).source == "built"


def test_a_template_edited_by_a_departement_is_probed_again_and_printed(make_app, lo_pool, tmp_path):
    """A département's DOCX edit: a new template version, hence a new probe; the fast PDF
    prints the edit (and equals LibreOffice's)."""
    from forms_service.render.service import get_service
    from forms_service.config import DEFAULT_TEMPLATES_DIR

    templates = tmp_path / "templates"
    shutil.copytree(DEFAULT_TEMPLATES_DIR, templates)
    src = templates / "docx" / "annexe-2.docx"
    with zipfile.ZipFile(src) as z:
        entries = {i.filename: z.read(i) for i in z.infolist()}
    xml = entries["word/document.xml"].decode()
    label = "Nom"
    assert f">{label}" in xml
    entries["word/document.xml"] = xml.replace(f">{label}", ">Zyxwv", 1).encode()
    with zipfile.ZipFile(src, "w", zipfile.ZIP_DEFLATED) as z:
        for name, content in entries.items():
            z.writestr(name, content)
    app = make_app(PDF_POOL=lo_pool, templates_dir=templates)
    svc = get_service(app)
    data = prefilled(svc, "annexe-2", sample_of("annexe-2"))
    case = Case(svc, "annexe-2", data)
    default_version = template_version(case.fd, get_service(make_app(PDF_POOL=lo_pool)).settings)
    assert case.version != default_version
    assert case.fast is not None, case.reason
    with fastpath._MUPDF, pymupdf.open("pdf", case.fast) as doc:
        assert "Zyxwv" in "".join(page.get_text() for page in doc)
    # the edited version has its own probe file beside the default version's
    from forms_service.render import fastpath_store
    versions = {f.name[len("annexe-2-"):].split("-")[0] for f in fastpath_store.directory(svc.settings).glob("annexe-2-*.probe")}
    assert case.version in versions
    assert_same_print(case.fast, case.libreoffice())

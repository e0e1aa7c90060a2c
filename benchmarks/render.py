"""Rendering: our DOCX renderer vs plain docxtpl vs the zip floor, warm vs cold PDF,
the service end to end, and a batch of PDFs — in one run, on the same data.

    .venv/bin/python benchmarks/render.py                 # the fiche de liaison sample
    .venv/bin/python benchmarks/render.py --form annexe-3 --batch 50 --json

Not part of the test suite. Measures, on ``samples/<form>.json`` (the fiche de liaison,
3 pages, by default):

* DOCX render p50 and documents/s, sequential, one thread:
  - ours: ``DocxRenderer.render`` with the compiled template cached (static zip entries
    compressed once), on a prepared context — and the service's whole DOCX step
    (``pipeline.render_docx``: context, header QR image, render);
  - plain docxtpl: ``docx.render_plain``, the template loaded, patched and compiled
    each time (``DocxTemplate(path).render(ctx); save()``);
  - the floor: read every entry of the same rendered DOCX and write them to a new zip
    (``zipfile``, deflate level 1 — the cheapest honest rewrite);
* DOCX → PDF p50: warm (the pool) vs cold (``pdf.cold_convert``: a new ``soffice``);
* end-to-end PDF p50: ``RenderService.render(fmt="pdf")`` (validation, rules, render,
  conversion, stamp, file, database row, audit event);
* a batch of N PDFs end to end (``RenderService.render_batch``), pool warm: docs/s.

Targets: ours within 3× the floor; warm ≥ 6× faster than cold; batch ≥ 12 docs/s on 2 cores.
The machine may be shared: the table shows the load and the CPU other processes used, and
the batch's CPU time per document (this process + the pool's processes), from which it
estimates the rate the batch would reach with the cores to itself.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from convert import _cpu_times, machine  # noqa: E402  (benchmarks/convert.py)


def p50_and_rate(fn, runs: int, warmup: int = 2) -> tuple[float, float]:
    """(median ms, documents per second over the whole loop)."""
    for _ in range(warmup):
        fn()
    times = []
    t_all = time.perf_counter()
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    wall = time.perf_counter() - t_all
    return statistics.median(times) * 1000, runs / wall


def proc_cpu_s(pids: list[int]) -> float:
    """CPU seconds (user + system) used so far by live processes ``pids``."""
    ticks = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def pool_pids(pool) -> list[int]:
    """Every process of the pool's instances (unoserver, oosplash, soffice.bin)."""
    from forms_service.render.pdf import group_members

    return [p for inst in pool.instances() if inst["pid"] for p in group_members(inst["pid"])]


def cpu_split(pool) -> tuple[float, float]:
    """CPU seconds of this process (all threads), and of the pool's processes."""
    t = os.times()
    return t.user + t.system, proc_cpu_s(pool_pids(pool))


def cpu_now(pool) -> float:
    return sum(cpu_split(pool))


def interleaved(fns: dict, runs: int, fewer: dict[str, int] | None = None,
                warmup: int = 1) -> dict[str, list[float]]:
    """Run each function in turn, ``runs`` rounds (``fewer[name]`` rounds for slow ones,
    spread over the whole loop); seconds per call, by name."""
    fewer = fewer or {}
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for i in range(runs):
        for name, fn in fns.items():
            n = fewer.get(name, runs)
            if n < runs and (i * n) // runs == ((i + 1) * n) // runs:
                continue
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def zip_floor(docx: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(docx)) as z:
        entries = [(info.filename, z.read(info)) for info in z.infolist()]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        for name, data in entries:
            z.writestr(name, data)
    return buf.getvalue()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--form", default="fiche-liaison")
    ap.add_argument("--data", type=Path, help="data JSON (default: samples/<form>.json)")
    ap.add_argument("--docx-runs", type=int, default=50)
    ap.add_argument("--plain-runs", type=int, default=15)
    ap.add_argument("--warm-runs", type=int, default=20)
    ap.add_argument("--cold-runs", type=int, default=5)
    ap.add_argument("--e2e-runs", type=int, default=20)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--size", type=int, default=0, help="pool instances (default: cores)")
    ap.add_argument("--json", action="store_true", help="print the raw figures as JSON too")
    args = ap.parse_args()

    from forms_service.app import create_app
    from forms_service.catalogue import catalogue
    from forms_service.render.context import build_context
    from forms_service.render.docx import render_plain
    from forms_service.render.pdf import cold_convert, pdf_page_count
    from forms_service.render.pipeline import render_docx, renderer, template_path, template_version
    from forms_service.render.service import get_service
    from forms_service.validation import validate

    load_start = os.getloadavg()
    cpu_start = _cpu_times()
    t_run = time.perf_counter()
    fd = catalogue.get(args.form)
    data_file = args.data or ROOT / "samples" / f"{fd.id}.json"
    data = json.loads(data_file.read_text(encoding="utf-8"))

    var = Path(tempfile.mkdtemp(prefix="bench-render-"))
    config = {"var_dir": var, "log_level": "WARNING", "PDF_POOL_AUTOSTART": False,
              "PDF_POOL_RECYCLE_AFTER": 0}
    if args.size:
        config["soffice_pool_size"] = args.size
    app = create_app(config)
    service = get_service(app)
    settings = service.settings
    info = machine()
    figures: dict = {"machine": info, "form": fd.id, "data": str(data_file.relative_to(ROOT))
                     if data_file.is_relative_to(ROOT) else str(data_file),
                     "pool_size": service.pool.size}

    # -- DOCX: same context for the three
    report = validate(fd, data)
    dump = report.instance.model_dump(mode="python")
    version = template_version(fd, settings)
    path = template_path(fd, settings)
    ctx = build_context(fd, dump, derived=report.derived,
                        document={"id": "01BENCH", "version": version, "qr": ""},
                        departement={"nom": settings.departement_name, "logo": ""})
    ours_docx = renderer().render(path, ctx)
    # Interleaved, so that the three see the same machine (it may be shared and busy).
    docx_fns = {
        "ours": lambda: renderer().render(path, ctx),
        "step": lambda: render_docx(fd, dump, settings=settings, document_id="01BENCH",
                                    version=version, derived=report.derived),
        "floor": lambda: zip_floor(ours_docx),
        "plain": lambda: render_plain(path, ctx),
    }
    runs = {"plain": args.plain_runs}
    times = interleaved(docx_fns, args.docx_runs, runs)
    for name, ts in times.items():
        figures[f"docx_{name}_p50_ms"] = statistics.median(ts) * 1000
        figures[f"docx_{name}_docs_s"] = len(ts) / sum(ts)
    figures["docx_bytes"] = len(ours_docx)

    # -- DOCX → PDF
    pool = service.pool
    t0 = time.perf_counter()
    pool.start()
    pool.wait_ready()
    figures["pool_start_s"] = time.perf_counter() - t0
    print_docx = render_docx(fd, dump, settings=settings, document_id="01BENCH",
                             version=version, derived=report.derived, for_pdf=True)
    for _ in range(3):
        pool.convert(print_docx)  # fonts, filters
    figures["pdf_pages"] = pdf_page_count(pool.convert(print_docx))
    cold_convert(print_docx)  # the OS file cache
    cpu_warm = 0.0

    def warm() -> None:
        nonlocal cpu_warm
        c0 = cpu_now(pool)
        pool.convert(print_docx)
        cpu_warm += cpu_now(pool) - c0

    times = interleaved({"warm": warm, "cold": lambda: cold_convert(print_docx)},
                        args.warm_runs, {"cold": args.cold_runs}, warmup=0)
    figures["warm_p50_ms"] = statistics.median(times["warm"]) * 1000
    figures["cold_p50_ms"] = statistics.median(times["cold"]) * 1000
    figures["warm_cpu_ms"] = cpu_warm / len(times["warm"]) * 1000

    # -- end to end (the first render of a template version also maps its blank layout)
    t0 = time.perf_counter()
    service.render(fd.id, data, fmt="pdf", actor="benchmark")
    figures["first_pdf_s"] = time.perf_counter() - t0
    figures["e2e_pdf_p50_ms"], _ = p50_and_rate(
        lambda: service.render(fd.id, data, fmt="pdf", actor="benchmark"), args.e2e_runs,
        warmup=1)
    ours0, pool0 = cpu_split(pool)
    t0 = time.perf_counter()
    docs = service.render_batch(fd.id, [data] * args.batch, fmt="pdf", actor="benchmark")
    wall = time.perf_counter() - t0
    ours1, pool1 = cpu_split(pool)
    # CPU per document (ours + LibreOffice): what the batch would reach on idle cores.
    figures["batch_cpu_ms_per_doc_service"] = (ours1 - ours0) / args.batch * 1000
    figures["batch_cpu_ms_per_doc_libreoffice"] = (pool1 - pool0) / args.batch * 1000
    figures["batch_cpu_ms_per_doc"] = (figures["batch_cpu_ms_per_doc_service"]
                                       + figures["batch_cpu_ms_per_doc_libreoffice"])
    figures["batch_idle_estimate_docs_s"] = info["cores"] / (figures["batch_cpu_ms_per_doc"] / 1000)
    assert len(docs) == args.batch and all(d.content.startswith(b"%PDF-") for d in docs)
    figures["batch_s"] = wall
    figures["batch_docs_s"] = args.batch / wall
    figures["pool_stats"] = dict(pool.stats)
    pool.close()

    busy = _cpu_times()
    wall = time.perf_counter() - t_run
    figures["load_avg_start_end"] = [round(load_start[0], 2), round(os.getloadavg()[0], 2)]
    if cpu_start and busy:
        total_busy = (busy - cpu_start) / os.sysconf("SC_CLK_TCK")
        ours = sum(os.times()[:4])
        figures["cpu_busy_other_pct"] = round(
            max(0.0, total_busy - ours) / (wall * info["cores"]) * 100, 1)

    floor = figures["docx_floor_p50_ms"]
    f = figures
    rows = [
        ("machine", f"{info['cpu']}, {info['cores']} cores, {info['memory']}"),
        ("software", f"{info['libreoffice']}; Python {info['python']}"),
        ("data", f"{f['data']} → {f['pdf_pages']} pages, DOCX {f['docx_bytes'] / 1024:.0f} KiB"),
        ("DOCX, ours (compiled, cached)", f"{f['docx_ours_p50_ms']:.1f} ms p50, "
         f"{f['docx_ours_docs_s']:.0f} docs/s  = {f['docx_ours_p50_ms'] / floor:.2f}× floor "
         "(target ≤ 3×)"),
        ("DOCX, service step (+ context, header QR)",
         f"{f['docx_step_p50_ms']:.1f} ms p50, {f['docx_step_docs_s']:.0f} docs/s"),
        ("DOCX, plain docxtpl (reload each time)",
         f"{f['docx_plain_p50_ms']:.1f} ms p50, {f['docx_plain_docs_s']:.1f} docs/s"),
        ("DOCX, floor (zip read + rewrite)",
         f"{floor:.1f} ms p50, {f['docx_floor_docs_s']:.0f} docs/s"),
        ("DOCX → PDF, cold soffice", f"{f['cold_p50_ms']:.0f} ms p50 (n={args.cold_runs})"),
        ("DOCX → PDF, warm pool", f"{f['warm_p50_ms']:.0f} ms p50 (n={args.warm_runs}), "
         f"{f['cold_p50_ms'] / f['warm_p50_ms']:.1f}× faster (target ≥ 6×); "
         f"CPU {f['warm_cpu_ms']:.0f} ms/conversion"),
        ("PDF end to end (service.render)", f"{f['e2e_pdf_p50_ms']:.0f} ms p50 "
         f"(n={args.e2e_runs}; first of a version {f['first_pdf_s']:.1f} s: blank layout)"),
        (f"batch of {args.batch} PDFs end to end", f"{f['batch_docs_s']:.1f} docs/s "
         f"({f['batch_s']:.1f} s, {f['pool_size']} LibreOffice) (target ≥ 12)"),
        ("  CPU per document", f"{f['batch_cpu_ms_per_doc_service']:.0f} ms service + "
         f"{f['batch_cpu_ms_per_doc_libreoffice']:.0f} ms LibreOffice/unoserver = "
         f"{f['batch_cpu_ms_per_doc']:.0f} ms → "
         f"{f['batch_idle_estimate_docs_s']:.1f} docs/s if the {info['cores']} cores were ours"),
        ("load average start / end", " / ".join(map(str, f["load_avg_start_end"]))),
    ]
    if "cpu_busy_other_pct" in f:
        rows.append(("CPU used by other processes", f"~{f['cpu_busy_other_pct']}% of the machine"))
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  result")
    print(f"{'-' * width}  {'-' * 50}")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    if args.json:
        print(json.dumps(figures, indent=2, ensure_ascii=False))
    app.extensions["forms_service.db"].dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())

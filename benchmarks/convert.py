"""DOCX → PDF: cold ``soffice --convert-to pdf`` vs the warm ConverterPool.

    .venv/bin/python benchmarks/convert.py                  # 3-page form made here
    .venv/bin/python benchmarks/convert.py --docx form.docx # or any DOCX
    .venv/bin/python benchmarks/convert.py --with-render    # batch also renders with docxtpl

Measures, on the same DOCX and in the same run:
  * cold: one new ``soffice --headless --convert-to pdf`` per document (fresh profile), p50;
  * warm: sequential conversions on a started pool, p50;
  * batch: N conversions submitted at once to a warm pool of ``--size`` instances, docs/s;
  * with ``--with-render``: the same batch where each document is first rendered from a
    docxtpl template (the step before conversion in the service), docs/s end to end.
Prints a table (and ``--json`` the raw figures). Targets (issue): warm ≥ 6× faster than
cold; 12 docs/s for a batch on 2 cores with the rest of the pipeline.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from forms_service.render.pdf import (  # noqa: E402
    ConverterPool, cold_convert, find_soffice, pdf_page_count,
)

FIELDS, CHECKBOXES, TABLE_ROWS = 110, 70, 10


def _a4(document) -> None:
    from docx.shared import Mm, Pt

    for section in document.sections:
        section.page_width, section.page_height = Mm(210), Mm(297)
        section.left_margin = section.right_margin = Mm(18)
        section.top_margin = section.bottom_margin = Mm(15)
    style = document.styles["Normal"]
    style.font.name = "DejaVu Sans"
    style.font.size = Pt(9)
    style.paragraph_format.space_after = Pt(2)
    style.paragraph_format.line_spacing = 1.0


def make_form(template: bool = False) -> bytes:
    """A 3-page A4 form: ~110 fields, 70 checkboxes, a 10-row table (like the real ones).

    ``template=True`` puts docxtpl/Jinja tags where the values go.
    """
    import docx

    document = docx.Document()
    _a4(document)
    document.add_heading("Contrat d'engagement réciproque — RSA", level=1)
    per_row = 2  # two "label: value" fields per line, as on the paper forms
    fields = document.add_table(rows=FIELDS // per_row, cols=per_row)
    for i in range(FIELDS):
        value = f"{{{{ f{i} }}}}" if template else f"Dupont-Lefèvre {i}"
        fields.rows[i // per_row].cells[i % per_row].text = f"Champ {i:03d} : {value}"
    document.add_page_break()
    for i in range(0, CHECKBOXES, 2):
        a = f"{{{{ c{i} }}}}" if template else ("☒" if i % 3 else "☐")
        b = f"{{{{ c{i + 1} }}}}" if template else ("☐" if i % 3 else "☒")
        document.add_paragraph(f"{a} Action d'insertion n° {i}    {b} Action n° {i + 1}")
    document.add_page_break()
    table = document.add_table(rows=TABLE_ROWS + 1, cols=4)
    table.style = "Table Grid"
    for c, title in enumerate(("Date", "Action", "Organisme", "Résultat")):
        table.rows[0].cells[c].text = title
    for r in range(1, TABLE_ROWS + 1):
        for c in range(4):
            table.rows[r].cells[c].text = (f"{{{{ t{r}_{c} }}}}" if template
                                           else f"L{r} C{c} éàç")
    buf = io.BytesIO()
    document.save(buf)
    return buf.getvalue()


def render(template: bytes, n: int) -> bytes:
    from docxtpl import DocxTemplate

    tpl = DocxTemplate(io.BytesIO(template))
    ctx = {f"f{i}": f"Valeur {n}-{i} — Dupont-Lefèvre" for i in range(FIELDS)}
    ctx.update({f"c{i}": "☒" if (i + n) % 3 else "☐" for i in range(CHECKBOXES)})
    ctx.update({f"t{r}_{c}": f"L{r} C{c} n{n}" for r in range(1, TABLE_ROWS + 1)
                for c in range(4)})
    tpl.render(ctx)
    out = io.BytesIO()
    tpl.save(out)
    return out.getvalue()


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    t0 = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - t0, result


def rss_mib(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def _cpu_times() -> int | None:
    """Busy clock ticks of the whole machine (all processes), from /proc/stat."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
    except OSError:
        return None
    idle = fields[3] + fields[4]
    return sum(fields[:8]) - idle


def _proc_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by one process."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[-1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine() -> dict:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(l.split(":", 1)[1].strip() for l in fh if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as fh:
            mem = f"{int(fh.readline().split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    soffice = find_soffice()
    lo = subprocess.run([soffice, "--version"], capture_output=True, text=True).stdout.strip() \
        if soffice else "absent"
    from importlib.metadata import version
    return {"cpu": cpu, "cores": len(os.sched_getaffinity(0)), "memory": mem,
            "os": platform.platform(), "python": platform.python_version(),
            "libreoffice": lo, "unoserver": version("unoserver")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docx", type=Path, help="DOCX to convert (default: a 3-page form made here)")
    ap.add_argument("--cold-runs", type=int, default=7)
    ap.add_argument("--warm-runs", type=int, default=30)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--size", type=int, default=2, help="pool instances")
    ap.add_argument("--threads", type=int, default=0, help="batch client threads (default 2×size)")
    ap.add_argument("--with-render", action="store_true",
                    help="also a batch where each document is rendered with docxtpl first")
    ap.add_argument("--work-dir", default="var/bench-lo")
    ap.add_argument("--json", action="store_true", help="print the raw figures as JSON too")
    args = ap.parse_args()
    threads = args.threads or 2 * args.size

    load_start = os.getloadavg()
    cpu_start = _cpu_times()
    t_run = time.perf_counter()
    data = args.docx.read_bytes() if args.docx else make_form()
    pages = pdf_page_count(cold_convert(data))  # also warms the OS file cache
    info = machine()
    figures: dict = {"machine": info, "document": str(args.docx or "generated 3-page form"),
                     "pages": pages, "bytes": len(data), "size": args.size, "threads": threads}

    children_cpu = sum(os.times()[2:4])
    cold = [timed(cold_convert, data)[0] for _ in range(args.cold_runs)]
    # CPU seconds per document: unlike wall time, hardly changed by other load
    figures["cold_cpu_ms"] = (sum(os.times()[2:4]) - children_cpu) / args.cold_runs * 1000
    figures["cold_p50_ms"] = statistics.median(cold) * 1000

    t_start = time.perf_counter()
    with ConverterPool(args.size, args.work_dir, recycle_after=None,
                       cold_fallback=False) as pool:
        pool.wait_ready()
        figures["pool_start_s"] = time.perf_counter() - t_start
        for _ in range(3):
            pool.convert(data)  # first conversions load the fonts, filters, etc.
        server_pids = [p for i in pool.instances() for p in [i["pid"], *i["libreoffice_pids"]]]
        cpu0 = sum(_proc_cpu_s(p) for p in server_pids) + time.process_time()
        warm = [timed(pool.convert, data)[0] for _ in range(args.warm_runs)]
        figures["warm_cpu_ms"] = (sum(_proc_cpu_s(p) for p in server_pids)
                                  + time.process_time() - cpu0) / args.warm_runs * 1000
        figures["warm_p50_ms"] = statistics.median(warm) * 1000
        lo_pids = [p for i in pool.instances() for p in i["libreoffice_pids"]]
        rss_before = rss_mib(lo_pids)

        with ThreadPoolExecutor(threads) as ex:
            wall, pdfs = timed(lambda: list(ex.map(pool.convert, [data] * args.batch)))
        assert all(p.startswith(b"%PDF-") for p in pdfs)
        figures["batch_docs_per_s"] = args.batch / wall
        figures["batch_s"] = wall

        if args.with_render:
            template = make_form(template=True)
            cpu0 = time.process_time()
            render_times = [timed(render, template, n)[0] for n in range(10)]
            figures["render_p50_ms"] = statistics.median(render_times) * 1000
            figures["render_cpu_ms"] = (time.process_time() - cpu0) / 10 * 1000

            def pipeline(n: int) -> bytes:
                return pool.convert(render(template, n))

            with ThreadPoolExecutor(threads) as ex:
                wall, pdfs = timed(lambda: list(ex.map(pipeline, range(args.batch))))
            assert all(p.startswith(b"%PDF-") for p in pdfs)
            figures["pipeline_docs_per_s"] = args.batch / wall
        figures["lo_rss_mib_before_batches"] = rss_before
        figures["lo_rss_mib_after_batches"] = rss_mib(lo_pids)
        figures["stats"] = dict(pool.stats)

    # What else ran meanwhile: the machine is shared, figures are only comparable within a run.
    busy = _cpu_times()
    wall = time.perf_counter() - t_run
    figures["load_avg_start_end"] = [round(load_start[0], 2), round(os.getloadavg()[0], 2)]
    figures["cpu_busy_other_pct"] = None
    if cpu_start and busy:
        total_busy = (busy - cpu_start) / os.sysconf("SC_CLK_TCK")
        # this process and its reaped children: cold soffice, and the pool's unoserver
        # processes, which reap LibreOffice (the pool is closed by now)
        ours = sum(os.times()[:4])
        figures["cpu_busy_other_pct"] = round(
            max(0.0, total_busy - ours) / (wall * info["cores"]) * 100, 1)
    speedup = figures["cold_p50_ms"] / figures["warm_p50_ms"]
    figures["speedup"] = speedup
    rows = [
        ("machine", f"{info['cpu']}, {info['cores']} cores, {info['memory']}"),
        ("software", f"{info['libreoffice']}; unoserver {info['unoserver']}; "
                     f"Python {info['python']}"),
        ("document", f"{figures['document']}: {pages} pages, {len(data) / 1024:.0f} KiB"),
        ("cold soffice --convert-to pdf, p50",
         f"{figures['cold_p50_ms']:.0f} ms  (n={args.cold_runs})"),
        ("pool start (to ready)", f"{figures['pool_start_s']:.1f} s  ({args.size} instances)"),
        ("warm pool, p50", f"{figures['warm_p50_ms']:.0f} ms  (n={args.warm_runs})"),
        ("warm speed-up", f"{speedup:.1f}×  (target ≥ 6×)"),
        ("CPU per document: cold / warm",
         f"{figures['cold_cpu_ms']:.0f} / {figures['warm_cpu_ms']:.0f} ms  "
         f"(→ {info['cores'] * 1000 / figures['warm_cpu_ms']:.1f} docs/s on "
         f"{info['cores']} idle cores)"),
        (f"batch of {args.batch}, {args.size} instances",
         f"{figures['batch_docs_per_s']:.1f} docs/s  ({threads} client threads)"),
    ]
    if args.with_render:
        capacity = info["cores"] * 1000 / (figures["warm_cpu_ms"] + figures["render_cpu_ms"])
        rows += [("docxtpl render, p50 (CPU)",
                  f"{figures['render_p50_ms']:.0f} ms ({figures['render_cpu_ms']:.0f} ms)  "
                  f"(render + convert → {capacity:.1f} docs/s on {info['cores']} idle cores)"),
                 (f"batch of {args.batch}, render + convert",
                  f"{figures['pipeline_docs_per_s']:.1f} docs/s  (target 12 docs/s on 2 cores)")]
    rows.append(("load average at start / end", " / ".join(map(str, figures["load_avg_start_end"]))))
    if figures["cpu_busy_other_pct"] is not None:
        rows.append(("CPU used by other processes", f"~{figures['cpu_busy_other_pct']}% "
                     "of the machine during the run (shared machine: compare within a run)"))
    rows.append(("LibreOffice RSS before → after batches",
                 f"{figures['lo_rss_mib_before_batches']:.0f} → "
                 f"{figures['lo_rss_mib_after_batches']:.0f} MiB"))
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  result")
    print(f"{'-' * width}  {'-' * 40}")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    if args.json:
        print(json.dumps(figures, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

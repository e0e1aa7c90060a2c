"""``python -m forms_service.render.layout_cli [FORM…] [--time N]``: print layout maps, or time
their build (needs LibreOffice)."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from ..catalogue import catalogue
from ..config import Settings
from .layout import build_layout, build_layout_and_pdf
from .pool import ConverterPool
from .templates_pdf import template_forms


def main(argv: list[str] | None = None) -> int:
    """Print a map, or time its build."""
    parser = argparse.ArgumentParser(prog="python -m forms_service.render.layout_cli",
                                     description="Layout maps of the forms (needs LibreOffice).")
    parser.add_argument("forms", nargs="*", help="form ids (default: every form with a template)")
    parser.add_argument("--time", type=int, default=0, metavar="N",
                        help="build each map N times and print the median of each step")
    parser.add_argument("--data", help="a JSON file of data (its list rows shape the map)")
    parser.add_argument("--pool-size", type=int, default=2)
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    forms = [catalogue.get(f) for f in args.forms] or template_forms(settings)
    data = json.loads(open(args.data, encoding="utf-8").read()) if args.data else None
    with ConverterPool(size=args.pool_size, work_dir=Path(settings.var_dir) / "lo-layout",
                       cold_fallback=False) as pool:
        pool.start()
        for fd in forms:
            if not args.time:
                print(json.dumps(build_layout(fd, settings=settings, pool=pool, data_dump=data),
                                 ensure_ascii=False, indent=1))
                continue
            runs = []
            for _ in range(args.time):
                steps: dict = {}
                t0 = time.perf_counter()
                c0 = time.process_time()
                layout, _ = build_layout_and_pdf(fd, settings=settings, pool=pool, data_dump=data,
                                                 timings=steps)
                steps["total_ms"] = (time.perf_counter() - t0) * 1000
                steps["cpu_ms"] = (time.process_time() - c0) * 1000
                runs.append(steps)
            med = {k: round(statistics.median(r[k] for r in runs)) for k in runs[0]}
            print(f"{fd.id}: {len(layout['pages'])} p, {len(layout['boxes'])} boxes, "
                  f"{len(layout['zones'])} zones; median of {len(runs)}: " +
                  ", ".join(f"{k} {v}" for k, v in med.items()), file=sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The fast path's stamp in the document's one save, against writing the fast PDF and then
stamping it (opened and saved again), in the same process on the same data.

    PYTHONPATH=. OMP_THREAD_LIMIT=1 .venv/bin/python -m benchmarks.fast_stamp [--runs 30] [--sample FILE]

Prints the median and mean CPU milliseconds of each way (alternated, after 3 warm-ups). The
first render builds the fast path's probes with LibreOffice (in a throw-away var folder).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--sample", default=str(ROOT / "samples" / "fiche-liaison-demande-appui.json"))
    args = ap.parse_args(argv)

    from forms_service.app import create_app
    from forms_service.catalogue import catalogue
    from forms_service.render import fastpath
    from forms_service.render.pipeline import template_version
    from forms_service.render.service import get_service
    from forms_service.render.stamp import stamp_pdf
    from forms_service.validation import validate

    with tempfile.TemporaryDirectory() as var:
        app = create_app({"var_dir": Path(var), "TESTING": True, "departement_logo": None})
        with app.app_context():
            svc = get_service(app)
            data = json.loads(Path(args.sample).read_text(encoding="utf-8"))
            svc.render("fiche-liaison", data, fmt="pdf", actor="bench")   # the probes
            fd = catalogue.get("fiche-liaison")
            report = validate(fd, data)
            dump, derived = report.instance.model_dump(mode="python"), dict(report.derived)
            version = template_version(fd, svc.settings)
            layout = svc._blank_layout_of(fd, version, compute=True, required=False)
            doc_id = "01M8RWJQQ0S3XX0TW7PM8FB9WP"

            def fast(document_id=None) -> bytes:
                pdf, reason = fastpath.fast_pdf(fd, dump, derived=derived, settings=svc.settings,
                                                version=version, pool=svc.pool, layout=layout,
                                                document_id=document_id)
                if pdf is None:
                    raise SystemExit(f"the sample does not take the fast path: {reason}")
                return pdf

            ways = {"one save (stamped while written)": lambda: fast(doc_id),
                    "two saves (written, then stamped)": lambda: stamp_pdf(fast(), fd.id, version, doc_id)}
            for _ in range(3):
                for fn in ways.values():
                    fn()
            cpu = {name: [] for name in ways}
            for i in range(args.runs):
                for name in (list(ways) if i % 2 else list(reversed(ways))):
                    t = time.process_time()
                    ways[name]()
                    cpu[name].append((time.process_time() - t) * 1000)
        app.close()
    for name, ms in cpu.items():
        print(f"{name}: median {statistics.median(ms):.1f} ms CPU, mean {statistics.mean(ms):.1f} ms "
              f"({len(ms)} runs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

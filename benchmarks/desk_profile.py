"""Profile a desk worker in-process (cProfile) on the first N files of a scan bench.

    PYTHONPATH=$PWD OMP_THREAD_LIMIT=1 .venv/bin/python -m benchmarks.desk_profile BENCH_DIR N WORK_DIR

No issued documents (records are read by content): what it shows is where a worker's
job time goes besides the reader (hashing, claiming, writing), the reader's own work
being in the sandbox's processes (not profiled). Prints the job time next to the same
sandbox reading the same files, then the profile (cumulative).
"""

import cProfile, json, os, pstats, sys, time, resource
from pathlib import Path
os.environ.setdefault("OMP_THREAD_LIMIT", "1")
def main():
    bench = Path(sys.argv[1]); n = int(sys.argv[2]); work = Path(sys.argv[3])
    index = json.loads((bench / "index.json").read_text())
    files = [f for f in index["files"] if (bench/f).stat().st_size < 40e6][:n]
    from forms_service.app import create_app
    from forms_service import db
    from forms_service.desk import batches, reading
    from forms_service.desk.storage import Upload
    from forms_service.principal import Principal
    app = create_app({"var_dir": work, "database_url": None, "departement_logo": None, "TESTING": True,
                      "PDF_POOL_AUTOSTART": False})
    settings = app.extensions["forms_service.settings"]
    class Q:
        jobs = []
        def enqueue_read(self, b, f): self.jobs.append((b, f))
    q = Q()
    admin = Principal(actor="bench", roles=frozenset({"admin"}), territoire=None)
    from forms_service.directory.file import import_directory, parse_directory
    with app.app_context(), db.session() as s:
        import_directory(s, parse_directory((Path(__file__).resolve().parent.parent / "samples" / "demo" / "annuaire.yaml").read_text("utf-8")), "bench")
    with app.app_context():
        batch = batches.receive(settings, admin, [Upload(f, bench / f) for f in files], "arrageois",
                                source="api", queue=q)
    pages = batch.pages_total
    w = reading.Worker(settings)
    w.sandbox().parse([(files[0], (bench / files[0]).read_bytes())])   # warm
    t0 = time.perf_counter(); c0 = time.process_time()
    prof = cProfile.Profile()
    prof.enable()
    for b, fids in q.jobs:
        w.read_files(b, fids)
    prof.disable()
    wall = time.perf_counter() - t0; cpu = time.process_time() - c0
    print(f"desk worker: {pages} pages, {len(q.jobs)} jobs, wall {wall:.1f}s, main-process CPU {cpu:.1f}s ({1000*cpu/pages:.0f} ms/page)")
    t0 = time.perf_counter()
    w.sandbox().parse([(f, (bench / f).read_bytes()) for f in files])
    print(f"reader alone (same sandbox): {time.perf_counter()-t0:.1f}s")
    w.close()
    pstats.Stats(prof).sort_stats("cumulative").print_stats(45)

if __name__ == '__main__':
    main()

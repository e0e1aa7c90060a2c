"""Bench of the SLAI desk: a mixed batch of scans through HTTP, end to end, next to the
reader's own time on the same files in the same run.

    .venv/bin/python -m benchmarks.desk --out /tmp/desk300 --pages 300 --seed 7   # generate, then run
    .venv/bin/python -m benchmarks.desk --dir /tmp/desk300                         # a bench made before
    ... --prepared /tmp/desk-var     # the issued documents' var kept there, copied on the next runs
    ... --py-spy /tmp/desk.spy       # then: python -m benchmarks.desk_spy /tmp/desk.spy --cpu S

Not part of the test suite. What it does:

1. (``--out``) generates ``--pages`` scan pages with ``benchmarks.scanbench.generate``
   (every form, PDF/TIFF/JPEG/PNG, shuffled, turned, blank pages);
2. issues every document of the truth files into a fresh var directory (SQLite), as
   ``benchmarks.parse`` does, and loads the demo directory (the territories);
3. **end to end**: starts ``forms-service serve`` (which starts its queue worker, Huey on
   SQLite) on a free port, waits for the worker's heartbeat (its readers are started
   before it beats), ``POST /api/v1/batches`` with every file at once, polls
   ``GET /api/v1/batches/<id>`` until ``done``: pages per second from the request to the
   last page stored (the upload included: each file is read as soon as it is stored,
   during the upload); the CPU of the server and worker processes is sampled (both cores
   used?), and the batch's timeline read from the database (``timeline``);
4. **the reader alone**: the same files read by :class:`parsers.sandbox.Sandbox` with as
   many worker processes as cores (what the worker uses), upload by upload, nothing stored;
5. prints both, and the overhead of the queue, storage and database: end-to-end time
   over the reader's time, minus one (the issue's target: at most 20 %).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_THREAD_LIMIT", "1")

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def multipart_body(bench_dir: Path, files: list[str], territoire: str) -> tuple[bytes, str]:
    """The batch's ``POST`` body (multipart ``files`` and ``territoire``) and its content
    type, encoded once before the clock starts, as ``requests`` would encode it: a client
    elsewhere has its files ready; building 238 MB of multipart in the bench process is
    not the service's work (it took a core for ~0.7 s at the clock's start)."""
    from urllib3.filepost import encode_multipart_formdata

    # the territory first, as requests puts its form fields before its files: the desk
    # creates the batch, and reads each file as it is stored, once it knows the territory
    fields = [("territoire", territoire)] + [("files", (n, (bench_dir / n).read_bytes())) for n in files]
    return encode_multipart_formdata(fields)


def prepare(bench_dir: Path, work: Path, pool) -> tuple[list[str], list[dict]]:
    from benchmarks.parse import issue_documents
    from forms_service import db
    from forms_service.app import create_app
    from forms_service.directory.file import import_directory, parse_directory

    files, truths = _truths(bench_dir)
    app = create_app({"var_dir": work / "var", "database_url": None, "departement_logo": None,
                      "TESTING": True, "PDF_POOL": pool})
    issued = issue_documents(app, bench_dir, truths, pool)
    with app.app_context(), db.session() as s:
        demo = ROOT / "samples" / "demo" / "annuaire.yaml"
        import_directory(s, parse_directory(demo.read_text("utf-8")), "bench")
    log(f"desk bench: {issued['documents']} documents issued in {issued['seconds']} s")
    app.close()
    return files, truths


def _truths(bench_dir: Path) -> tuple[list[str], list[dict]]:
    index = json.loads((bench_dir / "index.json").read_text(encoding="utf-8"))
    files = index["files"]
    return files, [json.loads((bench_dir / f"{n}.truth.json").read_text(encoding="utf-8")) for n in files]


def end_to_end(bench_dir: Path, work: Path, files: list[str], territoire: str,
               spy: Path | None = None) -> dict:
    import requests

    port = free_port()
    env = {**os.environ, "FORMS_SERVICE_VAR_DIR": str(work / "var"), "OMP_THREAD_LIMIT": "1",
           "PYTHONPATH": str(ROOT)}
    for k in ("DATABASE_URL", "QUEUE_URL", "FORMS_SERVICE_STORAGE_DIR"):
        env.pop(k, None)
    logf = open(work / "serve.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "forms_service.cli", "serve", "--port", str(port)],
                            env=env, cwd=str(ROOT), stdout=logf, stderr=logf)
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        for _ in range(600):
            try:
                if requests.get(f"{base}/health", timeout=10).status_code in (200, 503):
                    break
            except requests.RequestException:
                time.sleep(0.5)
        _wait_for_consumer(work, psutil.Process(proc.pid))   # the worker beside it started, its readers too
        body, content_type = multipart_body(bench_dir, files, territoire)
        server = psutil.Process(proc.pid)
        spying = _spy(proc.pid, spy) if spy else None
        cpu0, roles0 = _tree_cpu(server), _cpu_by_role(server)
        psutil.cpu_percent(percpu=True)   # per-core busy time from here on
        t0, wall0 = time.perf_counter(), time.time()
        r = requests.post(f"{base}/batches", data=body, headers={"Content-Type": content_type}, timeout=600)
        r.raise_for_status()
        accepted = time.perf_counter() - t0
        batch = r.json()["id"]
        # polled as a client would: one connection kept, the last ETag sent back (an
        # unchanged batch answers 304, no body)
        poll, etag, polls = requests.Session(), None, 0
        while True:
            got = poll.get(f"{base}/batches/{batch}", timeout=30,
                           headers={"If-None-Match": etag} if etag else {})
            polls += 1
            if got.status_code != 304:
                got.raise_for_status()
                view, etag = got.json(), got.headers.get("ETag")
            if view["status"] == "done":
                break
            time.sleep(0.5)
        poll.close()
        seconds = time.perf_counter() - t0
        cpu = _tree_cpu(server) - cpu0
        roles = {k: round(v - roles0.get(k, 0.0), 1) for k, v in _cpu_by_role(server).items()}
        per_core = psutil.cpu_percent(percpu=True)   # the whole machine's, each core (others' load too)
        pages = view["progress"]["pages_total"]
        if spying is not None:
            _stop_spy(spying)
        return {"pages": pages, "seconds": round(seconds, 2), "pages_per_s": round(pages / seconds, 2),
                "accepted_after_s": round(accepted, 2), "timeline": _timeline(work, batch, wall0),
                "summary": view["summary"],
                "cpu_seconds_service": round(cpu, 1), "cpu_seconds_by_process": roles,
                "polls": polls, "cores_busy": round(cpu / seconds, 2),
                "machine_cpu_percent_per_core": per_core}
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        logf.close()


def _timeline(work: Path, batch: int, wall0: float) -> dict:
    """When, from the request's start (s), the batch's first file was committed, its
    upload ended, its first and last files were read, and it was done (the database's
    own timestamps): how much reading overlapped the upload, and the tail."""
    import sqlite3
    from datetime import datetime, timezone

    def at(value) -> float | None:
        if value is None:
            return None
        t = datetime.fromisoformat(str(value))
        t = t if t.tzinfo else t.replace(tzinfo=timezone.utc)
        return round(t.timestamp() - wall0, 2)

    con = sqlite3.connect(work / "var" / "forms.db")
    try:
        created, received, finished = con.execute(
            "SELECT created_at, received_at, finished_at FROM batch WHERE id = ?", (batch,)).fetchone()
        reads = sorted(at(r) for (r,) in con.execute(
            "SELECT read_at FROM batch_file WHERE batch_id = ? AND read_at IS NOT NULL", (batch,)))
        read_before = con.execute("SELECT count(*) FROM batch_file WHERE batch_id = ? AND read_at <= ?",
                                  (batch, received)).fetchone()[0]
    finally:
        con.close()
    return {"first_file_committed": at(created), "upload_ended": at(received), "done": at(finished),
            "first_read": reads[0] if reads else None, "last_read": reads[-1] if reads else None,
            "files_read_before_upload_ended": read_before, "files_read": len(reads)}


def _wait_for_consumer(work: Path, server: psutil.Process, timeout: float = 300) -> None:
    """Until the worker ``serve`` started beats in the queue, its reader processes are up
    and the service is idle: the end-to-end half measures a started service, as the
    reader's half measures started readers."""
    from forms_service.config import Settings
    from forms_service.desk.queue import DeskQueue

    queue = DeskQueue(Settings(var_dir=work / "var"))
    end = time.monotonic() + timeout
    while not queue.consumer_alive() and time.monotonic() < end:
        time.sleep(0.5)
    cores = os.cpu_count() or 1
    while time.monotonic() < end:   # the forkserver and one reader per core
        readers = [p for p in server.children(recursive=True) if "forkserver" in " ".join(p.cmdline())]
        if len(readers) > cores:
            break
        time.sleep(0.5)
    while time.monotonic() < end:   # their imports done
        before = _tree_cpu(server)
        time.sleep(1)
        if _tree_cpu(server) - before < 0.2:
            break


def _spy(pid: int, out: Path) -> subprocess.Popen:
    """``py-spy record`` of the server and its children (worker, readers), raw stacks of
    the running threads only (CPU, not waits): ``benchmarks.desk_spy`` sums them up."""
    spy = subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(pid),
                            "--subprocesses", "--nonblocking", "--rate", str(SPY_RATE), "--format", "raw",
                            "--output", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(2)   # attached to every process
    return spy


def _stop_spy(spy: subprocess.Popen) -> None:
    import signal
    spy.send_signal(signal.SIGINT)
    try:
        spy.wait(60)
    except subprocess.TimeoutExpired:
        spy.kill()


SPY_RATE = 50


def _cpu_by_role(server: psutil.Process) -> dict[str, float]:
    """CPU seconds so far of the web server's process itself (upload, polls), of the
    queue worker's (claims, writes) and of the reader processes (the rest of the tree)."""
    out = {"serve": 0.0, "worker": 0.0, "readers": 0.0}
    for p in [server] + server.children(recursive=True):
        try:
            t = p.cpu_times()
            cmd = " ".join(p.cmdline())
        except psutil.Error:
            continue
        role = ("serve" if p.pid == server.pid else
                "worker" if "forms_service.cli worker" in cmd else "readers")
        out[role] += t.user + t.system
    return out


def _tree_cpu(proc: psutil.Process) -> float:
    total = 0.0
    for p in [proc] + proc.children(recursive=True):
        try:
            t = p.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.Error:
            pass
    return total


def reader_alone(bench_dir: Path, work: Path, files: list[str], truths: list[dict]) -> dict:
    from dataclasses import replace

    from forms_service.config import Settings
    from forms_service.desk.reading import reading_limits
    from parsers.sandbox import Sandbox

    settings = Settings(var_dir=work / "var")
    box = Sandbox(settings, workers=max(1, os.cpu_count() or 1))
    data = [(n, (bench_dir / n).read_bytes()) for n in files]
    pages = sum(len(t["pages"]) for t in truths)
    # the limits the desk's worker gives the reader (its size limit per page, not per file,
    # and the page digests): with the reader's default limits, the bench's two 72 MB TIFFs
    # (a scanner's batch in one file) were refused unread, « taille_maximale », and this
    # half read 266 pages where the desk read 300
    limits = replace(reading_limits([len(t["pages"]) for t in truths]), page_digests=True)
    try:
        box.parse(data[1:2], limits)   # the workers started
        me = psutil.Process()
        cpu0 = _tree_cpu(me)
        psutil.cpu_percent(percpu=True)
        t0 = time.perf_counter()
        out = box.parse(data, limits)
        seconds = time.perf_counter() - t0
        cpu = _tree_cpu(me) - cpu0
        per_core = psutil.cpu_percent(percpu=True)
    finally:
        box.close()
    errors = [{"file": i.get("file"), "rule": i["error"].get("rule")} for i in out if "error" in i]
    return {"pages": pages, "seconds": round(seconds, 2), "pages_per_s": round(pages / seconds, 2),
            "ms_per_page": round(1000 * seconds / pages, 1), "cpu_seconds": round(cpu, 1), "errors": errors,
            "cores_busy": round(cpu / seconds, 2), "machine_cpu_percent_per_core": per_core}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.desk", description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--dir", type=Path)
    src.add_argument("--out", type=Path)
    ap.add_argument("--pages", type=int, default=300)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--territoire", default="arrageois")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--prepared", type=Path, help="a var directory with the bench's documents issued: "
                    "copied and used when it exists, else made and kept there (saves the issuing)")
    ap.add_argument("--py-spy", dest="spy", type=Path, help="record the service with py-spy "
                    "(raw stacks; `python -m benchmarks.desk_spy FILE` prints where the CPU went)")
    ap.add_argument("--no-reader", action="store_true", help="end to end only")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of both halves, alternated (the "
                    "median overhead is the figure: the machine's own drift moves one round by ±6 %%)")
    args = ap.parse_args(argv)

    from forms_service.render.pdf import ConverterPool

    work = Path(tempfile.mkdtemp(prefix="desk-bench-"))
    pool = ConverterPool(size=1, work_dir=work / "lo")
    pool.start()
    try:
        bench_dir = args.dir or args.out
        if args.out:
            from benchmarks.scanbench import generate
            log(f"desk bench: generating {args.pages} pages (seed {args.seed}) in {args.out}")
            generate.run(args.out, args.pages, args.seed, None, pool=pool)
        if args.prepared and (args.prepared / "var").is_dir():
            shutil.copytree(args.prepared / "var", work / "var")
            files, truths = _truths(bench_dir)
        else:
            files, truths = prepare(bench_dir, work, pool)
            if args.prepared:
                shutil.copytree(work / "var", args.prepared / "var")
    finally:
        pool.close()
    rounds = []
    load0 = os.getloadavg()
    for k in range(args.rounds):   # the halves alternated, each round on a fresh copy of the var
        here = work / f"round-{k + 1}"
        shutil.copytree(work / "var", here / "var")
        e2e = end_to_end(bench_dir, here, files, args.territoire, spy=args.spy if k == 0 else None)
        if args.no_reader:
            print(json.dumps(e2e, indent=1))
            rounds.append({"end_to_end": e2e})
            continue
        alone = reader_alone(bench_dir, here, files, truths)
        rounds.append({"end_to_end": e2e, "reader_alone": alone,
                       "overhead": round(e2e["seconds"] / alone["seconds"] - 1, 3)})
        _print_round(k + 1, rounds[-1])
    load1 = os.getloadavg()
    if args.no_reader:
        return 0
    overheads = sorted(r["overhead"] for r in rounds)
    median = statistics.median(overheads)
    out = {"rounds": rounds, "overhead_median": round(median, 3), "overheads": overheads,
           "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                       "python": platform.python_version(), "load_before": load0, "load_after": load1},
           "command": "python -m benchmarks.desk " + " ".join(argv if argv is not None else sys.argv[1:])}
    # the first round's figures at the top level, as before rounds existed
    out.update({k: rounds[0][k] for k in ("end_to_end", "reader_alone", "overhead")})
    print(f"overhead of queue + storage + database, {len(rounds)} round(s): "
          f"{', '.join(f'{100 * o:.1f} %' for o in (r['overhead'] for r in rounds))}; "
          f"median {100 * median:.1f} % (target ≤ 20 %); load average {load0[0]:.1f} → {load1[0]:.1f}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2), encoding="utf-8")
    return 0


def _print_round(k: int, r: dict) -> None:
    e2e, alone = r["end_to_end"], r["reader_alone"]
    print(f"round {k}: end to end (HTTP, queue, storage, database): {e2e['pages']} pages in {e2e['seconds']} s = "
          f"{e2e['pages_per_s']} pages/s; accepted after {e2e['accepted_after_s']} s; "
          f"service CPU {e2e['cpu_seconds_service']} s ({e2e['cores_busy']} cores busy on average; "
          f"by process {json.dumps(e2e['cpu_seconds_by_process'])})")
    print(f"  machine CPU per core during it: {e2e['machine_cpu_percent_per_core']} %")
    print(f"  timeline (s from the request): {json.dumps(e2e['timeline'])}")
    print(f"  reader alone (sandbox, {os.cpu_count()} workers): {alone['seconds']} s = {alone['pages_per_s']} pages/s "
          f"({alone['ms_per_page']} ms per page); CPU {alone['cpu_seconds']} s ({alone['cores_busy']} cores busy); "
          f"machine CPU per core {alone['machine_cpu_percent_per_core']} %; files in error {len(alone['errors'])}")
    print(f"  overhead of queue + storage + database: {100 * r['overhead']:.1f} % (target ≤ 20 %)")
    print(f"  summary: {json.dumps(e2e['summary'])}", flush=True)


if __name__ == "__main__":
    sys.exit(main())

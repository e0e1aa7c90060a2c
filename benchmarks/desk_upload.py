"""What receiving a batch costs the web server: the desk bench's files in one
``POST /api/v1/batches`` to a ``forms-service serve --no-worker`` (nothing read), the
server process's CPU for the upload, then for polls of the batch with its ETag sent back.

    PYTHONPATH=$PWD .venv/bin/python -m benchmarks.desk_upload --dir /tmp/i5-desk300 --prepared /tmp/i5-prep [--root TREE] [--py-spy FILE]

``--root`` serves another source tree (e.g. an export of main) with the same bench and
the same command: before/after on one machine, in one session. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
POLLS = 50

DIRECTORY = """
from pathlib import Path
from forms_service import db
from forms_service.app import create_app
from forms_service.directory.file import import_directory, parse_directory
app = create_app({"var_dir": Path(%r), "database_url": None, "TESTING": True})
with app.app_context(), db.session() as s:
    import_directory(s, parse_directory((Path(%r) / "samples/demo/annuaire.yaml").read_text("utf-8")), "bench")
app.close()
"""


def _cpu(p: psutil.Process) -> float:
    t = p.cpu_times()
    return t.user + t.system


def main(argv: list[str] | None = None) -> int:
    import requests

    from benchmarks.desk import free_port, multipart_body

    ap = argparse.ArgumentParser(prog="python -m benchmarks.desk_upload")
    ap.add_argument("--dir", type=Path, required=True, help="a bench made by benchmarks.desk --out")
    ap.add_argument("--prepared", type=Path, required=True, help="its issued documents' var directory")
    ap.add_argument("--root", type=Path, default=ROOT, help="the source tree served (default: this one)")
    ap.add_argument("--territoire", default="arrageois")
    ap.add_argument("--py-spy", dest="spy", type=Path, help="record the server during the upload")
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="desk-upload-"))
    shutil.copytree(args.prepared, work / "var")
    env = {**os.environ, "FORMS_SERVICE_VAR_DIR": str(work / "var"), "PYTHONPATH": str(args.root),
           "OMP_THREAD_LIMIT": "1"}
    for k in ("DATABASE_URL", "QUEUE_URL", "FORMS_SERVICE_STORAGE_DIR", "FORMS_SERVICE_API_KEYS"):
        env.pop(k, None)
    subprocess.run([sys.executable, "-c", DIRECTORY % (str(work / "var"), str(args.root))],
                   cwd=args.root, env=env, check=True, capture_output=True)
    port = free_port()
    log = open(work / "serve.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "forms_service.cli", "serve", "--port", str(port),
                             "--no-worker"], cwd=args.root, env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        for _ in range(600):
            try:
                if requests.get(f"{base}/health", timeout=5).status_code in (200, 503):
                    break
            except requests.RequestException:
                time.sleep(0.5)
        time.sleep(3)   # the service idle
        files = json.loads((args.dir / "index.json").read_text(encoding="utf-8"))["files"]
        body, content_type = multipart_body(args.dir, files, args.territoire)
        server = psutil.Process(proc.pid)
        spy = None
        if args.spy:
            spy = subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record", "--pid",
                                    str(proc.pid), "--rate", "100", "--format", "raw", "--nonblocking",
                                    "--output", str(args.spy)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(2)
        c0, t0 = _cpu(server), time.perf_counter()
        r = requests.post(f"{base}/batches", data=body, headers={"Content-Type": content_type}, timeout=600)
        wall, c1 = time.perf_counter() - t0, _cpu(server)
        if spy:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
        r.raise_for_status()
        batch = r.json()["id"]
        poll, etag, answers = requests.Session(), None, {}
        c2 = _cpu(server)
        for _ in range(POLLS):
            got = poll.get(f"{base}/batches/{batch}", headers={"If-None-Match": etag} if etag else {}, timeout=30)
            etag = got.headers.get("ETag") or etag
            answers[got.status_code] = answers.get(got.status_code, 0) + 1
        c3 = _cpu(server)
        print(json.dumps({"root": str(args.root), "files": len(files),
                          "megabytes": round(len(body) / 2 ** 20, 1),
                          "upload_seconds": round(wall, 2), "upload_cpu_seconds": round(c1 - c0, 2),
                          "poll_cpu_ms": round(1000 * (c3 - c2) / POLLS, 1), "poll_answers": answers,
                          "load_average": round(os.getloadavg()[0], 1)}))
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

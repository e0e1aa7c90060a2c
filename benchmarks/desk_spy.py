"""Where the desk's CPU goes: a ``py-spy`` raw record of ``benchmarks.desk --py-spy FILE``
summed up by stage.

    PYTHONPATH=$PWD .venv/bin/python -m benchmarks.desk_spy FILE [--cpu S] [--rate 50] [--pages 300] [--top 30]

Every sample is one running thread's stack (py-spy leaves idle threads out), so samples
over the rate are CPU seconds on a quiet machine; on a loaded one a thread waiting for a
core counts too, so ``--cpu`` (the run's measured service CPU) scales them back. A sample goes to the stage of the **deepest** frame that
names one (a crop encoded inside the reader is « crops encode », not « reader »); the
reader's processes are told from the worker's and the web server's by their command line
(the sandbox's forkserver children). ``--top`` lists the heaviest leaf functions of the
non-reader stages too.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

#: (stage, substrings of a frame), the desk's own steps: the deepest frame matching one wins
#: (a crop encoded inside the reader is « crops encode », not « reader »).
STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("upload: HTTP body received (server)", ("handle_read (waitress", "received (waitress", "waitress/buffers",
                                              "_pyio.py", "readinto (werkzeug/wsgi.py", "read (cheroot/server.py")),
    ("upload: multipart parsed (Werkzeug)", ("formparser", "sansio/multipart")),
    ("upload: stored, hashed (Spool)", ("put_upload", "write (forms_service/desk/storage.py",
                                        "keep (forms_service/desk/storage.py")),
    ("upload: page count, duplicates, rows", ("submit_batch", "receive (forms_service",
                                              "end_file (forms_service", "_close (forms_service")),
    ("poll: GET /batches/<id>", ("batch_view", "batch_etag", "show (forms_service/api/batches", "authenticate")),
    ("worker: claim", ("_claim",)),
    ("worker: stored file read", ("storage.py", "read_bytes")),
    ("worker: records, pages written (DB)", ("write_results",)),
    ("worker: crops moved", ("keep_crops",)),
    ("worker: photocopy sub-files", ("_subfile",)),
    ("twin hashes (second decode)", ("page_hashes", "_image_hashes", "_page_hashes")),
    ("readers: crops encoded", ("crops.py",)),
    ("readers: layout maps / references loaded", ("references.py",)),
    ("readers: record validation", ("validation.py",)),
    ("queue (Huey)", ("huey/",)),
    ("process start-up (imports)", ("importlib",)),
]
#: Library frames, a stage only when no step above matched.
GENERIC: list[tuple[str, tuple[str, ...]]] = [
    ("pickling to/from the readers", ("pickle", "multiprocessing/connection", "multiprocessing/reduction",
                                      "multiprocessing/queues")),
    ("DB (other)", ("sqlalchemy", "sqlite3")),
    ("web server, Flask (other)", ("waitress/", "cheroot/", "flask/", "werkzeug/")),
    ("JSON (other)", ("json/",)),
]


def stage_of(frames: list[str]) -> str | None:
    for table in (STAGES, GENERIC):
        found = None
        for frame in frames:   # root first: the deepest match is kept
            for stage, marks in table:
                if any(m in frame for m in marks):
                    found = stage
                    break
        if found is not None:
            return found
    return None


def process_of(frames: list[str]) -> str:
    # py-spy --subprocesses names every process from the root down: the last one is the sampled one
    procs = [f for f in frames if f.startswith("process ")]
    head = procs[-1] if procs else (frames[0] if frames else "")
    if "forkserver" in head or "multiprocessing" in head or "spawn_main" in " ".join(frames[:4]):
        return "reader"
    if "worker" in head and "serve" not in head:
        return "worker"
    return "serve"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.desk_spy")
    ap.add_argument("record", type=Path)
    ap.add_argument("--rate", type=int, default=50)
    ap.add_argument("--pages", type=int, default=300)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--cpu", type=float, help="the run's measured service CPU seconds (the bench's "
                    "cpu_seconds_service): samples scaled to it. On a loaded machine py-spy counts a "
                    "thread waiting for a core as running, so its raw seconds are inflated alike")
    args = ap.parse_args(argv)

    by_stage: Counter = Counter()
    by_proc: Counter = Counter()
    leaves: Counter = Counter()
    for line in args.record.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        frames = stack.split(";")
        count = int(n)
        proc = process_of(frames)
        in_reader = any("_parse_many" in f for f in frames)
        stage = stage_of(frames)
        if stage is None:
            stage = "reader (the rest)" if in_reader else f"other ({proc})"
        by_stage[stage] += count
        by_proc["reader" if in_reader else proc] += count
        if not in_reader:
            leaves[re.sub(r":\d+\)", ")", frames[-1])] += count
    total = sum(by_stage.values())
    scale = args.cpu / total if args.cpu else 1 / args.rate
    print(f"{total / args.rate:.1f} s sampled ({total} samples at {args.rate}/s), {args.pages} pages"
          + (f"; scaled to the measured {args.cpu} CPU-s" if args.cpu else "") + "\n")
    print("| stage | CPU-s | ms a page | share |\n|---|---|---|---|")
    for stage, n in by_stage.most_common():
        print(f"| {stage} | {n * scale:.1f} | {1000 * n * scale / args.pages:.1f} | {100 * n / total:.1f} % |")
    print("\n| process | CPU-s |\n|---|---|")
    for proc, n in by_proc.most_common():
        print(f"| {proc} | {n * scale:.1f} |")
    print(f"\nheaviest leaves outside the reader ({args.top}):")
    for leaf, n in leaves.most_common(args.top):
        print(f"  {n * scale:6.2f} s  {leaf}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

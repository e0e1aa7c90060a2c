"""Where the desk's CPU goes: a ``py-spy`` raw record of ``benchmarks.desk --py-spy FILE``
summed up by stage.

    PYTHONPATH=$PWD .venv/bin/python -m benchmarks.desk_spy FILE [--rate 50] [--pages 300] [--top 30]

Every sample is one running thread's stack (py-spy leaves idle threads out), so samples
over the rate are CPU seconds. A sample goes to the stage of the **deepest** frame that
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

#: (stage, substrings of a frame): the deepest frame matching a stage wins; order breaks ties.
STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("upload + store (web)", ("formparser", "put_upload", "submit_batch", "storage.py", "multipart")),
    ("page count on receipt", ("page_count",)),
    ("poll (GET batch view)", ("batch_view",)),
    ("twin hashes (second decode)", ("page_hashes", "_image_hashes", "_page_hashes")),
    ("pickling to/from the readers", ("pickle", "_send_bytes", "_recv_bytes", "connection.py")),
    ("crops encode (reader)", ("crops.py", "imencode")),
    ("record validation (reader)", ("validation", "validate")),
    ("layout maps / references load", ("references.py", "layout_map", "load_layout")),
    ("DB writes (records, pages)", ("write_results", "store_record", "keep_crops", "sqlalchemy",
                                    "sqlite3", "_claim", "finish_if_done")),
    ("JSON", ("json/encoder", "json/decoder", "json/__init__", "orjson")),
    ("queue (Huey)", ("huey/",)),
    ("photocopy sub-files", ("_subfile",)),
]


def stage_of(frames: list[str]) -> str | None:
    found = None
    for frame in frames:   # root first: the deepest match is kept
        for stage, marks in STAGES:
            if any(m in frame for m in marks):
                found = stage
                break
    return found


def process_of(frames: list[str]) -> str:
    head = frames[0] if frames else ""
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
    print(f"{total / args.rate:.1f} CPU-s sampled ({total} samples at {args.rate}/s), {args.pages} pages\n")
    print("| stage | CPU-s | ms a page | share |\n|---|---|---|---|")
    for stage, n in by_stage.most_common():
        print(f"| {stage} | {n / args.rate:.1f} | {1000 * n / args.rate / args.pages:.1f} | {100 * n / total:.1f} % |")
    print("\n| process | CPU-s |\n|---|---|")
    for proc, n in by_proc.most_common():
        print(f"| {proc} | {n / args.rate:.1f} |")
    print(f"\nheaviest leaves outside the reader ({args.top}):")
    for leaf, n in leaves.most_common(args.top):
        print(f"  {n / args.rate:6.2f} s  {leaf}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Twin pages written at the same moment (issue 11): never both kept.

Two real ``forms-service worker`` processes read one batch's two TIFF files at once —
the same page images, different bytes (another compression), so not a duplicate file.
Their writing transactions are made to meet (``tests/desk_hooks/sitecustomize.py``: each
worker storing a record waits for the other to be storing too): without the twin lock
(``twins.lock_images``: PostgreSQL's advisory lock per image hash; SQLite's write lock)
both would keep a record. With it, one file gives the record and every page of the other
is a duplicate of it. On SQLite and on PostgreSQL.
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import pytest

import desk_data
from desk_data import desk_documents  # noqa: F401  (fixture)
from desk_queue import ROOT, start_worker, stop, submit, wait_done
from people_data import headers, seed

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

HOOKS = Path(__file__).resolve().parent / "desk_hooks"


def _tiff(pages, compression: str) -> bytes:
    from PIL import Image
    ims = [Image.fromarray(p) for p in pages]
    buf = io.BytesIO()
    ims[0].save(buf, format="TIFF", save_all=True, append_images=ims[1:], compression=compression,
                dpi=(desk_data.DPI, desk_data.DPI))
    return buf.getvalue()


def test_twin_pages_read_at_the_same_moment_are_kept_once(make_app, lo_pool, tmp_path, db_url,
                                                          desk_documents):
    app = make_app(PDF_POOL=lo_pool, database_url=db_url)
    people = seed(app)
    desk_data.install(app, desk_documents, people)
    client = app.test_client()
    arr = headers(people["keys"]["agent.arr@t.example"])
    _, pdf, _ = desk_documents.docs["fiche"]
    scans = [desk_data.scanned(p, 90 + i) for i, p in enumerate(desk_data.pages_of(pdf))]
    a, b = _tiff(scans, "tiff_lzw"), _tiff(scans, "tiff_adobe_deflate")
    assert a != b

    settings = app.extensions["forms_service.settings"]
    meet = tmp_path / "meet"
    meet.mkdir()
    # on SQLite, more than a web request's busy timeout (5 s): a worker held by the write
    # lock waits longer (reading.WORKER_BUSY_TIMEOUT_MS), it does not fail and read again
    wait = "12" if db_url.startswith("postgresql") else "7"
    env = {"DESK_TEST_MEET_DIR": str(meet), "DESK_TEST_MEET_SECONDS": wait,
           "PYTHONPATH": os.pathsep.join([str(HOOKS), str(ROOT)])}
    workers = [start_worker(settings, threads=1, log=tmp_path / f"worker{i}.log", **env) for i in (1, 2)]
    try:
        deadline = time.monotonic() + 120
        while not all("démarré" in (tmp_path / f"worker{i}.log").read_text(errors="replace")
                      for i in (1, 2)):
            assert time.monotonic() < deadline, "the workers did not start"
            assert all(w.poll() is None for w in workers), "a worker died"
            time.sleep(0.2)
        time.sleep(1.5)   # both consuming
        r = submit(client, arr, [("lot-a.tif", a), ("lot-b.tif", b)])
        assert r.status_code == 202, r.get_data(as_text=True)
        view = wait_done(client, arr, r.get_json()["id"], workers=workers)
    finally:
        for w in workers:
            stop(w)
    logs = "".join((tmp_path / f"worker{i}.log").read_text(errors="replace") for i in (1, 2))
    assert "Unhandled exception" not in logs, logs
    assert len(list(meet.iterdir())) == 1   # one record stored, by one worker
    assert len(view["records"]) == 1, view["pages"]
    by_file = {f: [p for p in view["pages"] if p["file"] == f] for f in (0, 1)}
    kept = [f for f, pages in by_file.items() if {p["status"] for p in pages} == {"record"}]
    assert len(kept) == 1
    twin = by_file[1 - kept[0]]
    assert [(p["status"], p["duplicate_of"]) for p in twin] == \
        [("duplicate", {"batch": view["id"], "file": kept[0], "file_page": p["file_page"]}) for p in twin]

"""Uploads are streamed to storage (issue 11): each received file is copied by chunks while
hashed, never held whole in memory, on the API, the desk page and the command line; the
batches' own limit (``MAX_BATCH_BYTES``) is kept: 413 in the one error shape, in French,
and nothing stored.
"""

from __future__ import annotations

import hashlib
import io
import os
import tracemalloc
from pathlib import Path

from sqlalchemy import func, select

from people_data import headers, seed

MIB = 1024 * 1024


def _stored(settings) -> list[Path]:
    root = Path(settings.storage_dir) / "desk"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []


def _batches(app) -> int:
    from forms_service import db
    from forms_service.desk.models import Batch

    with app.app_context(), db.session() as s:
        return s.scalar(select(func.count()).select_from(Batch))


def test_api_streams_each_file_to_storage_and_keeps_the_batch_limit(make_app):
    app = make_app(MAX_CONTENT_LENGTH=2000, MAX_BATCH_BYTES=3 * MIB)
    people = seed(app)
    agent = headers(people["keys"]["agent.arr@t.example"])
    settings = app.extensions["forms_service.settings"]
    client = app.test_client()
    big = os.urandom(2 * MIB)   # above Werkzeug's in-memory threshold: spooled to disk
    small = b"%PDF-1.4 pas vraiment un PDF"
    r = client.post("/api/v1/batches", headers=agent, content_type="multipart/form-data",
                    data={"files": [(io.BytesIO(big), "gros.bin"), (io.BytesIO(small), "petit.pdf")]})
    assert r.status_code == 202, r.get_data(as_text=True)
    assert [f["sha256"] for f in r.get_json()["files"]] == [hashlib.sha256(big).hexdigest(),
                                                             hashlib.sha256(small).hexdigest()]
    stored = _stored(settings)
    assert sorted(p.read_bytes() for p in stored) == sorted([big, small])   # no .part left
    view = client.get(f"/api/v1/batches/{r.get_json()['id']}", headers=agent).get_json()
    assert [p["status"] for p in view["pages"]] == ["error", "error"]       # read as what they are

    r = client.post("/api/v1/batches", headers=agent, content_type="multipart/form-data",
                    data={"files": [(io.BytesIO(big), "a.bin"), (io.BytesIO(os.urandom(2 * MIB)), "b.bin")]})
    assert r.status_code == 413
    [error] = r.get_json()["errors"]
    assert error["message"].startswith("Requête trop volumineuse") and "3 Mio" in error["message"]
    assert _batches(app) == 1 and _stored(settings) == stored               # nothing kept


def test_receive_copies_by_chunks_and_refuses_over_the_limit(make_app, tmp_path):
    """The code path every entry takes: a 48 MiB file is stored with a few MiB of memory;
    over ``MAX_BATCH_BYTES`` nothing is stored (the sizes are checked first, the copy again)."""
    from forms_service import db
    from forms_service.console import CONSOLE
    from forms_service.desk import batches, storage
    from forms_service.errors import PayloadTooLarge

    app = make_app(MAX_BATCH_BYTES=64 * MIB)
    seed(app)
    settings = app.extensions["forms_service.settings"]
    source = tmp_path / "scan.tif"
    with open(source, "wb") as fh:
        for _ in range(48):
            fh.write(os.urandom(MIB))
    with app.app_context():
        tracemalloc.start()
        try:
            batch = batches.receive(settings, CONSOLE, [batches.Upload("scan.tif", source)], "arrageois",
                                    source="cli", database=db.get_database())
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 8 * MIB, f"{peak / MIB:.1f} MiB"
        with db.session() as s:
            [f] = batches.files_view(s, CONSOLE, batch)
        assert storage.path(settings, f"desk/{f['sha256'][:2]}/{f['sha256']}").stat().st_size == 48 * MIB

        before = _stored(settings)
        two = [batches.Upload("a.tif", source), batches.Upload("b.tif", io.BytesIO(os.urandom(17 * MIB)))]
        try:
            batches.receive(settings, CONSOLE, two, "arrageois", source="cli", database=db.get_database())
        except PayloadTooLarge as exc:
            assert "64 Mio au plus" in exc.message
        else:
            raise AssertionError("a batch over MAX_BATCH_BYTES was taken")
        # a stream longer than it said: refused while copying, nothing left behind
        limit = 4 * MIB
        try:
            storage.put_upload(settings, batches.Upload("c.bin", io.BytesIO(os.urandom(5 * MIB))), limit=limit)
        except PayloadTooLarge:
            pass
        else:
            raise AssertionError("copied over the limit")
    assert _stored(settings) == before
    assert _batches(app) == 1


def test_cli_submit_streams_and_refuses_a_batch_over_the_limit(runner, tmp_path, monkeypatch):
    from people_data import DEMO

    assert runner.run("directory", "import", DEMO / "annuaire.yaml").exit_code == 0
    source = tmp_path / "lot.pdf"
    source.write_bytes(b"%PDF-1.4\n" + os.urandom(2 * MIB))
    ok = runner.run("batch", "submit", source, "--territoire", "arrageois", "--json")
    assert ok.exit_code == 0, ok.output
    stored = sorted((tmp_path / "var" / "files" / "desk").rglob("*"))
    assert [p.read_bytes() for p in stored if p.is_file()] == [source.read_bytes()]
    monkeypatch.setenv("MAX_BATCH_BYTES", str(MIB))
    refused = runner.run("batch", "submit", source, "--territoire", "arrageois")
    assert refused.exit_code == 2
    assert "Lot trop volumineux (2 Mio ; 1 Mio au plus)" in refused.output
    assert sorted((tmp_path / "var" / "files" / "desk").rglob("*")) == stored

"""The SLAI desk's ingestion, end to end (issue 11): files through HTTP, stored first,
read by real ``forms-service worker`` processes on the real queue (Huey on SQLite, and
on a real redis-server with two workers), on SQLite and on PostgreSQL; every page
accounted for, one record per photocopy, the file sent twice recognised, records kept
with their pages, crops, source file, issued document and beneficiary.
"""

from __future__ import annotations

import os
import time

import pytest
from sqlalchemy import func, select

import desk_data
from desk_data import desk_documents  # noqa: F401  (fixture)
from desk_queue import WAIT, kill_9, redis_url, start_worker, stop, submit, wait_done  # noqa: F401  (fixture)
from people_data import headers, seed

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")



#: (queue, database): the embedded queue (one worker) and Redis (two workers), on SQLite and
#: on PostgreSQL.
COMBOS = [("sqlite", "sqlite"), ("sqlite", "postgresql"), ("redis", "sqlite"), ("redis", "postgresql")]
COMBO_IDS = [f"{q}-queue-{d}" for q, d in COMBOS]


def _app(make_app, lo_pool, request, tmp_path, queue: str, database: str):
    url = f"sqlite:///{tmp_path / 'desk.db'}" if database == "sqlite" else \
        request.getfixturevalue("postgresql_server").create_database()
    extra = {"queue_url": request.getfixturevalue("redis_url")} if queue == "redis" else {}
    return make_app(PDF_POOL=lo_pool, database_url=url, **extra)


@pytest.fixture
def desk(make_app, lo_pool, request, tmp_path, desk_documents):
    """An app (the database and queue of the test's parameter), the people of the people
    tests, and the documents a mixed batch holds (rendered once per session by the
    service, installed into this database)."""
    queue, database = getattr(request, "param", COMBOS[0])
    app = _app(make_app, lo_pool, request, tmp_path, queue, database)
    people = seed(app)
    desk_data.install(app, desk_documents, people)
    return {"app": app, "client": app.test_client(), "people": people, "docs": desk_documents.docs,
            "mixed": desk_documents.mixed, "settings": app.extensions["forms_service.settings"],
            "queue": queue, "database": database, "tmp": tmp_path}


@pytest.mark.parametrize("desk", COMBOS, indirect=True, ids=COMBO_IDS)
def test_mixed_batch_through_http_every_page_accounted_for(desk):
    from forms_service import db
    from forms_service.desk.models import BatchPage, RecordCrop, RecordPage

    client, settings = desk["client"], desk["settings"]
    agent = headers(desk["people"]["keys"]["agent.arr@t.example"])
    mixed = desk["mixed"]
    workers = [start_worker(settings, log=desk["tmp"] / f"worker{i}.log")
               for i in range(2 if desk["queue"] == "redis" else 1)]
    try:
        r = submit(client, agent, mixed.files)   # the agent's own territory
        assert r.status_code == 202, r.get_data(as_text=True)
        created = r.get_json()
        assert created["status"] == "queued"
        assert [f["name"] for f in created["files"]] == [n for n, _ in mixed.files]
        for i, earlier in mixed.twice:
            assert created["files"][i]["duplicate_of"] == {"batch": created["id"], "file": earlier}
            assert created["files"][i]["sha256"] == created["files"][earlier]["sha256"]
        assert all(f["duplicate_of"] is None for i, f in enumerate(created["files"])
                   if i not in dict(mixed.twice))
        view = wait_done(client, agent, created["id"], workers=workers)
    finally:
        for w in workers:
            stop(w)
    pages = view["pages"]
    assert view["progress"] == {"pages_total": mixed.pages, "pages_done": mixed.pages}
    assert len(pages) == mixed.pages and not [p for p in pages if p["status"] in ("pending", "error")], pages
    assert view["summary"]["blank"] == mixed.blank
    assert view["summary"]["unknown"] == mixed.unknown
    dup_file = mixed.twice[0][0]
    assert {p["status"] for p in pages if p["file"] == dup_file} == {"duplicate"}
    assert view["summary"]["duplicates"] == sum(1 for p in pages if p["file"] == dup_file)

    # one record per document, one per photocopy; each record's pages are the batch's
    records = [client.get(f"/api/v1/records/{rid}", headers=agent) for rid in view["records"]]
    by_doc: dict[str | None, list[dict]] = {}
    for resp in records:
        assert resp.status_code == 200, resp.get_data(as_text=True)
        rec = resp.get_json()
        by_doc.setdefault(rec["document_id"], []).append(rec)
    assert {d: len(v) for d, v in by_doc.items()} == mixed.records_per_document
    assert view["summary"]["forms"] == sum(mixed.records_per_document.values())
    copies = sorted(by_doc[mixed.copies_of], key=lambda r: r["id"])
    assert [r["copy_of"] for r in copies] == [None, copies[0]["id"], copies[0]["id"]]
    assert [r["probable_duplicate_of"] for r in copies] == [None, None, None]   # signed differently
    for rec in (r for v in by_doc.values() for r in v):
        assert rec["batch"] == created["id"]
        assert rec["beneficiary"] == mixed.beneficiary_of[rec["document_id"]]
        assert rec["status"] == rec["record"]["status"]
        assert rec["review"] == ("pending" if rec["beneficiary"] is None or rec["status"] == "needs_review"
                                 or any(p["identified_by"] == "content" for p in rec["record"]["pages"])
                                 else "none")
        assert len(rec["links"]["pages"]) == len(rec["record"]["pages"])
        assert all(p["batch"] == created["id"] for p in rec["links"]["pages"])
        record_pages = {(p["file"], p["file_page"]) for p in rec["links"]["pages"]}
        assert record_pages == {(p["file"], p["file_page"]) for p in pages if p["record"] == rec["id"]}
    # the copies: the blank form has no beneficiary → « bénéficiaire à identifier »
    assert all(r["beneficiary"] is None and r["review"] == "pending" for r in copies)
    if desk["database"] == "sqlite":   # each record's status is the reader's for its document alone
        alone = {item["document_id"]: item["status"] for item in _parse_alone(desk, mixed)}
        for doc_id, recs in by_doc.items():
            if doc_id != mixed.copies_of:
                assert [r["status"] for r in recs] == [alone[doc_id]]
    with desk["app"].app_context(), db.session() as s:
        in_batch = db.Record.batch_id == created["id"]
        assert s.scalar(select(func.count()).select_from(db.Record).where(in_batch)) == len(view["records"])
        assert s.scalar(select(func.count()).select_from(BatchPage)
                        .where(BatchPage.batch_id == created["id"])) == mixed.pages
        assert s.scalar(select(func.count()).select_from(RecordPage).join(db.Record).where(in_batch)) == \
            sum(1 for p in pages if p["status"] == "record")
        crops = s.scalars(select(RecordCrop).join(db.Record).where(in_batch)).all()
    # every record keeps its own crops, named by record and page: the photocopies (one
    # document id) do not overwrite each other's
    assert crops and all(c.stored_path.startswith(f"crops/records/{c.record_id}/p{c.page}-") for c in crops)
    assert all((settings.storage_dir / c.stored_path).is_file() for c in crops)
    assert len({c.stored_path for c in crops}) == len(crops)
    copy_crops = {r["id"]: {c.stored_path for c in crops if c.record_id == r["id"]} for r in copies}
    assert all(copy_crops.values()), copy_crops
    contents = [frozenset((settings.storage_dir / p).read_bytes() for p in paths) for paths in copy_crops.values()]
    assert len(set(contents)) == len(copies)   # each copy's own scan, not the last one's
    for rec in (r for v in by_doc.values() for r in v):   # the record's evidence names them
        for field in rec["record"]["fields"].values():
            for ev in field.get("evidence") or []:
                if ev.get("crop"):
                    assert ev["crop"].startswith(f"crops/records/{rec['id']}/")


def _parse_alone(desk, mixed):
    """The reader alone, on each document's pages as one clean file (POST /api/v1/parse)."""
    import io
    client = desk["client"]
    admin = headers(desk["people"]["keys"]["admin@t.example"])
    out = []
    for name in ("fiche", "cer", "annexe3"):
        _, pdf, _ = desk["docs"][name]
        scan = desk_data.encode([desk_data.scanned(p, 99) for p in desk_data.pages_of(pdf)], "pdf")
        r = client.post("/api/v1/parse", data={"files": [(io.BytesIO(scan), f"{name}.pdf")]},
                        headers=admin, content_type="multipart/form-data")
        assert r.status_code == 200, r.get_data(as_text=True)
        out += [i for i in r.get_json() if "fields" in i]
    return out


def test_worker_killed_mid_batch_every_page_read_exactly_once(make_app, lo_pool, request, tmp_path,
                                                              desk_documents):
    """``kill -9`` of the worker in the middle of a batch; a new worker finishes it: every
    page accounted for once, every record stored once (no half-written record)."""
    from forms_service import db
    from forms_service.desk.models import BatchPage

    app = _app(make_app, lo_pool, request, tmp_path, "sqlite", "sqlite")
    people = seed(app)
    desk_data.install(app, desk_documents, people)
    client = app.test_client()
    agent = headers(people["keys"]["agent.arr@t.example"])
    _, pdf, _ = desk_documents.docs["fiche"]
    pages = desk_data.pages_of(pdf)
    # eight scans of the document (each its own noise: not the same file), one per file
    files = [(f"scan-{i}.pdf", desk_data.encode([desk_data.scanned(p, 100 + 10 * i + j)
                                                 for j, p in enumerate(pages)], "pdf")) for i in range(8)]
    settings = app.extensions["forms_service.settings"]
    r = submit(client, agent, files)
    assert r.status_code == 202
    batch_id = r.get_json()["id"]
    first = start_worker(settings, threads=1, log=tmp_path / "first.log")
    try:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            view = client.get(f"/api/v1/batches/{batch_id}", headers=agent).get_json()
            if view["progress"]["pages_done"] >= len(pages):
                break
            time.sleep(0.05)
        kill_9(first)   # in the middle: some files read, others not
    finally:
        stop(first)
    view = client.get(f"/api/v1/batches/{batch_id}", headers=agent).get_json()
    assert 0 < view["progress"]["pages_done"] < view["progress"]["pages_total"], view["progress"]
    second = start_worker(settings, threads=2, log=tmp_path / "second.log")
    try:
        view = wait_done(client, agent, batch_id, workers=[second])
    finally:
        stop(second)
    assert view["progress"]["pages_done"] == len(files) * len(pages)
    assert {p["status"] for p in view["pages"]} == {"record"}
    assert len(view["records"]) == len(files)   # one record per file: none lost, none doubled
    with app.app_context(), db.session() as s:
        assert s.scalar(select(func.count()).select_from(db.Record)) == len(files)
        assert s.scalar(select(func.count()).select_from(BatchPage)) == len(files) * len(pages)
        stored = s.scalar(select(func.count()).select_from(db.AuditEvent)
                          .where(db.AuditEvent.action == "enregistrement.stocke"))
        assert stored == len(files)
        for rid in view["records"]:
            assert s.scalar(select(func.count()).select_from(BatchPage)
                            .where(BatchPage.record_id == rid)) == len(pages)


def test_post_parse_keeps_every_record_with_its_pages_and_file(app, tmp_path):
    """``POST /api/v1/parse`` answers as before, and keeps what it read (issue 11)."""
    import io
    from pathlib import Path

    from forms_service import db
    from forms_service.desk.models import BatchFile

    pdf = (Path(__file__).resolve().parent.parent / "templates" / "pdf" / "fiche-liaison.pdf").read_bytes()
    client = app.test_client()
    r = client.post("/api/v1/parse", data={"files": [(io.BytesIO(pdf), "rempli.pdf"), (io.BytesIO(b"x"), "vide.txt")]},
                    content_type="multipart/form-data")
    assert r.status_code == 200, r.get_data(as_text=True)
    result = r.get_json()
    records = [i for i in result if "fields" in i]
    assert len(records) == 1 and [i["file"] for i in result if "error" in i] == ["vide.txt"]
    batch_id = int(r.headers["X-Batch-Id"])
    view = client.get(f"/api/v1/batches/{batch_id}").get_json()
    assert view["status"] == "done" and len(view["records"]) == 1
    assert {p["status"] for p in view["pages"] if p["file"] == 0} == {"record"}
    assert [p["status"] for p in view["pages"] if p["file"] == 1] == ["error"]
    rec = client.get(f"/api/v1/records/{view['records'][0]}").get_json()
    assert rec["batch"] == batch_id and rec["record"] == records[0]
    assert [p["file"] for p in rec["links"]["pages"]] == [0] * len(records[0]["pages"])
    with app.app_context(), db.session() as s:
        stored = s.scalars(select(BatchFile).where(BatchFile.batch_id == batch_id)
                           .order_by(BatchFile.position)).all()
        assert [f.status for f in stored] == ["read", "error"]
        settings = app.extensions["forms_service.settings"]
        assert (settings.storage_dir / stored[0].stored_path).read_bytes() == pdf


def test_watched_folder_takes_a_file_only_once_complete(make_app, tmp_path):
    """A file still being written is left; one that stopped growing, or was renamed into
    place, is taken once (stored, queued), then moved aside."""
    from pathlib import Path

    from forms_service import db
    from forms_service.desk import watch
    from forms_service.desk.models import Batch, BatchFile
    from people_data import DEMO
    from forms_service.directory.file import import_directory, parse_directory

    app = make_app(watch_dir=tmp_path / "scans", watch_settle_seconds=1)
    settings = app.extensions["forms_service.settings"]
    with app.app_context(), db.session() as s:
        import_directory(s, parse_directory((DEMO / "annuaire.yaml").read_text("utf-8")), "test")
    folder = tmp_path / "scans" / "artois"
    folder.mkdir(parents=True)
    pdf = (Path(__file__).resolve().parent.parent / "templates" / "pdf" / "cers.pdf").read_bytes()
    growing = folder / "en-cours.pdf"
    growing.write_bytes(pdf[:1000])                       # just written: too recent
    partial = folder / "scan.pdf.part"
    partial.write_bytes(pdf)                               # ignored until renamed
    old = time.time() - 60
    os.utime(partial, (old, old))
    with app.app_context():
        assert watch.poll(settings) == []
        growing.write_bytes(pdf[:5000])                    # still growing
        os.utime(growing, (old, old))
        assert watch.poll(settings) == []                  # size changed since the last poll
        partial.rename(folder / "scan.pdf")                # renamed into place: complete at once
        made = watch.poll(settings)                        # and the other unchanged since: complete
        assert len(made) == 2 and watch.poll(settings) == []
        with db.session() as s:
            batches = s.scalars(select(Batch).order_by(Batch.id)).all()
            assert [(b.source, b.territoire, b.created_by) for b in batches] == \
                [("folder", "artois", "dossier:artois")] * 2
            names = [f.name for f in s.scalars(select(BatchFile).order_by(BatchFile.id))]
    assert names == ["en-cours.pdf", "scan.pdf"]
    assert sorted(p.name for p in (folder / ".traites").iterdir()) == \
        [f"{made[0]}-en-cours.pdf", f"{made[1]}-scan.pdf"]
    assert [p.name for p in folder.iterdir() if p.is_file()] == []

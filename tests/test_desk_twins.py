"""Identical page images across files and batches (issue 11), and each record's own crops,
end to end: files through HTTP, read by a real ``forms-service worker`` on the embedded queue.

- the pages of a scanned fiche sent as PNG files, then the same scans in one TIFF in a
  second batch: every page of the TIFF is a duplicate naming the earlier page, no record;
- the same TIFF sent by another territory's agent (who may not see the first batches): read
  again into a record of its own, nothing named; its crops and the first record's (one
  document id) are kept apart, by record and page.
"""

from __future__ import annotations

import pytest

import desk_data
from desk_data import desk_documents  # noqa: F401  (fixture)
from desk_queue import start_worker, stop, submit, wait_done
from people_data import headers, seed

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_identical_page_images_are_duplicates_across_files_and_batches(make_app, lo_pool, tmp_path,
                                                                       desk_documents):
    from sqlalchemy import select

    from forms_service import db
    from forms_service.desk.models import RecordCrop

    app = make_app(PDF_POOL=lo_pool, database_url=f"sqlite:///{tmp_path / 'desk.db'}")
    people = seed(app)
    desk_data.install(app, desk_documents, people)
    client = app.test_client()
    arr = headers(people["keys"]["agent.arr@t.example"])
    art = headers(people["keys"]["agent.art@t.example"])
    _, pdf, _ = desk_documents.docs["fiche"]
    zone = next(z for z in desk_documents.layout["zones"] if z["kind"] != "signature")
    pages = desk_data.pages_of(pdf)
    n = zone["page"] - 1   # handwriting in a zone: a crop for the agent who types it in
    pages[n] = desk_data.signed(pages[n], zone["bbox"], 7)
    scans = [desk_data.scanned(p, 70 + i) for i, p in enumerate(pages)]
    pngs = [(f"page-{i + 1}.png", desk_data.encode([p], "png")) for i, p in enumerate(scans)]
    tiff = ("lot.tif", desk_data.encode(scans, "tiff"))   # the same page images, another file
    settings = app.extensions["forms_service.settings"]
    worker = start_worker(settings, log=tmp_path / "worker.log")
    try:
        first = submit(client, arr, pngs).get_json()
        a = wait_done(client, arr, first["id"], workers=[worker])
        assert len(a["records"]) == 1 and {p["status"] for p in a["pages"]} == {"record"}
        assert all(p["duplicate_of"] is None for p in a["pages"])

        r = submit(client, arr, [tiff])
        assert r.status_code == 202 and r.get_json()["files"][0]["duplicate_of"] is None   # new bytes
        b = wait_done(client, arr, r.get_json()["id"], workers=[worker])
        assert b["records"] == [] and b["summary"]["duplicates"] == len(scans)
        assert [(p["status"], p["duplicate_of"]) for p in b["pages"]] == \
            [("duplicate", {"batch": first["id"], "file": i, "file_page": 1}) for i in range(len(scans))]
        assert all("déjà reçue" in p["message"] for p in b["pages"])

        r = submit(client, art, [tiff])   # artois: may see neither earlier batch
        assert r.status_code == 202 and r.get_json()["files"][0]["duplicate_of"] is None
        c = wait_done(client, art, r.get_json()["id"], workers=[worker])
    finally:
        stop(worker)
    assert len(c["records"]) == 1 and {p["status"] for p in c["pages"]} == {"record"}
    assert all(p["duplicate_of"] is None for p in c["pages"])
    # the arrageois agent sees the artois batch? no: it is another territory's
    assert client.get(f"/api/v1/batches/{c['id']}", headers=arr).status_code == 404

    # one document id, two records: each keeps its own crops, named by record and page
    with app.app_context(), db.session() as s:
        crops = s.scalars(select(RecordCrop).order_by(RecordCrop.id)).all()
    by_record = {rid: {c.stored_path for c in crops if c.record_id == rid}
                 for rid in (a["records"][0], c["records"][0])}
    assert all(by_record.values()) and not set.intersection(*by_record.values())
    for c_ in crops:
        assert c_.stored_path.startswith(f"crops/records/{c_.record_id}/p{c_.page}-")
        assert (settings.storage_dir / c_.stored_path).is_file()

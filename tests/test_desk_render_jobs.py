"""Long render batches on the task queue (issue 11): ``POST /api/v1/forms/<id>/render-batch``
above ``RENDER_ASYNC_THRESHOLD`` items answers 202 with a job, rendered by a real
``forms-service worker`` on the embedded queue through the same code path (all issued or
none, ``Idempotency-Key`` kept); small batches stay synchronous; an invalid item is a 422 at once (no job); a job whose
worker is killed (``kill -9``) is rendered by the next worker, its documents issued once;
in the OpenAPI document.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import func, select

from desk_queue import WAIT, kill_9, start_worker, stop
from people_data import headers, seed

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SAMPLE = json.loads((Path(__file__).resolve().parent.parent / "samples" / "fiche-liaison.json").read_text("utf-8"))
URL = "/api/v1/forms/fiche-liaison/render-batch?format=docx"


def _issued(app) -> int:
    from forms_service import db
    with app.app_context(), db.session() as s:
        return s.scalar(select(func.count()).select_from(db.IssuedDocument))


def _jobs(app) -> int:
    from forms_service import db
    from forms_service.render.job_models import RenderJob
    with app.app_context(), db.session() as s:
        return s.scalar(select(func.count()).select_from(RenderJob))


def _poll(client, hdrs, job_id, worker):
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        view = client.get(f"/api/v1/render-jobs/{job_id}", headers=hdrs).get_json()
        if view["status"] in ("done", "failed"):
            return view
        assert worker.poll() is None, "the worker died"
        time.sleep(0.2)
    raise AssertionError(f"render job {job_id} not finished: {view}")


def test_long_render_batches_run_on_the_queue(make_app, tmp_path):
    app = make_app(database_url=f"sqlite:///{tmp_path / 'render.db'}", RENDER_ASYNC_THRESHOLD=2)
    people = seed(app)
    ref = headers(people["keys"]["ref1@t.example"])
    other = headers(people["keys"]["ref2@t.example"])
    client = app.test_client()

    small = client.post(URL, json=[SAMPLE] * 2, headers=ref)   # at the threshold: synchronous
    assert small.status_code == 200 and small.headers["X-Documents-Count"] == "2"

    key = {**ref, "Idempotency-Key": "lot-long-1"}
    r = client.post(URL, json=[SAMPLE] * 3, headers=key)
    assert r.status_code == 202, r.get_data(as_text=True)
    job = r.get_json()
    assert job["status"] == "queued" and r.headers["Location"] == job["poll"] == f"/api/v1/render-jobs/{job['id']}"
    assert client.post(URL, json=[SAMPLE] * 3, headers=key).get_json()["id"] == job["id"]   # the same job
    conflict = client.post(URL, json=[SAMPLE] * 4, headers=key)
    assert conflict.status_code == 409 and conflict.get_json()["errors"][0]["path"] == "Idempotency-Key"
    # an invalid item: refused at once, with the errors a synchronous batch answers; no job kept
    bad_items = [SAMPLE, {"beneficiaire": "pas un objet"}, SAMPLE, 7]
    bad = client.post(URL, json=bad_items, headers=ref)
    sync = client.post(URL, json=bad_items[:2], headers=ref)   # at the threshold: synchronous
    assert bad.status_code == sync.status_code == 422, bad.get_data(as_text=True)
    assert {e["path"].split(".")[1] for e in bad.get_json()["errors"]} == {"1", "3"}
    assert [e for e in bad.get_json()["errors"] if e["path"].startswith("items.1")] == sync.get_json()["errors"]
    assert _jobs(app) == 1
    assert client.get(job["poll"], headers=other).status_code == 404        # another person's job
    assert client.get(f"{job['poll']}/archive", headers=ref).status_code == 409   # not rendered yet
    assert _issued(app) == 2

    settings = app.extensions["forms_service.settings"]
    worker = start_worker(settings, threads=1, log=tmp_path / "worker.log")
    try:
        done = _poll(client, ref, job["id"], worker)
    finally:
        stop(worker)
    assert done["status"] == "done" and len(done["documents"]) == 3
    archive = client.get(done["archive"], headers=ref)
    assert archive.status_code == 200 and archive.headers["X-Documents-Count"] == "3"
    with zipfile.ZipFile(io.BytesIO(archive.data)) as z:
        names = z.namelist()
        findings = json.loads(z.read("findings.json"))
    assert len([n for n in names if n.endswith(".docx")]) == 3
    assert [f["document_id"] for f in findings] == [d["document_id"] for d in done["documents"]]
    assert _issued(app) == 2 + 3
    # the key kept: the POST sent again finds the job and its documents, issues nothing
    again = client.post(URL, json=[SAMPLE] * 3, headers=key).get_json()
    assert again["id"] == job["id"] and _issued(app) == 5


def test_a_render_job_whose_worker_is_killed_is_run_again(make_app, tmp_path):
    from forms_service import db
    from forms_service.render.job_models import RenderJob

    app = make_app(database_url=f"sqlite:///{tmp_path / 'render.db'}", RENDER_ASYNC_THRESHOLD=2)
    people = seed(app)
    ref = headers(people["keys"]["ref1@t.example"])
    client = app.test_client()
    items = 120   # long enough (DOCX) to be killed in the middle
    r = client.post(URL, json=[SAMPLE] * items, headers=ref)
    assert r.status_code == 202
    job_id = r.get_json()["id"]
    settings = app.extensions["forms_service.settings"]

    def state():
        with app.app_context(), db.session() as s:
            job = s.get(RenderJob, job_id)
            return job.status, job.claimed_by

    first = start_worker(settings, threads=1, log=tmp_path / "worker1.log")
    try:
        deadline = time.monotonic() + WAIT
        while state()[0] == "queued" and time.monotonic() < deadline:
            assert first.poll() is None, "the worker died"
            time.sleep(0.05)
        status, holder = state()
        assert status == "running" and holder and f":{first.pid}:" in holder
        kill_9(first)   # in the middle: nothing issued yet
    finally:
        stop(first)
    assert state()[0] == "running" and _issued(app) == 0, "the job ended before the kill: more items"

    second = start_worker(settings, threads=1, log=tmp_path / "worker2.log")
    try:
        done = _poll(client, ref, job_id, second)
    finally:
        stop(second)
    assert done["status"] == "done" and len(done["documents"]) == items
    assert _issued(app) == items   # rendered again from the start, issued once
    assert state() == ("done", None)


def test_render_jobs_are_in_the_openapi_document(app):
    doc = app.test_client().get("/api/v1/openapi.json").get_json()
    batch = doc["paths"]["/api/v1/forms/fiche-liaison/render-batch"]["post"]   # one path per form
    assert "202" in batch["responses"]
    assert "get" in doc["paths"]["/api/v1/render-jobs/{job_id}"]
    assert "get" in doc["paths"]["/api/v1/render-jobs/{job_id}/archive"]

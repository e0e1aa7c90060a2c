"""A page the reader does not recognise reaches the desk's review queue (issue 15).

End to end: a file sent to the desk over HTTP, read by a real ``forms-service worker``
on the embedded queue (SQLite), the page reported ``unknown`` by the reader with its
best guesses, then an agent sees it in « À vérifier » as « Page non reconnue » and its
page shows the reader's message — never dropped.
"""

from __future__ import annotations

import re

import pytest

import desk_data
from desk_queue import start_worker, stop, submit, wait_done
from people_data import headers, seed

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_an_unrecognised_page_goes_to_the_review_queue_with_the_readers_guesses(make_app, login, tmp_path):
    app = make_app(REVIEW_SAMPLE_RATE=0)
    people = seed(app)
    settings = app.extensions["forms_service.settings"]
    client = app.test_client()
    agent_key = headers(people["keys"]["agent.arr@t.example"])
    letter = desk_data.encode([desk_data.unknown_page(15)], "png")
    worker = start_worker(settings, log=tmp_path / "worker.log")
    try:
        r = submit(client, agent_key, [("courrier.png", letter)])
        assert r.status_code == 202, r.get_data(as_text=True)
        view = wait_done(client, agent_key, r.get_json()["id"], workers=[worker])
    finally:
        stop(worker)
    (page,) = view["pages"]
    assert page["status"] == "unknown", page
    assert view["summary"]["unknown"] == 1

    agent = app.test_client()
    assert login(agent, "agent.arr@t.example").status_code == 302
    queue = agent.get("/slai/verification").get_data(as_text=True)
    assert "Page non reconnue" in queue
    page_id = int(re.search(r"/slai/verification/pages/(\d+)", queue).group(1))
    shown = agent.get(f"/slai/verification/pages/{page_id}").get_data(as_text=True)
    assert "Page non reconnue" in shown and "au plus près" in shown, shown

"""``forms-service batch submit --wait`` never waits forever (issue 11): with no queue
consumer alive (no heartbeat in the queue's storage), the batch is read in the command
itself, saying so in French; a running worker's heartbeat is seen.

A real ``forms-service`` subprocess, bounded by a timeout.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from desk_queue import ROOT, start_worker, stop, worker_env
from people_data import seed

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

FICHE = Path(__file__).resolve().parent.parent / "templates" / "pdf" / "fiche-liaison.pdf"


def test_submit_wait_without_a_worker_reads_the_batch_itself(make_app, tmp_path):
    from forms_service.desk.queue import get_queue

    app = make_app(database_url=f"sqlite:///{tmp_path / 'desk.db'}")
    seed(app)
    settings = app.extensions["forms_service.settings"]
    assert not get_queue(settings).consumer_alive()
    done = subprocess.run([sys.executable, "-m", "forms_service.cli", "batch", "submit", str(FICHE),
                           "--territoire", "arrageois", "--wait", "--json"],
                          env=worker_env(settings), cwd=str(ROOT), capture_output=True, timeout=240)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert "Aucun lecteur de la file d'attente ne tourne" in done.stderr.decode()
    view = json.loads(done.stdout)
    assert view["status"] == "done" and len(view["records"]) == 1
    assert {p["status"] for p in view["pages"]} == {"record"}

    worker = start_worker(settings, threads=1, log=tmp_path / "worker.log")
    try:
        queue = get_queue(settings)
        for _ in range(300):
            if queue.consumer_alive():
                break
            assert worker.poll() is None, "the worker died"
            import time
            time.sleep(0.1)
        else:
            raise AssertionError("no heartbeat from the running worker")
    finally:
        stop(worker)
    assert not get_queue(settings).consumer_alive()   # stopped cleanly: its beat is withdrawn

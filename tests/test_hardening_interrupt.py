"""Issue 9, item 3: a batch interrupted by ``kill -9`` leaves none or all of its
documents issued (rows, files, audit events), and a retry with the same
``Idempotency-Key`` gives the same documents — through a real ``forms-service serve``."""

from __future__ import annotations

import io
import json
import sqlite3
import threading
import time
import zipfile
from pathlib import Path

import pytest

from forms_service.render.pdf import find_soffice
from served_app import ROOT, Served

pytestmark = pytest.mark.skipif(find_soffice(None) is None, reason="LibreOffice absent")

BATCH = 16
SAMPLE = json.loads((ROOT / "samples" / "fiche-liaison.json").read_text())
PATH = "/api/v1/forms/fiche-liaison/render-batch?format=pdf"


def issued(var_dir: Path) -> dict:
    """What the database and the storage hold: rows, audit events, final files, .part files."""
    with sqlite3.connect(var_dir / "forms.db") as con:
        rows = {r[0]: r[1] for r in con.execute("SELECT document_id, file_path FROM issued_document")}
        events = [r[0] for r in con.execute(
            "SELECT document_id FROM audit_event WHERE action = 'document.rendu'")]
    files = {p.name.split(".")[0] for p in (var_dir / "files").rglob("*.pdf")}
    parts = {p.name.split(".")[0] for p in (var_dir / "files").rglob("*.part")}
    return {"rows": rows, "events": events, "files": files, "parts": parts}


def zip_documents(body: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(body)) as z:
        return {n: z.read(n) for n in z.namelist() if n != "findings.json"}


def test_kill_9_during_a_pdf_batch_issues_none_or_all_and_a_retry_gives_the_same(tmp_path):
    var = tmp_path / "var"
    items = [dict(SAMPLE, mds=f"MDS {i}") for i in range(BATCH)]
    headers = {"Idempotency-Key": "lot-2026-12-01-arras"}
    server = Served(var, env={"SOFFICE_POOL_SIZE": "1"})
    try:
        server.start()
        # A first PDF warms LibreOffice, so that the kill lands while the batch renders.
        status, _, _ = server.request("POST", "/api/v1/forms/annexe-2/render?format=pdf", {})
        assert status == 200
        before = issued(var)
        assert len(before["rows"]) == 1

        outcome: dict = {}

        def send():
            try:
                outcome["status"] = server.request("POST", PATH, items, headers)[0]
            except OSError as exc:  # the connection dies with the server
                outcome["error"] = type(exc).__name__

        sender = threading.Thread(target=send)
        sender.start()
        time.sleep(4)  # about a third of the batch rendered
        server.kill()
        sender.join(30)
        assert "status" not in outcome, "the batch finished before the kill: make it longer"

        after = issued(var)
        batch_rows = set(after["rows"]) - set(before["rows"])
        batch_events = set(after["events"]) - set(before["events"])
        batch_files = after["files"] - before["files"]
        assert len(batch_rows) in (0, BATCH)
        assert batch_events == batch_rows
        assert batch_files <= batch_rows            # a committed batch may still be .part
        assert not (after["parts"] & set(before["rows"]))
        committed = bool(batch_rows)

        server.start()  # the start-up sweep finishes a committed batch's files
        status, _, first = server.request("POST", PATH, items, headers)
        assert status == 200, first[:500]
        docs = zip_documents(first)
        assert len(docs) == BATCH
        now = issued(var)
        new_rows = set(now["rows"]) - set(before["rows"])
        assert len(new_rows) == BATCH and set(now["events"]) - set(before["events"]) == new_rows
        assert new_rows <= now["files"]
        if committed:
            assert new_rows == batch_rows  # the interrupted batch's documents, not new ones
        assert {name.rsplit("_", 1)[-1].split(".")[0] for name in docs} == new_rows

        status, _, again = server.request("POST", PATH, items, headers)
        assert status == 200
        assert again == first                      # same ids, same bytes, same archive
        assert len(issued(var)["rows"]) == len(now["rows"])

        other = [dict(SAMPLE, mds="autre")]
        status, _, body = server.request("POST", PATH, other, headers)
        assert status == 409
        assert json.loads(body)["errors"][0]["rule"] == "cle_idempotence_reutilisee"
    finally:
        server.kill()
    assert not server.descendants()

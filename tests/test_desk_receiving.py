"""A batch uploaded over HTTP is received file by file (issue 11's speed): each file is
stored, committed and queued as soon as its part of the body is whole, so its reading
starts during the upload; the batch is not ``done`` before the upload ended; an upload
that breaks keeps the files received whole, and sending them again doubles nothing.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

from sqlalchemy import select
from werkzeug.test import encode_multipart

from people_data import headers, seed


def _pdf(pages: int) -> bytes:
    import pikepdf
    pdf = pikepdf.new()
    for _ in range(pages):
        pdf.add_blank_page(page_size=(595, 842))
    buf = io.BytesIO()
    pdf.save(buf)
    return buf.getvalue()


class Paced(io.BytesIO):
    """A request body read by small chunks; ``at(offset, fn)`` runs ``fn`` once the
    server has read past ``offset`` (what the server did by then is seen from outside)."""

    def __init__(self, data: bytes):
        super().__init__(data)
        self.hooks: list[tuple[int, object]] = []

    def at(self, offset: int, fn) -> None:
        self.hooks.append((offset, fn))

    def _due(self) -> None:
        for offset, fn in list(self.hooks):
            if self.tell() >= offset:
                self.hooks.remove((offset, fn))
                fn()

    def read(self, n: int = -1) -> bytes:
        self._due()
        return super().read(min(n, 256) if n and n > 0 else 256)

    def readinto(self, buffer) -> int:
        self._due()
        return super().readinto(memoryview(buffer)[:256])


def _body(fields: list[tuple[str, object]]) -> tuple[str, bytes]:
    from werkzeug.datastructures import FileStorage, MultiDict
    values = MultiDict()
    for name, value in fields:
        values.add(name, FileStorage(io.BytesIO(value[1]), value[0]) if isinstance(value, tuple) else value)
    return encode_multipart(values)


def _post(client, key, boundary, body: io.BytesIO, length: int):
    return client.post("/api/v1/batches", headers=headers(key), input_stream=body,
                       content_type=f"multipart/form-data; boundary={boundary}", content_length=length)


def _state(app, after: int = 0):
    """The batches after batch ``after``, their files and pages; the queue's job count."""
    from forms_service import db
    from forms_service.desk.models import Batch, BatchFile, BatchPage
    from forms_service.desk.queue import get_queue

    with app.app_context(), db.session() as s:
        batches = s.scalars(select(Batch).where(Batch.id > after).order_by(Batch.id)).all()
        files = s.scalars(select(BatchFile).where(BatchFile.batch_id > after).order_by(BatchFile.id)).all()
        pages = s.scalars(select(BatchPage).where(BatchPage.batch_id > after).order_by(BatchPage.id)).all()
        return {"batches": [(b.id, b.status, b.received_at is not None) for b in batches],
                "files": [(f.batch_id, f.position, f.status) for f in files],
                "pages": [(p.file_id, p.status) for p in pages],
                "queued": get_queue(app.extensions["forms_service.settings"]).pending()}


def test_each_file_is_committed_and_queued_while_the_upload_goes_on_and_a_broken_upload_keeps_them(make_app):
    from forms_service import db
    from forms_service.desk.models import Batch, BatchFile
    from forms_service.desk.reading import write_results

    app = make_app()
    people = seed(app)
    first, garbage = _pdf(2), b"%PDF-1.4 pas vraiment un PDF"
    boundary, data = _body([("territoire", "arrageois"), ("files", ("a.pdf", first)),
                            ("files", ("b.pdf", garbage))])
    body = Paced(data)
    seen = {}

    def mid_upload():   # the first file is whole, the second one not yet sent
        seen["state"] = _state(app)
        # a worker reads the first file at once (its two pages, blank): the batch is not done
        with app.app_context(), db.session() as s:
            batch = s.scalars(select(Batch)).one()
            [row] = s.scalars(select(BatchFile)).all()
            write_results(s, app.extensions["forms_service.settings"], batch.id, [row.id],
                          [{"file": str(row.id), "file_page": n, "page_status": "blank"} for n in (1, 2)])
        seen["after_read"] = _state(app)

    body.at(data.index(b'filename="b.pdf"'), mid_upload)
    r = _post(app.test_client(), people["keys"]["agent.arr@t.example"], boundary, body, len(data))
    assert r.status_code == 202, r.get_data(as_text=True)
    assert r.get_json()["status"] == "done"   # nothing left to read once the upload ended
    assert [f["sha256"] for f in r.get_json()["files"]] == [hashlib.sha256(first).hexdigest(),
                                                             hashlib.sha256(garbage).hexdigest()]
    [(bid, status, received)] = seen["state"]["batches"]
    assert (status, received) == ("queued", False)
    assert seen["state"]["files"] == [(bid, 0, "pending")]
    assert seen["state"]["pages"] == [(1, "pending"), (1, "pending")]
    assert seen["state"]["queued"] == 1   # its reading job queued during the upload
    assert seen["after_read"]["batches"] == [(bid, "queued", False)]   # not done: still receiving
    end = _state(app)
    assert end["batches"] == [(bid, "done", True)]
    assert end["files"] == [(bid, 0, "read"), (bid, 1, "error")]
    assert [p[1] for p in end["pages"]] == ["blank", "blank", "error"]
    _a_broken_upload_keeps_the_files_received_whole_and_doubles_nothing(app, people, after=bid)
    _the_served_app_gets_the_body_as_it_arrives(app, people["keys"]["agent.arr@t.example"],
                                                after=_state(app)["batches"][-1][0])


def _a_broken_upload_keeps_the_files_received_whole_and_doubles_nothing(app, people, after: int):
    """(In the same app as the test above: one set-up for both.)"""
    from forms_service import db
    from forms_service.db.models import AuditEvent

    key = people["keys"]["agent.arr@t.example"]
    queued = _state(app)["queued"]
    settings = app.extensions["forms_service.settings"]
    one, two = _pdf(1), _pdf(3)
    boundary, data = _body([("files", ("un.pdf", one)), ("files", ("deux.pdf", two))])
    cut = data.index(b'filename="deux.pdf"') + 200   # the body ends in the second file
    r = _post(app.test_client(), key, boundary, io.BytesIO(data[:cut]), cut)
    assert r.status_code == 400, r.get_data(as_text=True)
    [error] = r.get_json()["errors"]
    assert error["rule"] == "envoi_interrompu" and "1 fichier(s)" in error["message"]
    state = _state(app, after)
    [(first, status, received)] = state["batches"]
    assert (status, received) == ("queued", True)              # closed on what it received
    assert state["files"] == [(first, 0, "pending")] and [p[1] for p in state["pages"]] == ["pending"]
    assert state["queued"] == queued + 1                       # read once, like any file
    stored = {p.read_bytes() for p in (Path(settings.storage_dir) / "desk").rglob("*") if p.is_file()}
    assert one in stored and two not in stored                 # nothing of the broken part
    assert not list((Path(settings.storage_dir) / "desk").glob(".upload.*"))
    with app.app_context(), db.session() as s:
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "lot.recu")
                          .order_by(AuditEvent.id.desc())).first()
        assert event.detail["interrompu"] is True and event.detail["files"] == 1

    boundary, data = _body([("files", ("un.pdf", one)), ("files", ("deux.pdf", two))])
    r = _post(app.test_client(), key, boundary, io.BytesIO(data), len(data))   # sent again, whole
    assert r.status_code == 202, r.get_data(as_text=True)
    files = r.get_json()["files"]
    assert files[0]["duplicate_of"] == {"batch": first, "file": 0}   # not read again
    assert files[1]["duplicate_of"] is None
    state = _state(app, after)
    second = r.get_json()["id"]
    assert state["files"] == [(first, 0, "pending"), (second, 0, "duplicate"), (second, 1, "pending")]
    assert state["queued"] == queued + 2   # the first batch's file, and the new one: each once
    _an_unchanged_batch_answers_304(app, key, first)


def _the_served_app_gets_the_body_as_it_arrives(app, key: str, after: int):
    """``forms-service serve``'s HTTP server does not buffer a request's body before the
    application sees it (waitress did: a whole batch was received before its first file
    was stored): the first file is committed while the client still holds the rest.
    (In the same app as the test above: one set-up for all.)"""
    import socket
    import threading
    import time

    from forms_service.cli import web_server
    from forms_service.desk.receiving import READ

    first, second = _pdf(4), _pdf(5) + b"%" * (3 * READ)   # new bytes; the server reads by READ bytes
    boundary, data = _body([("territoire", "arrageois"), ("files", ("a.pdf", first)),
                            ("files", ("b.pdf", second))])
    held = len(data) - READ // 2   # the first file whole and more than a read past it; not the end
    server = web_server(app, "127.0.0.1", 0, 2)
    server.prepare()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    try:
        with socket.create_connection(server.bind_addr[:2], timeout=60) as sock:
            sock.sendall(b"POST /api/v1/batches HTTP/1.1\r\nHost: localhost\r\n"
                         + f"X-API-Key: {key}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n".encode()
                         + f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
                         + data[:held])
            deadline = time.monotonic() + 30
            while not _state(app, after)["files"] and time.monotonic() < deadline:
                time.sleep(0.05)
            [(batch, position, status)] = _state(app, after)["files"]   # the rest not sent yet
            assert (position, status) == (0, "pending")
            sock.sendall(data[held:])
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
    finally:
        server.stop()
        thread.join(10)
    assert answer.startswith(b"HTTP/1.1 202"), answer[:300]
    assert [f[:2] for f in _state(app, after)["files"]] == [(batch, 0), (batch, 1)]


def _an_unchanged_batch_answers_304(app, key: str, batch: int):
    """A poll sends back the view's ETag: 304 without a body while the batch is unchanged;
    once a page is read, the view again, under a new ETag. (In the same app as above.)"""
    from forms_service import db
    from forms_service.desk.models import BatchFile
    from forms_service.desk.reading import write_results

    client, url = app.test_client(), f"/api/v1/batches/{batch}"
    r = client.get(url, headers=headers(key))
    assert r.status_code == 200 and r.get_json()["status"] == "queued", r.get_data(as_text=True)
    etag = r.headers["ETag"]
    again = client.get(url, headers={**headers(key), "If-None-Match": etag})
    assert again.status_code == 304 and again.get_data() == b"" and again.headers["ETag"] == etag
    with app.app_context(), db.session() as s:
        [fid] = s.scalars(select(BatchFile.id).where(BatchFile.batch_id == batch)).all()
        write_results(s, app.extensions["forms_service.settings"], batch, [fid],
                      [{"file": str(fid), "file_page": 1, "page_status": "blank"}])
    changed = client.get(url, headers={**headers(key), "If-None-Match": etag})
    assert changed.status_code == 200 and changed.get_json()["status"] == "done"
    assert changed.headers["ETag"] != etag

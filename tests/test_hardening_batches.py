"""Issue 9, item 3, in process: a document and its audit event commit together, a
batch is issued whole or not at all, an ``Idempotency-Key`` retry returns the same
documents, and the start-up sweep finishes or undoes an interrupted issue.
(``test_hardening_interrupt.py`` does it with ``kill -9`` on a real server.)"""

from __future__ import annotations

import io
import zipfile

import pytest
from sqlalchemy import func, select

from forms_service import db
from forms_service.render import batches
from forms_service.render.service import get_service
from test_render_service import sample

FORM = "fiche-liaison"
BATCH_URL = f"/api/v1/forms/{FORM}/render-batch"


def counts(app) -> tuple[int, int, int]:
    with app.app_context(), db.session() as s:
        docs = s.scalar(select(func.count()).select_from(db.IssuedDocument))
        events = s.scalar(select(func.count()).select_from(db.AuditEvent)
                          .where(db.AuditEvent.action == "document.rendu"))
    files = len(list(app.extensions["forms_service.settings"].storage_dir.rglob("*.*")))
    return docs, events, files


def names(body: bytes) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(body)) as z:
        return z.namelist()


def test_each_document_has_its_audit_event(client, app):
    items = [sample(FORM)] * 3
    assert client.post(BATCH_URL, json=items).status_code == 200
    assert client.post(f"/api/v1/forms/{FORM}/render", json=sample(FORM)).status_code == 200
    with app.app_context(), db.session() as s:
        docs = set(s.scalars(select(db.IssuedDocument.document_id)))
        events = set(s.scalars(select(db.AuditEvent.document_id)))
    assert len(docs) == 4 and events == docs
    assert counts(app) == (4, 4, 4)


def test_a_failure_while_storing_issues_nothing(app):
    """The storage cannot be written (a file where the form's folder goes): the batch
    fails and no row, audit event or file is left."""
    storage = app.extensions["forms_service.settings"].storage_dir
    storage.mkdir(parents=True, exist_ok=True)
    (storage / FORM).write_bytes(b"")  # mkdir of <storage>/fiche-liaison/<yyyy> fails
    service = get_service(app)
    with pytest.raises(OSError):
        service.render_batch(FORM, [sample(FORM)] * 3, fmt="docx")
    assert counts(app) == (0, 0, 0)  # the blocking file has no extension


def test_a_failure_in_the_transaction_removes_the_files(app):
    """A row that cannot be written (a document id already taken) rolls back every
    row and event of the batch and removes every file written for it."""
    from sqlalchemy.exc import IntegrityError

    service = get_service(app)
    with app.app_context():
        docs = [service._make(service.prepare(FORM, sample(FORM)), fmt="docx", fillable=False)
                for _ in range(3)]
        docs[2].document_id = docs[0].document_id
        with pytest.raises(IntegrityError):
            service._issue(docs, actor="test", idem=None, fillable=False, strict=False,
                           batch=True)
    assert counts(app) == (0, 0, 0)


def test_same_key_same_body_gives_the_same_documents(client, app):
    items = [dict(sample(FORM), mds=f"MDS {i}") for i in range(3)]
    headers = {"Idempotency-Key": "lot-1"}
    first = client.post(BATCH_URL, json=items, headers=headers)
    second = client.post(BATCH_URL, json=items, headers=headers)
    assert first.status_code == second.status_code == 200
    assert first.data == second.data
    assert counts(app) == (3, 3, 3)
    # another key, or none: new documents
    third = client.post(BATCH_URL, json=items, headers={"Idempotency-Key": "lot-2"})
    assert set(names(third.data)).isdisjoint(set(names(first.data)) - {"findings.json"})
    assert counts(app) == (6, 6, 6)


def test_single_render_with_a_key_is_idempotent(client, app):
    url = f"/api/v1/forms/{FORM}/render"
    headers = {"Idempotency-Key": "doc-1"}
    a = client.post(url, json=sample(FORM), headers=headers)
    b = client.post(url, json=sample(FORM), headers=headers)
    assert a.headers["X-Document-Id"] == b.headers["X-Document-Id"]
    assert a.data == b.data and a.headers["X-Forms-Findings"] == b.headers["X-Forms-Findings"]
    assert counts(app)[0] == 1


def test_same_key_other_body_is_409_in_french(client, app):
    headers = {"Idempotency-Key": "lot-1"}
    assert client.post(BATCH_URL, json=[sample(FORM)], headers=headers).status_code == 200
    r = client.post(BATCH_URL, json=[dict(sample(FORM), mds="autre")], headers=headers)
    assert r.status_code == 409
    (e,) = r.get_json()["errors"]
    assert e["rule"] == "cle_idempotence_reutilisee" and e["path"] == "Idempotency-Key"
    assert "déjà servi" in e["message"]
    # the same key on the single render is another request too
    r = client.post(f"/api/v1/forms/{FORM}/render", json=sample(FORM), headers=headers)
    assert r.status_code == 409


def test_a_key_older_than_its_lifetime_names_a_new_request(client, app):
    """A day later the same key is a new request (not a 409, not the old documents), and
    writing it removes the expired keys."""
    import datetime as dt

    headers = {"Idempotency-Key": "lot-du-jour"}
    first = client.post(BATCH_URL, json=[sample(FORM)], headers=headers)
    assert first.status_code == 200
    old = client.post(BATCH_URL, json=[sample(FORM)], headers={"Idempotency-Key": "lot-ancien"})
    assert old.status_code == 200
    with app.app_context(), db.session() as s:
        for row in s.scalars(select(db.IdempotencyKey)):
            row.created_at = row.created_at - batches.KEY_LIFETIME - dt.timedelta(minutes=1)
    later = client.post(BATCH_URL, json=[dict(sample(FORM), mds="autre")], headers=headers)
    assert later.status_code == 200
    assert set(names(later.data)).isdisjoint(set(names(first.data)) - {"findings.json"})
    with app.app_context(), db.session() as s:
        assert list(s.scalars(select(db.IdempotencyKey.key))) == ["lot-du-jour"]
    again = client.post(BATCH_URL, json=[dict(sample(FORM), mds="autre")], headers=headers)
    assert again.data == later.data          # within its lifetime the new key replays


def test_keys_belong_to_their_caller(app, api_key):
    k1, k2 = api_key("render", name="mds-arras"), api_key("render", name="slai")
    c = app.test_client()
    one = c.post(BATCH_URL, json=[sample(FORM)], headers={"X-API-Key": k1, "Idempotency-Key": "x"})
    two = c.post(BATCH_URL, json=[sample(FORM)], headers={"X-API-Key": k2, "Idempotency-Key": "x"})
    assert one.status_code == two.status_code == 200
    assert names(one.data) != names(two.data)


@pytest.mark.parametrize("key", ["", "é", "a b", "x" * 129])
def test_invalid_keys(client, key):
    r = client.post(BATCH_URL, json=[sample(FORM)], headers={"Idempotency-Key": key})
    assert r.status_code == 400
    assert r.get_json()["errors"][0]["rule"] == "cle_idempotence_invalide"


def test_sweep_renames_committed_and_removes_uncommitted_parts(client, app):
    assert client.post(BATCH_URL, json=[sample(FORM)] * 2).status_code == 200
    storage = app.extensions["forms_service.settings"].storage_dir
    committed = sorted(storage.rglob("*.docx"))
    # As if killed between the commit and the renames, and before another commit.
    for path in committed:
        path.rename(path.with_name(path.name + ".part"))
    orphan = committed[0].with_name("01AAAAAAAAAAAAAAAAAAAAAAAA.docx.part")
    orphan.write_bytes(b"half")
    with app.app_context():
        assert batches.recover_storage(storage, stale_seconds=0) == {"renamed": 2, "removed": 1}
    assert sorted(storage.rglob("*.docx")) == committed
    assert not list(storage.rglob("*.part"))


def test_sweep_keeps_young_unknown_parts(app, tmp_path):
    storage = app.extensions["forms_service.settings"].storage_dir
    young = storage / FORM / "2026" / "12" / "01BBBBBBBBBBBBBBBBBBBBBBBB.pdf.part"
    young.parent.mkdir(parents=True)
    young.write_bytes(b"in flight")
    with app.app_context():
        assert batches.recover_storage(storage)["removed"] == 0
    assert young.exists()


def test_batch_archive_is_reproducible():
    from forms_service.render.service import RenderedDocument, batch_zip

    docs = [RenderedDocument("01J", FORM, "abc", "f.docx", "x", b"content")]
    assert batch_zip(docs) == batch_zip(docs)

"""The desk's review queue through the test client (issue 11): an agent confirms and
corrects in one action each, the record is validated again and its status follows, every
decision is audited (codes old → new, only « changed » for handwriting), another agent's
lease is refused until it expires, and what another territory holds answers 404.

Records are stored with the ingestion's own ``desk.batches.store_record`` (real SQLite,
real validation); reading scans is the ingestion tests' business.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from forms_service import db
from forms_service.catalogue import catalogue
from parsers.record import Reading, flatten, make_record
from tests.people_data import seed

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "fiche-liaison-demande-appui.json"
#: A 1×1 PNG: what the reader writes as a crop.
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010800000000"
                    "3a7e9b550000000a49444154789c63600000000200015e2f17d20000000049454e44ae426082")


@pytest.fixture
def app(make_app):
    return make_app(REVIEW_SAMPLE_RATE=0)


@pytest.fixture
def people(app):
    return seed(app)


def store(app, *, uncertain: dict[str, tuple], territoire="arrageois", crop=False,
          identified_by="qr", changes: dict | None = None, beneficiary: int | None = None) -> int:
    """A fiche de liaison read back with ``uncertain`` {path: (value, reason)} to review,
    stored as the ingestion stores it; returns its id."""
    from forms_service.desk import batches
    from forms_service.desk.models import Batch

    fd = catalogue.get("fiche-liaison")
    data = json.loads(SAMPLE.read_text("utf-8"))
    data.update(changes or {})
    flat = flatten(fd.model.model_validate(data).model_dump(mode="json"))
    settings = app.extensions["forms_service.settings"]
    readings = {}
    for path, value in flat.items():
        readings[path] = Reading(value)
    for path, (value, reason) in uncertain.items():
        evidence = [{"page": 1, "bbox": [40.0, 100.0, 300.0, 120.0]}]
        if crop:
            target = Path(settings.storage_dir) / "crops" / "test" / f"p1-{path}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(PNG)
            evidence[0]["crop"] = str(target)
        readings[path] = Reading(value, confidence=0.4, needs_review=True, evidence=evidence,
                                 reason=reason)
    record = make_record(fd, source="scan", readings=readings, pages=[
        {"number": 1, "file": "lot.pdf", "file_page": 1, "rotation": 0, "identified_by": identified_by}])
    with app.app_context(), db.session() as s:
        batch = Batch(source="desk", territoire=territoire, created_by="test", status="done")
        s.add(batch)
        s.flush()
        row = batches.store_record(s, record, settings=settings, batch=batch, file=None, ordinal=None,
                                   pages=[(record["pages"][0], None, None)])
        if beneficiary is not None:         # as if its issued document had named it
            row.beneficiary_id = beneficiary
        return row.id


def signed_in(app, login, email):
    client = app.test_client()
    assert login(client, email).status_code == 302
    return client


def post(client, record_id, point, **form):
    page = client.get(f"/slai/verification/{record_id}")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    return client.post(f"/slai/verification/{record_id}", data={"csrf_token": token, "point": point, **form})


def events(app, record_id):
    from forms_service.db.models import AuditEvent

    with app.app_context(), db.session() as s:
        rows = s.scalars(select(AuditEvent).where(AuditEvent.object_type == "enregistrement",
                                                  AuditEvent.object_id == str(record_id),
                                                  AuditEvent.action.like("enregistrement.c%"))
                         .order_by(AuditEvent.id)).all()
        return [(e.actor, e.action, e.detail) for e in rows]


def record_row(app, record_id):
    with app.app_context(), db.session() as s:
        row = s.get(db.Record, record_id)
        s.expunge(row)
        return row


def test_an_agent_identifies_confirms_and_corrects_and_the_status_follows(app, people, login, monkeypatch):
    from forms_service.desk import records

    reviewed = []
    monkeypatch.setattr(records, "on_record_reviewed", [lambda s, row: reviewed.append(row.id)])
    rid = store(app, crop=True, uncertain={
        "objet": (["demande_appui", "passage_ep"], "Deux cases cochées"),
        "beneficiaire.nom": ("BENALT", "Écriture manuscrite à relire"),
        "referent.type": ("solidarite", "Case peu marquée"),
    })
    assert record_row(app, rid).review == "pending" and record_row(app, rid).status == "needs_review"

    # another territory's agent sees nothing of it: not the record, its crops, its batch
    other = signed_in(app, login, "agent.art@t.example")
    assert other.get(f"/slai/verification/{rid}").status_code == 404
    assert other.get(f"/slai/enregistrements/{rid}/recadrages/1.png").status_code == 404
    assert f"n° {rid}" not in other.get("/slai/verification").get_data(as_text=True)
    assert other.get("/slai/lots/1").status_code == 404

    agent = signed_in(app, login, "agent.arr@t.example")
    assert agent.get("/slai/lots/1").status_code == 200
    state = agent.get("/slai/lots/1/etat").get_json()
    assert state["records"] == [rid] and state["status"] == "done"

    # the queue lists it, « suivant » opens it, the page shows the item, its reason and shortcuts
    queue = agent.get("/slai/verification").get_data(as_text=True)
    assert f"Enregistrement n° {rid}" in queue and "Bénéficiaire à identifier" in queue
    assert agent.get("/slai/verification/suivant").headers["Location"].endswith(f"/slai/verification/{rid}")
    page = agent.get(f"/slai/verification/{rid}").get_data(as_text=True)
    assert "Bénéficiaire à identifier" in page and "<kbd>Entrée</kbd>" in page and "<kbd>N</kbd>" in page
    assert "NOM1 Prenom1" in page and "NOM3" not in page        # the artois beneficiary is not offered

    # a beneficiary the agent may not see is refused as not found; theirs is taken
    assert post(agent, rid, "beneficiaire", valeur=people["beneficiaries"]["artois"]).status_code == 404
    r = post(agent, rid, "beneficiaire", valeur=people["beneficiaries"]["ref1_a"])
    assert r.status_code == 303 and r.headers["Location"].endswith(f"/slai/verification/{rid}")
    assert record_row(app, rid).beneficiary_id == people["beneficiaries"]["ref1_a"]

    # the next item, in the form's order, a box field: the crop beside the proposal, numbered choices
    page = agent.get(f"/slai/verification/{rid}").get_data(as_text=True)
    assert "Case peu marquée" in page and f"/slai/enregistrements/{rid}/recadrages/" in page
    crop_url = re.search(r'src="(/slai/enregistrements/\d+/recadrages/\d+\.png)"', page).group(1)
    crop = agent.get(crop_url)
    assert crop.status_code == 200 and crop.mimetype == "image/png"
    assert crop.headers["Content-Disposition"].startswith("inline; filename=")
    assert 'data-touche="1"' in page
    assert post(agent, rid, "champ:referent.type", valeur="solidarite").status_code == 303      # confirmed
    assert post(agent, rid, "champ:beneficiaire.nom", valeur="BENALI").status_code == 303      # corrected
    r = post(agent, rid, "champ:objet", valeur=["demande_appui"])                              # corrected
    assert r.status_code == 303 and "/slai/verification/suivant" in r.headers["Location"]

    row = record_row(app, rid)
    assert row.review == "done" and row.status == "valid" and row.record["status"] == "valid"
    assert row.record["fields"]["objet"] == {**row.record["fields"]["objet"], "value": ["demande_appui"],
                                             "needs_review": False}
    assert row.record["fields"]["beneficiaire.nom"]["value"] == "BENALI"
    assert row.review_lease_by is None and row.reviewed_by == f"user:{people['ids']['agent.arr@t.example']}"
    assert reviewed == [rid]                                    # the circuit's hooks go on, once

    audit = events(app, rid)
    actor = f"user:{people['ids']['agent.arr@t.example']}"
    assert [(a, action, d["item"], d.get("path")) for a, action, d in audit] == [
        (actor, "enregistrement.corrige", "beneficiaire", None),
        (actor, "enregistrement.confirme", "champ", "referent.type"),
        (actor, "enregistrement.corrige", "champ", "beneficiaire.nom"),
        (actor, "enregistrement.corrige", "champ", "objet"),
    ]
    assert audit[0][2]["old"] is None and audit[0][2]["new"] == people["beneficiaries"]["ref1_a"]
    assert audit[1][2]["old"] == audit[1][2]["new"] == "solidarite"
    assert audit[2][2]["changed"] is True and "old" not in audit[2][2]        # handwriting stays out
    assert audit[3][2]["old"] == ["demande_appui", "passage_ep"] and audit[3][2]["new"] == ["demande_appui"]
    assert "BENAL" not in json.dumps([d for _, _, d in audit])
    assert audit[-1][2]["status"] == "valid" and audit[-1][2]["review"] == "done"

    # nothing left: the queue is empty, the item cannot be settled twice
    assert "Rien à vérifier" in agent.get("/slai/verification").get_data(as_text=True)
    assert agent.get(f"/slai/verification/{rid}").status_code == 302


def test_another_agents_lease_is_refused_until_it_expires(make_app, db_url, login):
    """On SQLite and on PostgreSQL: the lease is one conditional UPDATE."""
    from forms_service.accounts import users

    app = make_app(REVIEW_SAMPLE_RATE=0, database_url=db_url)
    people = seed(app)
    rid = store(app, uncertain={"referent.type": ("solidarite", "Case peu marquée")},
                beneficiary=people["beneficiaries"]["ref1_a"])
    with app.app_context(), db.session() as s:
        users.save_user(s, "agent2.arr@t.example", ["agent_slai"], password="mot-de-passe-de-test",
                        territoire="arrageois")
    first = signed_in(app, login, "agent.arr@t.example")
    second = signed_in(app, login, "agent2.arr@t.example")
    assert first.get(f"/slai/verification/{rid}").status_code == 200
    refused = second.get(f"/slai/verification/{rid}")
    assert refused.status_code == 409 and "en cours de vérification par un autre agent" in refused.get_data(as_text=True)
    assert "en cours par un autre agent" in second.get("/slai/verification").get_data(as_text=True)
    assert second.get("/slai/verification/suivant").headers["Location"].endswith("/slai/verification")

    with app.app_context(), db.session() as s:                       # ten minutes later
        row = s.get(db.Record, rid)
        row.review_lease_until = row.review_lease_until - timedelta(minutes=11)
    assert second.get(f"/slai/verification/{rid}").status_code == 200
    assert first.get(f"/slai/verification/{rid}").status_code == 409   # now the second holds it
    assert post(second, rid, "champ:referent.type", valeur="solidarite").status_code == 303
    assert record_row(app, rid).review == "done"


def test_sampled_records_measure_the_error_rate(make_app, login):
    app = make_app(REVIEW_SAMPLE_RATE=1)
    people = seed(app)
    first, second = (store(app, uncertain={}, beneficiary=people["beneficiaries"]["ref1_a"])
                     for _ in range(2))
    assert record_row(app, first).sampled and record_row(app, first).review == "pending"
    agent = signed_in(app, login, "agent.arr@t.example")
    page = agent.get(f"/slai/verification/{first}").get_data(as_text=True)
    assert "Contrôle par échantillon" in page and "pas encore mesuré" in agent.get("/slai/").get_data(as_text=True)
    assert post(agent, first, "echantillon").status_code == 303                        # all right
    assert post(agent, second, "echantillon", champ="referent.type").status_code == 303    # one is wrong
    page = agent.get(f"/slai/verification/{second}").get_data(as_text=True)
    assert "contrôle par échantillon : indiquez la valeur juste" in page
    assert post(agent, second, "champ:referent.type", valeur="professionnel").status_code == 303
    assert record_row(app, second).record["fields"]["referent.type"]["value"] == "professionnel"
    assert record_row(app, second).review == "done"
    home = agent.get("/slai/").get_data(as_text=True)
    assert "50.0 %" in home and "1 corrigé sur 2 enregistrements" in home
    flagged, corrected = (d for _, _, d in events(app, second))
    assert flagged == {**flagged, "item": "echantillon", "path": "referent.type"}
    assert corrected == {**corrected, "item": "champ", "old": "solidarite", "new": "professionnel"}


def test_duplicate_identification_unknown_page_and_a_correction_breaking_a_rule(app, people, login):
    from PIL import Image
    import io

    from forms_service.desk import storage
    from forms_service.desk.models import Batch, BatchFile, BatchPage

    ben = people["beneficiaries"]["ref1_a"]
    first = store(app, uncertain={}, beneficiary=ben)
    rescan = store(app, uncertain={}, beneficiary=ben, identified_by="content")
    with app.app_context(), db.session() as s:            # as the ingestion flags a rescan
        s.get(db.Record, rescan).probable_duplicate_of_id = first
        s.get(db.Record, rescan).review = "pending"
        buf = io.BytesIO()
        Image.new("L", (620, 877), 240).save(buf, "PNG")
        settings = app.extensions["forms_service.settings"]
        digest, rel = storage.put(settings, buf.getvalue())
        batch = Batch(source="desk", territoire="arrageois", created_by="test", status="done")
        s.add(batch)
        s.flush()
        f = BatchFile(batch_id=batch.id, position=0, name="courrier.png", sha256=digest, size=len(buf.getvalue()),
                      kind="png", stored_path=rel, page_count=1, status="read")
        s.add(f)
        s.flush()
        unknown = BatchPage(batch_id=batch.id, file_id=f.id, file_page=1, status="unknown",
                            message="Page non reconnue (au plus près : CER, page 2)")
        s.add(unknown)
        s.flush()
        page_id, batch_id = unknown.id, batch.id
    agent = signed_in(app, login, "agent.arr@t.example")
    queue = agent.get("/slai/verification").get_data(as_text=True)
    # worst first: the probable duplicate (30 + 5), then the unknown page (20)
    assert queue.index(f"Enregistrement n° {rescan}") < queue.index(f"Page n° {page_id}")
    assert "Doublon probable" in queue and "Page non reconnue" in queue

    page = agent.get(f"/slai/verification/{rescan}").get_data(as_text=True)
    assert "Doublon probable" in page and f"n° {first}" in page
    assert post(agent, rescan, "doublon", action="corriger").status_code == 303      # not a duplicate
    assert record_row(app, rescan).probable_duplicate_of_id is None
    assert "Identifié par le contenu" in agent.get(f"/slai/verification/{rescan}").get_data(as_text=True)
    assert post(agent, rescan, "identification", action="corriger").status_code == 303   # not this form
    row = record_row(app, rescan)
    assert row.review == "done" and row.status == "invalid"
    assert [e["rule"] for e in row.record["validation"]["errors"]] == ["identification_refusee"]
    denied, refused = (d for _, _, d in events(app, rescan))
    assert denied == {**denied, "item": "doublon", "old": first, "new": None}
    assert refused == {**refused, "item": "identification", "status": "invalid"}

    # « page non reconnue »: the page shown, the reader's guesses, confirmed once
    page = agent.get(f"/slai/verification/pages/{page_id}").get_data(as_text=True)
    assert "au plus près : CER, page 2" in page
    image = agent.get(f"/slai/lots/{batch_id}/pages/{page_id}.png")
    assert image.status_code == 200 and image.mimetype == "image/png"
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert agent.post(f"/slai/verification/pages/{page_id}", data={"csrf_token": token}).status_code == 303
    assert f"Page n° {page_id}" not in agent.get("/slai/verification").get_data(as_text=True)
    assert agent.post(f"/slai/verification/pages/{page_id}", data={"csrf_token": token}).status_code == 404
    other = signed_in(app, login, "agent.art@t.example")
    assert other.get(f"/slai/lots/{batch_id}/pages/{page_id}.png").status_code == 404

    # a correction that breaks a rule: the record is invalid
    rid = store(app, uncertain={"cer.date_fin": ("2011-07-09", "Date manuscrite à relire")},
                beneficiary=people["beneficiaries"]["ref1_a"])
    page = agent.get(f"/slai/verification/{rid}").get_data(as_text=True)
    assert 'value="09/07/2011"' in page                                   # dates shown the French way
    assert post(agent, rid, "champ:cer.date_fin", valeur="31/02/2011").status_code == 400   # no such date
    assert post(agent, rid, "champ:cer.date_fin", valeur="01/01/2010").status_code == 303   # before the start
    row = record_row(app, rid)
    assert row.review == "done" and row.status == "invalid" and not row.record["validation"]["valid"]
    assert any(e["path"].startswith("cer") for e in row.record["validation"]["errors"])
    (_, action, detail), = events(app, rid)
    assert action == "enregistrement.corrige" and detail == {**detail, "changed": True, "status": "invalid"}


def test_the_upload_form_works_without_javascript(make_app, login):
    """The plain form: multipart, its CSRF token, the batches' own size limit (not
    MAX_CONTENT_LENGTH); the batch page refreshes through <noscript><meta refresh>."""
    import io

    from PIL import Image

    app = make_app(MAX_CONTENT_LENGTH=2000, MAX_BATCH_BYTES=200_000)
    seed(app)
    agent = signed_in(app, login, "agent.arr@t.example")
    home = agent.get("/slai/").get_data(as_text=True)
    assert 'enctype="multipart/form-data"' in home and 'type="file" id="fichiers" name="fichiers" multiple' in home
    token = re.search(r'name="csrf_token" value="([^"]+)"', home).group(1)
    buf = io.BytesIO()
    Image.effect_noise((200, 200), 60).save(buf, "PNG")          # larger than MAX_CONTENT_LENGTH
    scan = buf.getvalue()
    assert 2000 < len(scan) < 200_000

    def upload(data, **extra):
        return agent.post("/slai/lots", content_type="multipart/form-data",
                          data={"fichiers": [(io.BytesIO(data), "scan.png")], **extra})

    assert upload(scan).status_code == 400                        # no CSRF token
    r = upload(scan, csrf_token=token)
    assert r.status_code == 303 and re.search(r"/slai/lots/\d+$", r.headers["Location"])
    batch = agent.get(r.headers["Location"]).get_data(as_text=True)
    assert '<noscript><meta http-equiv="refresh" content="3"></noscript>' in batch
    assert "scan.png" in batch and "en attente" in batch
    assert upload(scan * 100, csrf_token=token).status_code == 413   # above MAX_BATCH_BYTES
    assert agent.post("/slai/lots", data={"csrf_token": token}).status_code == 400   # no file

"""The fiche de liaison's circuit through the API (issue 12): requests of two territories
reach their correspondant's inbox only, an invalid one goes back to its référent and comes
again corrected, every routed request and avis is e-mailed (a real SMTP server), the
correspondant's avis feeds the fiche, a fiche read again adds to its request, and the
circuit's transitions are enforced by the API (409) and by the database itself."""

from __future__ import annotations

import csv
import io

import pytest
import sqlalchemy as sa

from tests.circuit_data import SmtpServer, headers, mail_worker, sample, seed
from tests.desk_queue import stop


def _limit(step: str) -> int:
    """The printed field's max_length for a step's comment (the definition's, not a copy)."""
    from forms_service.circuit.machine import machine
    from forms_service.circuit.service import comment_limit

    return comment_limit(machine().step(step))


@pytest.fixture
def smtp():
    with SmtpServer() as server:
        yield server


@pytest.fixture
def circuit(make_app, smtp, tmp_path):
    """An app whose e-mails go through the task queue to a real worker and SMTP server."""
    app = make_app(SMTP_HOST="127.0.0.1", SMTP_PORT=smtp.port, SMTP_STARTTLS="false",
                   MAIL_FROM="rsa@departement.example", FORMS_SERVICE_PUBLIC_URL="https://rsa.example")
    people = seed(app)
    worker = mail_worker(app, smtp, tmp_path)
    yield app, app.test_client(), people
    stop(worker)


def submit(client, key, beneficiary, fiche, **extra):
    return client.post("/api/v1/requests", json={"beneficiaire": beneficiary, "fiche": fiche, **extra},
                       headers=headers(key))


def inbox(client, key, **query):
    r = client.get("/api/v1/requests", query_string=query, headers=headers(key))
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def test_requests_reach_the_right_inbox_and_come_back_to_the_referent(circuit, smtp):
    app, client, people = circuit
    k, b = people["keys"], people["b"]
    ref_arr, ref_art = k["ref.arr@c.example"], k["ref.art@c.example"]
    corr_arr, corr_art = k["corr.arr@c.example"], k["corr.art@c.example"]

    invalid = sample("suspension")
    invalid["pieces_jointes"]["convocations"] = False
    sent = {
        "suspension": submit(client, ref_arr, b["arr1"], sample("suspension")),
        "reorientation": submit(client, ref_art, b["art1"], sample("reorientation")),
        "actions_cg": submit(client, ref_arr, b["arr2"], sample("actions-cg")),
        "demande_appui": submit(client, ref_art, b["art2"], sample("demande-appui")),
        "invalid": submit(client, ref_arr, b["arr3"], invalid),
    }
    assert {name: r.status_code for name, r in sent.items()} == dict.fromkeys(sent, 201)
    ids = {name: r.get_json()["id"] for name, r in sent.items()}
    assert sent["suspension"].get_json()["types"] == ["suspension"]
    assert sent["actions_cg"].get_json()["types"] == ["actions_cg"]

    # each valid request in its territory's correspondant's inbox, and nowhere else
    arr = inbox(client, corr_arr, etat="avis_correspondant")
    art = inbox(client, corr_art, etat="avis_correspondant")
    assert {i["id"] for i in arr["items"]} == {ids["suspension"], ids["actions_cg"]}
    assert {i["id"] for i in art["items"]} == {ids["reorientation"], ids["demande_appui"]}
    assert arr["total"] == 2 and arr["pages"] == 1 and arr["page"] == 1
    assert inbox(client, corr_art, type="suspension")["total"] == 0
    assert client.get(f"/api/v1/requests/{ids['suspension']}",
                      headers=headers(corr_art)).status_code == 404

    # the invalid one is back with its référent, the broken rule in French
    bad = client.get(f"/api/v1/requests/{ids['invalid']}", headers=headers(ref_arr)).get_json()
    assert bad["etat"] == "a_corriger"
    assert [p["rule"] for p in bad["problems"]] == ["suspension_convocations_jointes"]
    assert "courriers de convocation" in bad["problems"][0]["message"]
    assert ids["invalid"] not in {i["id"] for i in inbox(client, corr_arr)["items"]
                                  if i["etat"] == "avis_correspondant"}

    # e-mails: one per routed request to its correspondant, the invalid one to its référent
    smtp.wait(5)
    assert sorted(m["subject"] for m in smtp.to("corr.arr@c.example")) == sorted(
        f"Fiche de liaison n° {ids[n]} à examiner" for n in ("suspension", "actions_cg"))
    assert len(smtp.to("corr.art@c.example")) == 2
    back = smtp.to("ref.arr@c.example")
    assert [m["subject"] for m in back] == [f"Fiche de liaison n° {ids['invalid']} à corriger"]
    assert "courriers de convocation doivent être joints" in back[0]["body"]
    assert f"https://rsa.example/mes-demandes/{ids['invalid']}" in back[0]["body"]
    assert "NOM5" not in back[0]["body"] and "7000005" not in back[0]["body"]

    # the référent corrects and sends again: routed, and the history shows both
    corrected = sample("suspension")
    r = client.post(f"/api/v1/requests/{ids['invalid']}/correction", json={"fiche": corrected},
                    headers=headers(ref_arr))
    assert r.status_code == 200, r.get_json()
    again = r.get_json()
    assert again["etat"] == "avis_correspondant" and again["problems"] == []
    assert [(a["etape"], a["choix"]) for a in again["avis"]] == [
        ("routage", "invalide"), ("correction", "renvoyee"), ("routage", "valide")]

    # the correspondant's avis: feeds the fiche's reserved part, goes back to the référent
    r = client.post(f"/api/v1/requests/{ids['suspension']}/avis",
                    json={"etape": "correspondant", "choix": "favorable",
                          "commentaire": "Convocations vérifiées, passage en EP justifié."},
                    headers=headers(corr_arr))
    assert r.status_code == 200, r.get_json()
    done = r.get_json()
    assert done["etat"] == "en_ep"
    assert done["fiche"]["correspondant_avis"]["observation"] == \
        "Convocations vérifiées, passage en EP justifié."
    assert done["fiche"]["correspondant_avis"]["date"]
    mine = client.get(f"/api/v1/requests/{ids['suspension']}", headers=headers(ref_arr)).get_json()
    assert mine["avis"][-1]["choix"] == "favorable" and mine["avis"][-1]["etape"] == "correspondant"
    smtp.wait(5 + 1 + 1)     # the corrected fiche routed, the avis back to the référent
    told = [m for m in smtp.to("ref.arr@c.example") if m["subject"].endswith("avis du correspondant")]
    assert len(told) == 1 and "Favorable" in told[0]["body"]

    # a demande d'appui favoured is treated; the actions CG goes on to the decision
    r = client.post(f"/api/v1/requests/{ids['demande_appui']}/avis",
                    json={"etape": "correspondant", "choix": "favorable"}, headers=headers(corr_art))
    assert r.get_json()["etat"] == "traitee"

    # filters and the CSV export
    assert inbox(client, corr_arr, referent=people["ids"]["ref.arr@c.example"])["total"] == 3
    r = client.get("/api/v1/requests/export.csv", query_string={"etat": "en_ep"},
                   headers=headers(corr_arr))
    assert r.status_code == 200 and r.data.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(r.data.decode("utf-8-sig")), delimiter=";"))
    assert rows[0][:3] == ["id", "etat", "types"]
    assert [row[0] for row in rows[1:]] == [str(ids["suspension"])]


def test_a_fiche_read_again_adds_to_its_request(make_app):
    app = make_app()
    client, people = app.test_client(), seed(app)
    k, b = people["keys"], people["b"]
    with app.app_context():
        from forms_service import db
        with db.session() as s:
            doc = db.IssuedDocument(form_id="fiche-liaison", template_version="x", data={},
                                    file_path="/nonexistent", format="pdf", created_by="test",
                                    beneficiary_id=b["arr1"])
            s.add(doc)
            s.flush()
            document_id = doc.document_id
    first = submit(client, k["ref.arr@c.example"], b["arr1"], sample("actions-cg"),
                   document_id=document_id)
    assert first.status_code == 201
    paper = sample("actions-cg")
    paper["correspondant_avis"] = {"observation": "Avis défavorable : action déjà suivie",
                                   "date": "2026-11-30"}
    again = submit(client, k["agent.arr@c.example"], b["arr1"], paper, document_id=document_id)
    assert again.status_code == 200, again.get_json()
    body = again.get_json()
    assert body["id"] == first.get_json()["id"]
    assert body["etat"] == "traitee"
    assert [(a["etape"], a["choix"], a["source"]) for a in body["avis"]][-1] == \
        ("correspondant", "defavorable", "papier")
    assert inbox(client, k["admin@c.example"])["total"] == 1


def test_a_step_the_circuit_does_not_allow_is_refused_by_api_and_database(make_app, db_url):
    app = make_app(database_url=db_url)
    client, people = app.test_client(), seed(app)
    k, b = people["keys"], people["b"]
    created = submit(client, k["ref.arr@c.example"], b["arr1"], sample("suspension")).get_json()
    rid = created["id"]
    # the EP's avis while the request waits for the correspondant's: 409, one error shape
    r = client.post(f"/api/v1/requests/{rid}/avis", json={"etape": "ep", "choix": "favorable"},
                    headers=headers(k["admin@c.example"]))
    assert r.status_code == 409
    assert r.get_json() == {"errors": [{"path": "etape", "rule": "transition_interdite",
                                        "message": r.get_json()["errors"][0]["message"]}]}
    assert "n'est pas possible" in r.get_json()["errors"][0]["message"]
    # a référent may not give the correspondant's avis: 403; a comment too long to print: 400
    r = client.post(f"/api/v1/requests/{rid}/avis",
                    json={"etape": "correspondant", "choix": "favorable"},
                    headers=headers(k["ref.arr@c.example"]))
    assert r.status_code == 403
    r = client.post(f"/api/v1/requests/{rid}/avis",
                    json={"etape": "correspondant", "choix": "favorable",
                          "commentaire": "x" * (_limit("correspondant") + 1)},
                    headers=headers(k["corr.arr@c.example"]))
    assert r.status_code == 400 and r.get_json()["errors"][0]["rule"] == "commentaire_trop_long"

    # the database refuses an impossible state, whatever writes it
    with app.app_context():
        from forms_service import db
        engine = db.get_database().engine
    with pytest.raises(sa.exc.DatabaseError):
        with engine.begin() as c:
            c.execute(sa.text("UPDATE demande SET etat = 'structure' WHERE id = :id"), {"id": rid})
    with pytest.raises(sa.exc.IntegrityError):
        with engine.begin() as c:
            c.execute(sa.text("UPDATE demande SET etat = 'inconnu' WHERE id = :id"), {"id": rid})
    with engine.begin() as c:   # an allowed one passes
        c.execute(sa.text("UPDATE demande SET etat = 'en_ep' WHERE id = :id"), {"id": rid})
    with pytest.raises(sa.exc.IntegrityError):
        with engine.begin() as c:
            c.execute(sa.text(
                "INSERT INTO avis (demande_id, at, actor, etape, choix, commentaire, etat_avant,"
                " etat_apres, source, problems) VALUES (:id, CURRENT_TIMESTAMP, 'x', 'ep',"
                " 'favorable', '', 'en_ep', 'traitee', 'api', '[]')"), {"id": rid})


def test_the_database_transitions_are_the_state_file_s():
    import importlib.util
    from pathlib import Path

    from forms_service.circuit.machine import machine

    path = Path(__file__).resolve().parent.parent / "forms_service/migrations/versions/0006_circuit.py"
    spec = importlib.util.spec_from_file_location("migration_0006", path)
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    m = machine()
    assert set(migration.TRANSITIONS) == m.transitions
    assert set(migration.STATES) == set(m.states)
    assert set(migration.TYPES) == set(m.types)
    assert set(migration.STEPS) == set(m.steps)


def test_a_record_waiting_at_the_desk_routes_once_reviewed(make_app):
    """A stored fiche whose beneficiary is not identified waits (no request); once the desk
    has reviewed it and named the beneficiary, it becomes a request and is routed."""
    from forms_service import db
    from forms_service.circuit.models import Demande
    from forms_service.desk import batches
    from parsers.record import flatten

    app = make_app()
    people = seed(app)
    fiche = sample("suspension")
    stored = {"form": "fiche-liaison", "document_id": None, "source": "scan", "status": "valid",
              "fields": {p: {"value": v} for p, v in flatten(fiche).items()}}
    with app.app_context():
        with db.session() as s:
            record = db.Record(form_id="fiche-liaison", status="valid", record=stored, source="scan",
                               review="pending")
            s.add(record)
            s.flush()
            for hook in batches.on_record_stored:     # what the desk calls when it stores one
                hook(s, record)
            assert s.query(Demande).count() == 0          # waits at the desk
            record.beneficiary_id, record.review = people["b"]["arr1"], "done"
            batches.record_reviewed(s, record)
            batches.record_reviewed(s, record)            # once only
            demandes = s.query(Demande).all()
            assert [(d.record_id, d.etat, d.types) for d in demandes] == [
                (record.id, "avis_correspondant", ["suspension"])]

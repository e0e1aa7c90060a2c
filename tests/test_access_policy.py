"""The access policy end to end, through the API with real keys acting as each person,
on SQLite and PostgreSQL: a référent sees exactly their beneficiaries (another's: 404 on
the API, the issued document's download and the record); an agent of one territory does
not see another's; the audit lists who viewed what, without personal values."""

from __future__ import annotations

import json

import pytest

from people_data import headers, seed

SAMPLE = json.loads(open("samples/fiche-liaison.json", encoding="utf-8").read())


@pytest.fixture
def world(make_app, db_url):
    app = make_app(database_url=db_url)
    people = seed(app)
    return app, app.test_client(), people


def _get(client, people, who, url):
    return client.get(url, headers=headers(people["keys"][who]))


def _render(client, people, who, beneficiary_id):
    return client.post(f"/api/v1/forms/fiche-liaison/render?format=docx&beneficiaire={beneficiary_id}",
                       headers=headers(people["keys"][who]), json=SAMPLE)


def _record_for(app, document_id):
    from forms_service import db

    with app.app_context(), db.session() as s:
        row = db.Record(form_id="fiche-liaison", document_id=document_id, status="valid",
                        record={"fields": {}}, source="saisie")
        s.add(row)
        s.flush()
        return row.id


def test_a_referent_sees_exactly_their_beneficiaries(world):
    app, client, people = world
    b = people["beneficiaries"]
    listed = _get(client, people, "ref1@t.example", "/api/v1/beneficiaries").get_json()
    assert sorted(i["id"] for i in listed["items"]) == sorted([b["ref1_a"], b["ref1_b"]])
    assert listed["total"] == 2
    assert _get(client, people, "ref1@t.example", f"/api/v1/beneficiaries/{b['ref1_a']}").status_code == 200
    other = _get(client, people, "ref1@t.example", f"/api/v1/beneficiaries/{b['ref2']}")
    absent = _get(client, people, "ref1@t.example", "/api/v1/beneficiaries/999999")
    assert other.status_code == absent.status_code == 404
    assert other.get_json() == absent.get_json()          # existence not revealed
    assert set(other.get_json()["errors"][0]) == {"path", "rule", "message"}
    # the structure sees nothing yet (its roles do not even carry the scope); the administrator all
    structure = _get(client, people, "structure@t.example", "/api/v1/beneficiaries")
    assert structure.status_code == 403 or structure.get_json()["total"] == 0
    assert _get(client, people, "admin@t.example", "/api/v1/beneficiaries").get_json()["total"] == 4


def test_documents_and_records_follow_their_beneficiary(world):
    app, client, people = world
    b = people["beneficiaries"]
    # ref2 may not even print for ref1's beneficiary
    assert _render(client, people, "ref2@t.example", b["ref1_a"]).status_code == 404
    printed = _render(client, people, "ref1@t.example", b["ref1_a"])
    assert printed.status_code == 200
    doc_id = printed.headers["X-Document-Id"]
    record_id = _record_for(app, doc_id)

    mine = _get(client, people, "ref1@t.example", f"/api/v1/documents/{doc_id}")
    assert mine.status_code == 200 and mine.data == printed.data
    assert "attachment" in mine.headers["Content-Disposition"]
    assert _get(client, people, "ref1@t.example", f"/api/v1/records/{record_id}").status_code == 200
    for who in ("ref2@t.example", "agent.art@t.example"):
        assert _get(client, people, who, f"/api/v1/documents/{doc_id}").status_code == 404, who
        assert _get(client, people, who, f"/api/v1/records/{record_id}").status_code == 404, who
    assert _get(client, people, "structure@t.example", f"/api/v1/documents/{doc_id}").status_code in (403, 404)
    # the territory's agent sees the Arrageois document and record
    assert _get(client, people, "agent.arr@t.example", f"/api/v1/documents/{doc_id}").status_code == 200
    assert _get(client, people, "agent.arr@t.example", f"/api/v1/records/{record_id}").status_code == 200


def test_an_agent_sees_only_their_territory(world):
    app, client, people = world
    b = people["beneficiaries"]
    arr = _get(client, people, "agent.arr@t.example", "/api/v1/beneficiaries").get_json()
    art = _get(client, people, "agent.art@t.example", "/api/v1/beneficiaries").get_json()
    assert sorted(i["id"] for i in arr["items"]) == sorted([b["ref1_a"], b["ref2"], b["ref1_b"]])
    assert [i["id"] for i in art["items"]] == [b["artois"]]
    assert _get(client, people, "agent.art@t.example", f"/api/v1/beneficiaries/{b['ref1_a']}").status_code == 404


def test_a_key_with_a_territory_is_limited_to_it(world):
    app, client, people = world
    from forms_service import db
    from forms_service.accounts import keys

    with app.app_context(), db.session() as s:
        _, machine = keys.create_key(s, "systeme-artois", "beneficiaries", territoire="artois")
        _, everything = keys.create_key(s, "systeme", "beneficiaries")
    assert client.get("/api/v1/beneficiaries", headers=headers(machine)).get_json()["total"] == 1
    assert client.get("/api/v1/beneficiaries", headers=headers(everything)).get_json()["total"] == 4


def test_the_audit_lists_who_viewed_what_without_personal_values(world):
    app, client, people = world
    b = people["beneficiaries"]
    _get(client, people, "ref1@t.example", f"/api/v1/beneficiaries/{b['ref1_a']}")
    _get(client, people, "ref1@t.example", f"/api/v1/beneficiaries/{b['ref2']}")   # refused: 404
    doc_id = _render(client, people, "ref1@t.example", b["ref1_a"]).headers["X-Document-Id"]
    _get(client, people, "ref1@t.example", f"/api/v1/documents/{doc_id}")
    ref1 = f"user:{people['ids']['ref1@t.example']}"

    admin = headers(people["keys"]["admin@t.example"])
    viewed = client.get(f"/api/v1/audit?actor={ref1}&action=beneficiaire.consulte", headers=admin).get_json()
    assert [(e["object_type"], e["object_id"]) for e in viewed["items"]] == [("beneficiaire", str(b["ref1_a"]))]
    downloads = client.get(f"/api/v1/audit?object_type=document&object_id={doc_id}", headers=admin).get_json()
    assert {e["action"] for e in downloads["items"]} == {"document.rendu", "document.telecharge"}
    assert all(e["actor"] == ref1 for e in downloads["items"])
    page = client.get("/api/v1/audit?per_page=2&page=1", headers=admin).get_json()
    assert len(page["items"]) == 2 and page["total"] > 2
    everything = json.dumps(client.get("/api/v1/audit?per_page=500", headers=admin).get_json())
    for value in ("NOM1", "Prenom1", "7000001", "rue du Test", SAMPLE["beneficiaire"]["nom"],
                  "ref1@t.example"):
        assert value not in everything, value
    # only administrators read it
    assert client.get("/api/v1/audit", headers=headers(people["keys"]["ref1@t.example"])).status_code == 403


def test_audit_events_outlive_their_object(world):
    app, client, people = world
    from forms_service import db
    from forms_service.beneficiaries.models import Beneficiary

    b = people["beneficiaries"]["artois"]
    _get(client, people, "admin@t.example", f"/api/v1/beneficiaries/{b}")
    with app.app_context(), db.session() as s:
        s.delete(s.get(Beneficiary, b))
    events = client.get(f"/api/v1/audit?object_type=beneficiaire&object_id={b}",
                        headers=headers(people["keys"]["admin@t.example"])).get_json()
    assert events["total"] == 1

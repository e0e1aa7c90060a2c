"""The import of beneficiaries (CSV and JSON) and the directory file, on SQLite and PostgreSQL.

A 2 000-line CSV with 20 bad lines creates 1 980 beneficiaries, reports the 20 with
their line and French reason, and changes nothing when run again; the directory
export reads back unchanged; both write history / audit without personal values.
"""

from __future__ import annotations

import csv
import io
import json
import time

import pytest
from sqlalchemy import func, select

from people_data import DEMO, headers, person, seed

COLUMNS = ["num_caf", "nom", "prenom", "date_naissance", "adresse", "territoire", "mds",
           "orientation.sphere", "orientation.date_decision", "referent", "cer.type",
           "cer.date_debut", "cer.date_fin", "cer.date_signature"]


@pytest.fixture
def people_app(make_app, db_url):
    return make_app(database_url=db_url)


def _big_csv(n: int = 2000, bad_every: int = 100) -> tuple[bytes, dict[int, str]]:
    """``n`` lines, one bad in ``bad_every`` (each kind of mistake in turn); the expected
    refused line numbers (header = line 1) and the field each is refused for."""
    out = io.StringIO()
    w = csv.writer(out, delimiter=";")
    w.writerow(COLUMNS)
    bad: dict[int, str] = {}
    mistakes = [("date_naissance", "31/02/1980"), ("territoire", "picardie"),
                ("referent", "inconnu@t.example"), ("orientation.sphere", "sociale"),
                ("num_caf", "12AB")]
    for i in range(n):
        row = {"num_caf": str(8000000 + i), "nom": f"NOM{i}", "prenom": f"Prénom{i}",
               "date_naissance": "1975-03-0%d" % (1 + i % 9), "adresse": f"{i} rue du Lot, 62000 Arras",
               "territoire": "arrageois", "mds": "", "orientation.sphere": "solidarite",
               "orientation.date_decision": "2026-01-15",
               "referent": "ref1@t.example" if i % 2 else "ref2@t.example",
               "cer.type": "cers" if i % 3 == 0 else "", "cer.date_debut": "2026-02-01" if i % 3 == 0 else "",
               "cer.date_fin": "2026-08-01" if i % 3 == 0 else "", "cer.date_signature": ""}
        if i % bad_every == 7:
            column, value = mistakes[(i // bad_every) % len(mistakes)]
            row[column] = value
            bad[i + 2] = column
        w.writerow([row[c] for c in COLUMNS])
    return ("\ufeff" + out.getvalue()).encode("utf-8"), bad


def _count(app) -> int:
    from forms_service import db
    from forms_service.beneficiaries.models import Beneficiary

    with app.app_context(), db.session() as s:
        return s.scalar(select(func.count()).select_from(Beneficiary))


def test_2000_line_csv_with_20_bad_lines_then_again(people_app):
    people = seed(people_app)
    before = _count(people_app)
    content, bad = _big_csv()
    assert len(bad) == 20
    client = people_app.test_client()
    admin = headers(people["keys"]["admin@t.example"])
    started = time.perf_counter()
    first = client.post("/api/v1/beneficiaries/import", headers=admin,
                        data={"file": (io.BytesIO(content), "export.csv")})
    elapsed = time.perf_counter() - started
    assert first.status_code == 200, first.get_json()
    report = first.get_json()
    assert (report["created"], report["refused"], report["updated"]) == (1980, 20, 0)
    refused = {ln["line"]: ln["errors"] for ln in report["lines"] if ln["status"] == "refused"}
    assert set(refused) == set(bad)
    for line, errors in refused.items():
        assert errors[0]["path"] == bad[line] and errors[0]["message"].startswith(bad[line] + " :")
    assert _count(people_app) == before + 1980
    assert elapsed < 20, f"import took {elapsed:.1f} s"

    again = client.post("/api/v1/beneficiaries/import", headers=admin,
                        data={"file": (io.BytesIO(content), "export.csv")}).get_json()
    assert (again["created"], again["updated"], again["unchanged"], again["refused"]) == (0, 0, 1980, 20)
    assert _count(people_app) == before + 1980
    # the report and the audit hold ids and codes, never a value of the file
    body = json.dumps(report) + json.dumps(client.get("/api/v1/audit", headers=admin).get_json())
    assert "NOM1" not in body and "8000001" not in body and "rue du Lot" not in body


def test_line_reasons_in_french_and_updates(people_app):
    seed(people_app)
    from forms_service import db
    from forms_service.beneficiaries.importer import import_beneficiaries

    lines = [person(10, "lens-lievin", None),                        # two MDS: mds required
             person(11, "lens-lievin", None, mds="mds-lievin"),
             person(12, "arrageois", "agent.arr@t.example"),          # not a référent
             person(13, "arrageois", None, mds="mds-artois"),         # another territory's MDS
             person(11, "lens-lievin", None, mds="mds-lievin"),       # same person again
             {"nom": "X"}]
    with people_app.app_context(), db.session() as s:
        report = import_beneficiaries(s, json.dumps(lines).encode(), "b.json").as_dict()
    statuses = [ln["status"] for ln in report["lines"]]
    assert statuses == ["refused", "created", "refused", "refused", "refused", "refused"]
    messages = [ln.get("errors", [{}])[0].get("message", "") for ln in report["lines"]]
    assert "plusieurs MDS" in messages[0]
    assert "rôle « referent »" in messages[2]
    assert "pas une MDS de ce territoire" in messages[3]
    assert "ligne 2" in messages[4]
    assert {e["path"] for e in report["lines"][5]["errors"]} >= {"num_caf", "date_naissance"}
    # a change updates, the same content is unchanged
    changed = [person(11, "lens-lievin", "ref1@t.example", mds="mds-lievin")]
    with people_app.app_context(), db.session() as s:
        assert import_beneficiaries(s, json.dumps(changed).encode(), "b.json").lines[0].status == "updated"
        assert import_beneficiaries(s, json.dumps(changed).encode(), "b.json").lines[0].status == "unchanged"


def test_comma_csv_without_bom_and_missing_columns(people_app):
    seed(people_app)
    from forms_service import db
    from forms_service.beneficiaries.importer import import_beneficiaries
    from forms_service.errors import BadRequest

    text = ("num_caf,nom,prenom,date_naissance,adresse,territoire,orientation.sphere,cer.type\n"
            "9100001,DUPONT,Lou,17/05/1981,\"1 rue A, Arras\",arrageois,professionnelle,cerp\n")
    with people_app.app_context(), db.session() as s:
        report = import_beneficiaries(s, text.encode(), "x.csv")
        assert report.lines[0].status == "created", report.as_dict()
        with pytest.raises(BadRequest, match="Colonnes manquantes.*territoire"):
            import_beneficiaries(s, b"num_caf;nom;prenom;date_naissance;adresse\n1;a;b;c;d\n", "y.csv")


def test_import_needs_an_administrator(people_app):
    people = seed(people_app)
    client = people_app.test_client()
    response = client.post("/api/v1/beneficiaries/import", headers=headers(people["keys"]["ref1@t.example"]),
                           data=json.dumps([]), content_type="application/json")
    assert response.status_code == 403
    assert response.get_json()["errors"][0]["rule"] in ("administrateur_requis", "portee_manquante")


def test_directory_import_export_idempotent_with_history(runner, tmp_path):
    out = tmp_path / "annuaire.yaml"
    first = runner.run("directory", "import", DEMO / "annuaire.yaml")
    assert first.exit_code == 0, first.output
    assert "0 modifié(s)" in first.output
    assert runner.run("directory", "export", out).exit_code == 0
    again = runner.run("directory", "import", out)
    assert "0 créé(s), 0 modifié(s)" in again.output
    assert out.read_text("utf-8") == runner.run("directory", "export").output
    # an edit is one history row, old → new; e-mail lists are recorded without their values
    edited = out.read_text("utf-8").replace("nom: MDS du Ternois", "nom: MDS du Ternois (Saint-Pol)")
    edited = edited.replace("correspondant.arrageois@demo.example", "autre@demo.example")
    out.write_text(edited, "utf-8")
    assert "2 modifié(s)" in runner.run("directory", "import", out).output
    history = json.loads(runner.run("directory", "history", "--json").output)
    assert history[0]["object_code"] in ("mds-ternois", "arrageois")
    names = {h["object_code"]: h for h in history[:2]}
    assert names["mds-ternois"]["old"] == "MDS du Ternois"
    assert names["mds-ternois"]["new"] == "MDS du Ternois (Saint-Pol)"
    assert names["arrageois"]["field"] == "contacts" and names["arrageois"]["new"] is None
    bad = tmp_path / "bad.yaml"
    bad.write_text("territoires:\n  - code: picardie\n    nom: P\n", "utf-8")
    result = runner.run("directory", "import", bad)
    assert result.exit_code == 2 and "territoires.0.code" in result.output


def test_demo_load_prints_accounts(runner):
    result = runner.run("demo", "load")
    assert result.exit_code == 0, result.output
    assert "admin@demo.example" in result.output and "demo-admin-2026" in result.output
    assert "16 créé(s)" in result.output and "0 refusé(s)" in result.output
    again = runner.run("demo", "load")
    assert "16 inchangé(s)" in again.output
    listed = runner.run("user", "list", "--json")
    roles = {r for u in json.loads(listed.output) for r in u["roles"]}
    from forms_service.principal import ROLES
    assert roles == set(ROLES)

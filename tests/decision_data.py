"""Set-up shared by the decision and structure tests (issue 13): the circuit tests' people
(tests/circuit_data.py) plus a decideur per territory and structure accounts, and requests
brought to the Président's decision (the correspondant's favourable avis on an actions CG or
an avenant request: no EP needed)."""

from __future__ import annotations

from tests.circuit_data import PASSWORD, headers, sample, seed
from tests.conftest import csrf_token

#: email → (roles, territoire, organisme)
MORE_PEOPLE = {
    "dec.arr@c.example": (["decideur"], "arrageois", None),
    "dec.art@c.example": (["decideur"], "artois", None),
    # the demo directory's action CG structures (samples/demo/annuaire.yaml)
    "struct.arr@c.example": (["structure"], None, "atelier-arras"),
    "struct.art@c.example": (["structure"], None, "chantier-artois"),
}
ATELIER = "Atelier d'insertion d'Arras (fictif)"


def seed_all(app) -> dict:
    from forms_service import db
    from forms_service.accounts import keys, users

    people = seed(app)
    with app.app_context(), db.session() as s:
        for email, (roles, territoire, organisme) in MORE_PEOPLE.items():
            people["ids"][email] = users.save_user(s, email, roles, password=PASSWORD,
                                                   territoire=territoire, organisme=organisme).id
            _, people["keys"][email] = keys.create_key(s, email.split("@")[0], "requests",
                                                       user_email=email)
    return people


def submit(client, key, beneficiary, fiche) -> int:
    r = client.post("/api/v1/requests", json={"beneficiaire": beneficiary, "fiche": fiche},
                    headers=headers(key))
    assert r.status_code == 201, r.get_json()
    return r.get_json()["id"]


def to_decision(client, people, beneficiary, name: str) -> int:
    """A request of ``sample(name)`` by ref.arr, favoured by the correspondant: at ``decision``."""
    k = people["keys"]
    rid = submit(client, k["ref.arr@c.example"], people["b"][beneficiary], sample(name))
    r = client.post(f"/api/v1/requests/{rid}/avis", headers=headers(k["corr.arr@c.example"]),
                    json={"etape": "correspondant", "choix": "favorable", "commentaire": "Dossier complet."})
    assert r.status_code == 200 and r.get_json()["etat"] == "decision", r.get_json()
    return rid


def login(client, email):
    token = csrf_token(client.get("/connexion").get_data(as_text=True))
    r = client.post("/connexion", data={"email": email, "mot_de_passe": PASSWORD, "csrf_token": token})
    assert r.status_code == 302
    return client


def request_view(client, people, rid, email="admin@c.example") -> dict:
    r = client.get(f"/api/v1/requests/{rid}", headers=headers(people["keys"][email]))
    assert r.status_code == 200, r.get_json()
    return r.get_json()

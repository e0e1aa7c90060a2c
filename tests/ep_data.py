"""Shared set-up of the équipe pluridisciplinaire's tests (issue 13): the circuit's people
(``tests.circuit_data``) and one EP secretariat per territory, and requests brought to the
EP (``en_ep``) the way the circuit does: sent by the référent, favoured by the correspondant."""

from __future__ import annotations

from tests.circuit_data import PASSWORD, headers, sample, seed

EP_PEOPLE = {
    "ep.arr@c.example": (["secretariat_ep"], "arrageois"),
    "ep.art@c.example": (["secretariat_ep"], "artois"),
}
#: The service's clock in these tests (a Monday): ``FORMS_SERVICE_CLOCK_NOW``.
START = "2027-01-04T09:00:00+00:00"


def seed_ep(app) -> dict:
    from forms_service import db
    from forms_service.accounts import keys, users

    people = seed(app)
    with app.app_context(), db.session() as s:
        for email, (roles, territoire) in EP_PEOPLE.items():
            people["ids"][email] = users.save_user(s, email, roles, password=PASSWORD,
                                                   territoire=territoire).id
            _, key = keys.create_key(s, email.split("@")[0], "requests,records,beneficiaries",
                                     user_email=email)
            people["keys"][email] = key
    return people


def to_ep(client, people, beneficiary: str, kind: str, *, territory: str = "arr") -> int:
    """A request of ``kind`` (``suspension``, ``reorientation``) sent and favoured: at en_ep."""
    k = people["keys"]
    ref, corr = k[f"ref.{territory}@c.example"], k[f"corr.{territory}@c.example"]
    r = client.post("/api/v1/requests", json={"beneficiaire": people["b"][beneficiary],
                                              "fiche": sample(kind)}, headers=headers(ref))
    assert r.status_code == 201, r.get_json()
    rid = r.get_json()["id"]
    r = client.post(f"/api/v1/requests/{rid}/avis", headers=headers(corr),
                    json={"etape": "correspondant", "choix": "favorable",
                          "commentaire": "À présenter à l'équipe."})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["etat"] == "en_ep"
    return rid

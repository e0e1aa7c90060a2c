"""The Président's decision (issue 13, part 1) and the structures' inbox (part 2) on the
web, end to end through the test client on real SQLite: requests brought to ``decision`` by
the correspondant (actions CG, avenant), decided on ``/decision/`` by the territory's
decideur, the CG action in its structure's inbox only, the structure's return on the web,
and each step on the référent's « Mes demandes » and in their e-mails (.eml outbox)."""

from __future__ import annotations

from email import message_from_bytes, policy
from markupsafe import escape
from pathlib import Path

from tests.circuit_data import headers
from tests.conftest import csrf_token
from tests.decision_data import ATELIER, login, request_view, seed_all, to_decision


def _outbox(app) -> list:
    folder = Path(app.extensions["forms_service.settings"].var_dir) / "outbox"
    return [message_from_bytes(p.read_bytes(), policy=policy.default)
            for p in sorted(folder.glob("*.eml"))]


def _to(app, email) -> list[str]:
    return [str(m["Subject"]) for m in _outbox(app) if email in str(m["To"])]


def test_decision_sends_the_cg_action_to_its_structure_and_back_to_the_referent(make_app):
    app = make_app()
    people = seed_all(app)
    api = app.test_client()
    cg = to_decision(api, people, "arr2", "actions-cg")
    avenant = to_decision(api, people, "arr1", "avenant")

    # another territory's decideur sees neither, and cannot decide them
    other = login(app.test_client(), "dec.art@c.example")
    page = other.get("/decision/").get_data(as_text=True)
    assert f"n° {cg}<" not in page and "Aucune fiche de liaison" in page
    assert other.post(f"/decision/{cg}", data={"csrf_token": csrf_token(page),
                                               "choix": "favorable"}).status_code == 404

    dec = login(app.test_client(), "dec.arr@c.example")
    page = dec.get("/decision/").get_data(as_text=True)
    assert f"Fiche de liaison n° {cg}<" in page and f"Fiche de liaison n° {avenant}<" in page
    assert "Dossier complet." in page            # the correspondant's avis beside the form
    assert escape(ATELIER) in page                       # the directory's structures of the territory
    token = csrf_token(page)

    # a favourable CG action needs its structure; an avenant its yes/no
    r = dec.post(f"/decision/{cg}", data={"csrf_token": token, "choix": "favorable"})
    assert "Désignez la structure de l&#39;action CG" in r.get_data(as_text=True)
    r = dec.post(f"/decision/{avenant}", data={"csrf_token": token, "choix": "favorable"})
    assert "Indiquez si la décision vaut avenant" in r.get_data(as_text=True)
    assert request_view(api, people, cg)["etat"] == "decision"

    r = dec.post(f"/decision/{cg}", data={"csrf_token": token, "choix": "favorable",
                                          "avenant": "non", "organisme": "atelier-arras",
                                          "commentaire": "Action validée."})
    assert r.status_code == 302
    assert "La structure la trouve dans son espace" in dec.get(r.headers["Location"]).get_data(as_text=True)
    r = dec.post(f"/decision/{avenant}", data={"csrf_token": token, "choix": "favorable",
                                               "avenant": "oui"})
    assert r.status_code == 302

    view = request_view(api, people, cg)
    assert view["etat"] == "structure"
    last = view["avis"][-1]
    assert (last["etape"], last["choix"], last["commentaire"], last["source"]) == (
        "president", "favorable", "Action validée.", "web")
    fiche = view["fiche"]     # the fiche's part « réservée au Président », as the paper's
    assert fiche["decision_president"] == "favorable" and fiche["avenant"] == "non"
    assert fiche["president"]["observation"] == "Action validée."
    assert fiche["president"]["structure"] == ATELIER
    assert fiche["president"]["structure_tel"] == "03 21 00 00 04"
    assert fiche["president"]["structure_email"] == "atelier.arras@demo.example"
    assert fiche["president"]["date"]
    done = request_view(api, people, avenant)
    assert done["etat"] == "traitee" and done["fiche"]["avenant"] == "oui"
    assert done["avis"][-1]["choix_libelle"] == "Avis favorable"

    # the structure's inbox: its request only; another structure gets 404 everywhere
    mine = login(app.test_client(), "struct.arr@c.example")
    inbox = mine.get("/structure/").get_data(as_text=True)
    assert f"n° {cg}<" in inbox and f"n° {avenant}<" not in inbox and "NOM2" in inbox
    assert "Mobilité" in inbox or "mobilit" in inbox.lower()     # the actions asked for
    stranger = login(app.test_client(), "struct.art@c.example")
    assert f"n° {cg}<" not in stranger.get("/structure/").get_data(as_text=True)
    assert stranger.get(f"/structure/demandes/{cg}").status_code == 404
    assert api.get(f"/api/v1/requests/{cg}",
                   headers=headers(people["keys"]["struct.art@c.example"])).status_code == 404
    assert mine.get(f"/structure/demandes/{avenant}").status_code == 404
    assert mine.get("/decision/").status_code == 403

    # what the structure sees of the fiche: not the correspondant's part
    detail = mine.get(f"/structure/demandes/{cg}").get_data(as_text=True)
    assert escape(ATELIER) in detail and "Dossier complet." not in detail
    token = csrf_token(detail)
    r = mine.post(f"/structure/demandes/{cg}", data={"csrf_token": token, "choix": "absente",
                                                     "synthese": "Rendez-vous manqué."})
    assert "Indiquez l&#39;autre date de rendez-vous" in r.get_data(as_text=True)
    r = mine.post(f"/structure/demandes/{cg}", data={
        "csrf_token": token, "choix": "absente", "structure.autre_date_rdv": "2026-12-15",
        "structure.intervenant": "Dominique Exemple", "synthese": "Rendez-vous manqué, reporté."})
    assert r.status_code == 302
    view = request_view(api, people, cg)
    assert view["etat"] == "traitee"
    assert view["fiche"]["retour_structure"] == ["absente"]
    assert view["fiche"]["structure"]["autre_date_rdv"] == "2026-12-15"
    assert view["fiche"]["structure"]["synthese"] == "Rendez-vous manqué, reporté."
    assert f"n° {cg}<" in mine.get("/structure/").get_data(as_text=True).split("Retours transmis")[1]

    # each step reaches the référent: « Mes demandes » and e-mails
    ref = login(app.test_client(), "ref.arr@c.example")
    listing = ref.get("/mes-demandes/").get_data(as_text=True)
    assert "Rendez-vous manqué, reporté." in listing
    history = ref.get(f"/mes-demandes/{cg}").get_data(as_text=True)
    assert "Décision du Président" in history and "Retour de la structure" in history
    subjects = _to(app, "ref.arr@c.example")
    assert f"Fiche de liaison n° {cg} : décision du président" in subjects
    assert f"Fiche de liaison n° {cg} : retour de la structure" in subjects
    assert f"Fiche de liaison n° {avenant} : décision du président" in subjects
    assert _to(app, "struct.arr@c.example") == [
        f"Fiche de liaison n° {cg} : une action CG vous est confiée"]
    assert _to(app, "struct.art@c.example") == []

    # the API takes the same steps, the section's other fields as « champs »
    third = to_decision(api, people, "arr3", "actions-cg")
    dk = headers(people["keys"]["dec.arr@c.example"])
    r = api.post(f"/api/v1/requests/{third}/avis", headers=dk, json={"etape": "president", "choix": "favorable"})
    assert r.status_code == 400 and r.get_json()["errors"][0]["rule"] == "structure_manquante"
    r = api.post(f"/api/v1/requests/{cg}/avis", headers=dk, json={"etape": "president", "choix": "favorable"})
    assert r.status_code == 409
    r = api.post(f"/api/v1/requests/{third}/avis", headers=dk, json={
        "etape": "president", "choix": "favorable", "champs": {"organisme": "atelier-arras", "avenant": "non",
                                                             "president.structure_animateur": "x" * 37}})
    assert r.status_code == 400 and r.get_json()["errors"][0]["path"] == "president.structure_animateur"
    r = api.post(f"/api/v1/requests/{third}/avis", headers=dk, json={
        "etape": "president", "choix": "favorable", "commentaire": "ok",
        "champs": {"organisme": "atelier-arras", "avenant": "non", "president.structure_fax": "03\x0721"}})
    assert r.status_code == 400 and r.get_json()["errors"][0]["rule"] == "caractere_interdit"
    r = api.post(f"/api/v1/requests/{third}/avis", headers=dk, json={
        "etape": "president", "choix": "favorable", "champs": {"organisme": "atelier-arras", "avenant": "non"}})
    assert r.status_code == 200 and r.get_json()["etat"] == "structure"
    sk = headers(people["keys"]["struct.arr@c.example"])
    r = api.post(f"/api/v1/requests/{third}/avis", headers=sk, json={"etape": "structure", "choix": "n_integre_pas"})
    assert r.status_code == 400 and r.get_json()["errors"][0]["rule"] == "retour_incomplet"
    r = api.post(f"/api/v1/requests/{third}/avis", headers=sk, json={
        "etape": "structure", "choix": "n_integre_pas", "champs": {"structure.motif": "Horaires incompatibles"}})
    assert r.status_code == 200 and r.get_json()["etat"] == "traitee"
    assert r.get_json()["fiche"]["structure"]["motif"] == "Horaires incompatibles"

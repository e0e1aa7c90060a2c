"""The circuit's pages (issue 12): the correspondant's inbox and a request with its avis form
(test client, then a real browser: Playwright driving Debian's chromium over real HTTP, with
screenshots at 1280 and 820 pixels wide), and the référent's « Mes demandes »."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.circuit_data import PASSWORD, headers, sample, seed
from tests.conftest import csrf_token
from tests.referent_browser import CHROMIUM, launch   # Debian's chromium, in French: one place
from tests.served_thread import login_page, screenshot_dir, serving, shoot


def _submit(client, key, beneficiary, fiche):
    r = client.post("/api/v1/requests", json={"beneficiaire": beneficiary, "fiche": fiche},
                    headers=headers(key))
    assert r.status_code == 201, r.get_json()
    return r.get_json()["id"]


def _login(client, email):
    token = csrf_token(client.get("/connexion").get_data(as_text=True))
    r = client.post("/connexion", data={"email": email, "mot_de_passe": PASSWORD, "csrf_token": token})
    assert r.status_code == 302


def test_inbox_filters_and_avis_on_the_page_then_mes_demandes(make_app):
    app = make_app()      # no SMTP_HOST: the e-mails are .eml files, and the pages say so
    people = seed(app)
    k, b = people["keys"], people["b"]
    susp = _submit(app.test_client(), k["ref.arr@c.example"], b["arr1"], sample("suspension"))
    cg = _submit(app.test_client(), k["ref.arr@c.example"], b["arr2"], sample("actions-cg"))
    other = _submit(app.test_client(), k["ref.art@c.example"], b["art1"], sample("reorientation"))

    corr = app.test_client()
    _login(corr, "corr.arr@c.example")
    page = corr.get("/correspondant/").get_data(as_text=True)
    assert f"n° {susp}<" in page and f"n° {cg}<" in page and f"n° {other}<" not in page
    assert "var/outbox/" in page
    filtered = corr.get("/correspondant/?type=suspension&etat=avis_correspondant").get_data(as_text=True)
    assert f"n° {susp}<" in filtered and f"n° {cg}<" not in filtered
    assert corr.get(f"/correspondant/demandes/{other}").status_code == 404

    detail = corr.get(f"/correspondant/demandes/{susp}").get_data(as_text=True)
    assert "Non respect du PPAE ou Contrat d&#39;engagement" in detail   # the fiche's labels
    r = corr.post(f"/correspondant/demandes/{susp}",
                  data={"csrf_token": csrf_token(detail), "choix": "defavorable",
                        "commentaire": "Une quatrième convocation d'abord."})
    assert r.status_code == 302
    assert "Votre avis est enregistré" in corr.get(r.headers["Location"]).get_data(as_text=True)
    assert corr.post(f"/correspondant/demandes/{cg}", data={"choix": "favorable"}).status_code == 400

    ref = app.test_client()
    _login(ref, "ref.arr@c.example")
    mine = ref.get("/mes-demandes/").get_data(as_text=True)
    assert "Une quatrième convocation d&#39;abord." in mine and "Défavorable" in mine
    assert ref.get("/correspondant/").status_code == 403
    outbox = sorted((Path(app.extensions["forms_service.settings"].var_dir) / "outbox").glob("*.eml"))
    assert len(outbox) == 3 + 1     # three routed requests, one avis back to the référent


@pytest.fixture
def served(make_app):
    app = make_app(FORMS_SERVICE_SECURE_COOKIES="false")
    people = seed(app)
    with serving(app) as base:
        yield app, people, base


@pytest.mark.skipif(not shutil.which(CHROMIUM), reason="chromium is not installed")
def test_a_correspondant_filters_opens_and_records_an_avis_in_a_browser(served, tmp_path):
    from playwright.sync_api import sync_playwright

    shots = screenshot_dir(tmp_path)
    app, people, base = served
    k, b = people["keys"], people["b"]
    client = app.test_client()
    susp = _submit(client, k["ref.arr@c.example"], b["arr1"], sample("suspension"))
    _submit(client, k["ref.arr@c.example"], b["arr2"], sample("actions-cg"))
    invalid = sample("demande-appui")
    invalid.pop("objet_detail")
    _submit(client, k["ref.arr@c.example"], b["arr3"], invalid)

    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = login_page(browser, base, "corr.arr@c.example")
            page.goto(f"{base}/correspondant/")
            assert page.locator("table.demandes tbody tr").count() == 2
            page.select_option("select[name=type]", "suspension")
            page.click("form.filtres button[type=submit]")
            page.wait_for_url("**type=suspension**")
            rows = page.locator("table.demandes tbody tr")
            assert rows.count() == 1
            shoot(page, shots, "circuit-boite")

            rows.first.locator("a").click()
            page.wait_for_url(f"**/correspondant/demandes/{susp}")
            assert "Non respect du PPAE" in page.inner_text("main")
            shoot(page, shots, "circuit-demande")

            page.check("#choix-favorable")
            page.fill("#commentaire", "Passage en EP justifié.")
            page.click("form.avis button[type=submit]")
            page.wait_for_url("**enregistre=1")
            text = page.inner_text("main")
            assert "Votre avis est enregistré" in text and "Passage en EP justifié." in text
            assert "En équipe pluridisciplinaire" in text

            # the référent sees it on « Mes demandes »
            ref = login_page(browser, base, "ref.arr@c.example")
            ref.goto(f"{base}/mes-demandes/")
            mine = ref.inner_text("main")
            assert "Passage en EP justifié." in mine and "À corriger par le référent" in mine
            shoot(ref, shots, "circuit-mes-demandes")
        finally:
            browser.close()
    with app.app_context():
        from forms_service import db
        from forms_service.circuit.models import Demande
        with db.session() as s:
            d = s.get(Demande, susp)
            assert d.etat == "en_ep" and d.avis[-1].source == "web"
            assert d.data["correspondant_avis"]["observation"] == "Passage en EP justifié."

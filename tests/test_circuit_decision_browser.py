"""The Président's decision in a real browser (Playwright driving Debian's chromium over real
HTTP): the decideur picks the structure from the directory and records a favourable
decision; the structure finds it in its inbox; a copy that could not go is on the page of
copies to resend. Screenshots of the decision page, the structure's inbox and the copies'
page at 1280 and 820 pixels wide (``SCREENSHOT_DIR=docs/screenshots`` to
refresh the committed ones)."""

from __future__ import annotations

import shutil

import pytest

from tests.decision_data import ATELIER, request_view, seed_all, to_decision
from tests.referent_browser import CHROMIUM, launch   # Debian's chromium, in French: one place
from tests.served_thread import login_page as _login
from tests.served_thread import screenshot_dir, serving, shoot as _shoot


@pytest.fixture
def served(make_app):
    app = make_app(FORMS_SERVICE_SECURE_COOKIES="false")
    people = seed_all(app)
    with serving(app) as base:
        yield app, people, base


@pytest.mark.skipif(not shutil.which(CHROMIUM), reason="chromium is not installed")
def test_a_decideur_designates_the_structure_in_a_browser(served, tmp_path):
    from playwright.sync_api import sync_playwright

    shots = screenshot_dir(tmp_path)
    app, people, base = served
    client = app.test_client()
    cg = to_decision(client, people, "arr2", "actions-cg")
    to_decision(client, people, "arr1", "avenant")

    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = _login(browser, base, "dec.arr@c.example")
            page.click("nav >> text=Décisions")
            page.wait_for_url("**/decision/")
            assert page.locator("section.decision").count() == 2
            _shoot(page, shots, "decision")

            card = page.locator("section.decision", has_text=f"Fiche de liaison n° {cg}")
            card.locator(f"#choix-{cg}-favorable").check()
            card.locator(f"#avenant-{cg}-non").check()
            card.locator(f"#organisme-{cg}").select_option("atelier-arras")
            card.locator(f"#commentaire-{cg}").fill("Action validée par délégation.")
            card.locator("button[type=submit]").click()
            page.wait_for_url(f"**enregistre={cg}")
            text = page.inner_text("main")
            assert "Décision enregistrée" in text and "La structure la trouve dans son espace" in text
            assert page.locator("section.decision").count() == 1

            structure = _login(browser, base, "struct.arr@c.example")
            structure.click("nav >> text=Actions CG confiées")
            structure.wait_for_url("**/structure/")
            assert f"n° {cg}" in structure.inner_text("table.demandes")
            _shoot(structure, shots, "structure-boite")
            structure.click(f"text=n° {cg}")
            structure.wait_for_url(f"**/structure/demandes/{cg}")
            assert ATELIER in structure.inner_text("main")
            _shoot(structure, shots, "structure-demande")

            # a copy that could not go (decided on paper, no address): the page of copies
            lost = _paper_decision_without_address(app, client, people)
            page.click("nav >> text=Envois aux structures")
            page.wait_for_url("**/decision/envois")
            row = page.locator("table.demandes tr", has_text=f"n° {lost}")
            assert "Aucune adresse" in row.inner_text()
            assert row.locator("button", has_text="Renvoyer").count() == 1
            _shoot(page, shots, "decision-envois")
        finally:
            browser.close()
    view = request_view(client, people, cg)
    assert view["etat"] == "structure" and view["fiche"]["president"]["structure"] == ATELIER
    assert view["avis"][-1]["commentaire"] == "Action validée par délégation."


def _paper_decision_without_address(app, client, people) -> int:
    """An action CG decided on paper (the desk's path) for a structure with no account and
    no address: its copy cannot go (``echec``)."""
    import copy

    from forms_service import db
    from forms_service.circuit import service
    from forms_service.circuit.hooks import DESK
    from forms_service.circuit.models import Demande

    rid = to_decision(client, people, "arr3", "actions-cg")
    with app.app_context(), db.session() as s:
        d = s.get(Demande, rid)
        data = copy.deepcopy(d.data)
        data.update(decision_president="favorable", avenant="non")
        data["president"] = {"structure": "Association Mobilité Arras"}
        service.add_paper_avis(s, DESK, d, data)
    return rid

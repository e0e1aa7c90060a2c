"""The EP's secretariat in a real browser (issue 13): Playwright driving Debian's chromium
over real HTTP logs in as ``secretariat_ep``, sees the deadlines (late, due within 7 days,
in time), creates a session, schedules the waiting requests and records an avis; screenshots
of the agenda and the session at 1280 and 820 pixels wide (``SCREENSHOT_DIR=docs/screenshots``
refreshes the committed ones)."""

from __future__ import annotations

import datetime as dt
import shutil

import pytest

from tests.ep_data import START, seed_ep, to_ep
from tests.referent_browser import CHROMIUM, launch   # Debian's chromium, in French: one place
from tests.served_thread import login_page, screenshot_dir, serving, shoot as _shots

UTC = dt.timezone.utc


@pytest.fixture
def served(make_app):
    app = make_app(FORMS_SERVICE_SECURE_COOKIES="false", clock_now=START)
    people = seed_ep(app)
    with serving(app) as base:
        yield app, people, base


@pytest.mark.skipif(not shutil.which(CHROMIUM), reason="chromium is not installed")
def test_the_secretariat_schedules_and_records_an_avis_in_a_browser(served, tmp_path):
    from playwright.sync_api import sync_playwright

    from forms_service import clock

    shots = screenshot_dir(tmp_path)
    app, people, base = served
    api = app.test_client()
    c = clock.of(app)
    late = to_ep(api, people, "arr1", "suspension")                 # referred 04/01: due 04/02
    c.set(dt.datetime(2027, 1, 10, 9, tzinfo=UTC))
    soon = to_ep(api, people, "arr2", "reorientation")              # due 10/02
    c.set(dt.datetime(2027, 1, 25, 9, tzinfo=UTC))
    in_time = to_ep(api, people, "arr3", "suspension")              # due 25/02
    c.set(dt.datetime(2027, 2, 5, 8, tzinfo=UTC))                   # today: 05/02/2027

    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = login_page(browser, base, "ep.arr@c.example")
            page.click("text=Équipe pluridisciplinaire")
            page.wait_for_url("**/ep/")
            rows = page.locator("table.attente tbody tr")
            assert rows.count() == 3
            assert [rows.nth(i).get_attribute("class") for i in range(3)] == [
                "delai-en_retard", "delai-proche", "delai-a_venir"]
            assert "1 en retard" in page.inner_text("main")
            assert page.locator("table.delais tbody tr").count() == 2      # late, due within 7 days
            _shots(page, shots, "ep-agenda")

            page.fill("#date", "2027-02-09")
            page.fill("#heure", "14:30")
            page.fill("#lieu", "MDS de l'Arrageois, salle 2")
            page.click("form.nouvelle-seance button[type=submit]")
            page.wait_for_url("**/ep/seances/*cree=1")
            for rid in (late, soon):
                page.check(f"#inscrire-{rid}")
            page.click("text=Inscrire à l'ordre du jour")
            page.wait_for_url("**enregistre=inscrites")
            assert page.locator("article.passage").count() == 2

            page.check(f"#choix-{soon}-favorable")
            page.fill(f"#commentaire-{soon}", "Réorientation vers le Pôle Emploi justifiée.")
            page.locator(f"#demande-{soon} form.avis button[type=submit]").click()
            page.wait_for_url(f"**enregistre={soon}*")
            text = page.inner_text(f"#demande-{soon}")
            assert "Favorable" in text and "Réorientation vers le Pôle Emploi justifiée." in text
            _shots(page, shots, "ep-seance")
            page.goto(f"{base}/ep/")                 # scheduled, still watched for its deadline
            assert "n° 1" in page.locator("table.delais").inner_text()
        finally:
            browser.close()
    from forms_service import db
    from forms_service.circuit.models import Demande
    with app.app_context(), db.session() as s:
        d = s.get(Demande, soon)
        assert d.etat == "decision" and d.data["avis_ep"] == "favorable"
        assert d.data["ep"]["avis_motive"] == "Réorientation vers le Pôle Emploi justifiée."
        assert s.get(Demande, in_time).etat == "en_ep"

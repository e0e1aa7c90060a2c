"""The référent's pages in a real browser (issue 14): Debian's chromium driven by
Playwright, against the app served over real HTTP (werkzeug, in a thread), with a
real SQLite database and LibreOffice for the PDFs.

- a CERP filled with three PAP rows (added in place by the page's script) and the
  fiche de suivi emploi, a fiche de liaison asking a suspension (the missing-signature
  rule beside its field), an EDE (total and proposed orientation change as paliers
  are chosen), a draft saved and come back to, the PDFs downloaded and read back by
  the parsers to the same data;
- a fiche de liaison sent back corrected from « Mes demandes »; the ROME suggestions picked
  with the keyboard; every form page at 200 % zoom (no horizontal scroll, every field
  reached with Tab); the EDE's paliers chosen with the arrow keys;
- every page checked by axe-core (no serious or critical violation) and captured at
  1280 and 820 px wide (``REFERENT_SCREENSHOTS=docs/screenshots`` keeps them; else a
  temporary folder). The app, browser and helpers are in ``tests/referent_browser.py``.

The CSP is enforced (no ``bypass_csp``): the page's own script must run under it;
axe is injected through Playwright's ``evaluate`` (DevTools), which the CSP does not govern.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.referent_browser import (add_rows, browser, check_page, fill, form_url,  # noqa: F401
                                    needs_browser, page, served, shots, signed_in)
from tests.referent_data import posted, request_to_correct, sample, without_reserved

pytestmark = needs_browser


def same_as_read(app, content: bytes, form_id: str, data: dict) -> dict:
    """Where the PDF, read by the parsers alone (its printed text and boxes, no
    reconciliation with the issued document), differs from ``data``: ``{}`` when nowhere."""
    from tests.test_parse_roundtrip import differences, expected, one_record, parse

    record = one_record(parse(app, [(f"{form_id}.pdf", content)], reconcile=False), "pdf-text")
    return differences(record, expected(form_id, data, "pdf-text"))


def test_cerp_three_pap_rows_draft_and_pdf(page, served, shots):
    app, base, info = served
    data = without_reserved("cerp", sample("cerp"))
    data["pap"] = data["pap"][:3]
    page.goto(form_url(base, info, "cerp"))
    page.evaluate("window.__same_page = true")
    add_rows(page, data)
    assert page.evaluate("window.__same_page") is True      # no page load: done in place
    assert page.locator('[data-liste="pap"] fieldset.ligne').count() == 3
    assert page.locator("#annonces").inner_text().startswith("Ligne")
    fill(page, posted(data))
    # the action picker offers the professional sphere's actions only
    codes = page.locator('[name="pap-0-code"] option').evaluate_all("os => os.map(o => o.value)")
    assert "H.1.1" in codes and "A.1.1" not in codes
    page.click('#saisie .barre-actions button[value="brouillon"]')
    assert "Brouillon enregistré." in page.locator("#annonces").inner_text()
    check_page(page, shots, "cerp")

    # come back to the draft from the person's page
    page.goto(f"{base}/beneficiaires/{info['beneficiaries']['ref1_a']}")
    check_page(page, shots, "beneficiaire")
    page.click("text=Contrat d'Engagements Réciproques – Professionnel >> nth=-1")
    assert "brouillon=" in page.url
    check_page(page, shots, "brouillon")
    assert page.locator('[name="pap-2-code"]').input_value() == data["pap"][2]["code"]
    assert page.locator('[name="offres-2-offre"]').input_value() == data["offres"][2]["offre"]

    with page.expect_download() as download:
        page.click('#saisie button[value="pdf"]')
    content = Path(download.value.path()).read_bytes()
    assert content.startswith(b"%PDF")
    assert page.js_errors == []
    assert same_as_read(app, content, "cerp", data) == {}


def test_fiche_de_liaison_suspension_missing_signature(page, served, shots):
    app, base, info = served
    data = without_reserved("fiche-liaison", sample("fiche-liaison-suspension"))
    data["signature_referent"].pop("signee")
    page.goto(form_url(base, info, "fiche-liaison"))
    # the sections a request needs (the definition's needed_when) show when it is chosen
    assert page.locator("#section-ep").is_hidden() and page.locator("#section-actions_cg").is_hidden()
    fill(page, posted(data))
    assert page.locator("#section-ep").is_visible() and page.locator("#section-actions_cg").is_hidden()
    # « signée : non »: an error beside the signature, listed at the top; no PDF
    page.locator('[name="signature_referent-signee"][value="non"]').check()
    page.click('#saisie button[value="pdf"]')
    message = "Suspension : la signature du référent (page 3) est obligatoire"
    assert message in page.locator("#signature_referent-signee-erreur").inner_text()
    assert page.locator('#resume-erreurs a[href="#signature_referent-signee"]').inner_text() == message
    assert page.evaluate("document.activeElement.id") == "resume-erreurs"
    check_page(page, shots, "fiche-liaison-erreurs")
    # not known yet (the paper is signed by hand): a warning to check, and the PDF
    page.locator('[name="signature_referent-signee"][value=""]').check()
    page.click('#saisie .barre-actions button[value="verifier"]')
    assert message + " (à vérifier)" in page.locator("#signature_referent-signee-erreur").inner_text()
    assert page.locator('#resume-avertissements a[href="#signature_referent-signee"]').count() == 1
    with page.expect_download() as download:
        page.click('#saisie button[value="pdf"]')
    content = Path(download.value.path()).read_bytes()
    assert same_as_read(app, content, "fiche-liaison", data) == {}
    assert page.js_errors == []


def test_ede_total_and_orientation_as_paliers_are_chosen(page, served, shots):
    app, base, info = served
    page.goto(form_url(base, info, "annexe-3"))
    items = page.locator("fieldset.groupe:has(input[data-points])")
    assert items.count() == 8
    assert page.locator("#ede-points").inner_text() == "—"
    def choose(n: int, pick) -> None:      # the palier of item n with the fewest / most points
        options = items.nth(n).locator("input[data-points]")
        values = options.evaluate_all("xs => xs.map(x => parseInt(x.dataset.points, 10))")
        options.nth(values.index(pick(values))).check()

    for n in range(7):
        choose(n, min)
    assert page.locator("#ede-points").inner_text() == "—"          # one item left
    choose(7, min)                         # the fewest points everywhere: below the low bound
    points = int(page.locator("input[data-points]:checked").evaluate_all(
        "xs => xs.reduce((t, x) => t + parseInt(x.dataset.points, 10), 0)"))
    assert page.locator("#ede-points").inner_text() == str(points)
    assert "Pôle Emploi" in page.locator("#ede-orientation").inner_text()
    # the keyboard alone: the arrow keys move the first item's palier up, the total follows
    # each choice and, between the bounds (18 and 35), the équipe pluridisciplinaire decides
    items.nth(0).locator("input[data-points]:checked").focus()
    shown = []
    for _ in range(4):                     # 1 → 2 → 4 → 8 → 14 points
        page.keyboard.press("ArrowRight")
        checked = int(page.locator("input[data-points]:checked").evaluate_all(
            "xs => xs.reduce((t, x) => t + parseInt(x.dataset.points, 10), 0)"))
        assert page.locator("#ede-points").inner_text() == str(checked)
        shown.append(checked)
    assert shown == sorted(set(shown)) and 18 <= shown[-1] <= 35, shown
    assert "équipe pluridisciplinaire" in page.locator("#ede-orientation").inner_text()
    for n in range(8):                     # the most points everywhere: above the high bound
        choose(n, max)
    assert int(page.locator("#ede-points").inner_text()) > 35
    assert "solidarité" in page.locator("#ede-orientation").inner_text()
    assert page.locator("#ede-alerte").inner_text().startswith("Alerte couleur")      # the colour alert
    page.click('#saisie .barre-actions button[value="verifier"]')
    # the server's verdict is the same
    assert "solidarité" in page.locator("#ede-orientation").inner_text()
    check_page(page, shots, "ede")
    assert page.js_errors == []


def test_every_page_accessible(page, served, shots):
    app, base, info = served
    for name, url in [("accueil", "/"), ("beneficiaires", "/beneficiaires"),
                      ("rome", "/rome/recherche?q=logistique"),
                      ("cers", None), ("dsp", None), ("fiche-liaison", None)]:
        if url is None:
            url = form_url(base, info, {"cers": "cers", "dsp": "annexe-2",
                                        "fiche-liaison": "fiche-liaison"}[name])[len(base):]
        page.goto(base + url)
        if name == "accueil":
            assert page.locator('tr[data-code="cer_fin"]').count() == 1
        check_page(page, shots, name)
    # the search, posted
    page.goto(base + "/beneficiaires")
    page.fill("#recherche", "NOM4")
    page.click("form.recherche button")
    assert "NOM4" in page.locator("table").inner_text() and "NOM1" not in page.locator("table").inner_text()
    assert "NOM4" not in page.url
    # keyboard alone: Tab reaches the search field and the focus is visible
    page.goto(base + "/beneficiaires")
    for _ in range(12):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "recherche":
            break
    assert page.evaluate("document.activeElement.id") == "recherche"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"
    assert page.js_errors == []


def test_fiche_sent_back_corrected_in_the_browser(page, served, shots):
    """« Mes demandes » → « Corriger la fiche »: the form page pre-filled with the request,
    its broken rule beside its field; « Renvoyer la fiche corrigée » routes the same
    request anew, and its history shows both routings."""
    app, base, info = served
    request_id = request_to_correct(app, "ref1@t.example", info["beneficiaries"]["ref1_b"])
    page.goto(base + "/mes-demandes/")
    check_page(page, shots, "mes-demandes")
    page.click(f"text=Corriger la fiche n° {request_id}")
    assert f"demande={request_id}" in page.url
    message = "Suspension : les courriers de convocation doivent être joints"
    assert message in page.locator("#pieces_jointes-convocations-erreur").inner_text()
    assert page.locator('#resume-erreurs a[href="#pieces_jointes-convocations"]').inner_text() == message
    assert page.locator("#section-ep").is_visible()          # the suspension's section is shown
    check_page(page, shots, "correction")
    page.locator('[name="pieces_jointes-convocations"][value="oui"]').check()
    page.click('#saisie button[value="envoyer"]')
    page.wait_for_url(f"{base}/mes-demandes/{request_id}")
    steps = page.locator("ol.historique > li").all_inner_texts()
    assert len(steps) == 3 and message in steps[0], steps
    assert "Corriger la fiche" not in page.content()
    check_page(page, shots, "mes-demande")
    assert page.js_errors == []


def test_rome_suggestions_picked_with_the_keyboard(page, served):
    """Words typed in a ROME field: the codes whose label holds them are suggested; the
    arrow keys move through them, Enter picks one (without submitting the form)."""
    from forms_service.web.referent import rome_search

    app, base, info = served
    page.goto(form_url(base, info, "cerp"))
    page.evaluate("window.__same_page = true")
    field = page.locator('[name="metiers-0-code_rome"]')
    assert field.get_attribute("role") == "combobox" and field.get_attribute("aria-expanded") == "false"
    field.focus()
    page.keyboard.type("conduite engins")
    listbox = page.locator("#metiers-0-code_rome-codes")
    listbox.locator("[role=option]").first.wait_for()
    expected = [f"{r['code']} – {r['label']}" for r in rome_search("conduite engins")]
    assert listbox.locator("[role=option]").all_inner_texts() == expected
    assert field.get_attribute("aria-expanded") == "true"
    for key in ("ArrowDown", "ArrowDown", "ArrowDown", "ArrowUp"):     # the second one
        page.keyboard.press(key)
    active = field.get_attribute("aria-activedescendant")
    assert page.locator(f"#{active}").get_attribute("aria-selected") == "true"
    page.keyboard.press("Enter")
    assert field.input_value() == rome_search("conduite engins")[1]["code"]
    assert listbox.is_hidden() and field.get_attribute("aria-expanded") == "false"
    assert "Code ROME" in page.locator("#annonces").inner_text()
    assert page.evaluate("window.__same_page") is True       # Enter picked, did not submit
    # a row added in place suggests too, in its own list
    page.locator('[data-liste="metiers"] button.ajouter').click()
    other = page.locator('[name="metiers-1-code_rome"]')
    assert other.get_attribute("aria-controls") == "metiers-1-code_rome-codes"
    other.focus()
    page.keyboard.type("N1103")
    page.locator("#metiers-1-code_rome-codes [role=option]").first.wait_for()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    assert other.input_value() == "N1103"
    assert page.js_errors == []


FOCUSABLE = """() => Array.from(document.querySelectorAll(
    '#saisie input, #saisie select, #saisie textarea, #saisie button'))
  .filter(e => e.type !== 'hidden' && !e.disabled && e.getClientRects().length > 0)
  .map(e => e.name + ':' + (e.tagName === 'BUTTON' ? e.value : ''))"""


@pytest.mark.parametrize("form_id", ["cerp", "cers", "fiche-liaison", "annexe-3", "annexe-2"])
def test_usable_at_200_percent_zoom(browser, served, shots, form_id):
    """At 200 % zoom (a 1280 px screen: 640 CSS px at device scale 2) the form page has no
    horizontal scroll, every field fits the width, and the keyboard alone reaches every
    field and button of the form (Tab from the top of the page)."""
    app, base, info = served
    context, page = signed_in(browser, base, viewport={"width": 640, "height": 480},
                              device_scale_factor=2)
    try:
        page.goto(form_url(base, info, form_id))
        assert page.evaluate("document.documentElement.scrollWidth") <= 640
        too_wide = page.evaluate("""() => Array.from(document.querySelectorAll(
            '#saisie input, #saisie select, #saisie textarea, #saisie button, #saisie label'))
          .filter(e => e.getClientRects().length > 0 && e.getBoundingClientRect().right > 640)
          .map(e => e.name || e.id || e.textContent.trim())""")
        assert too_wide == []
        expected = set(page.evaluate(FOCUSABLE))
        assert len(expected) > 10
        page.evaluate("""() => { window.__reached = new Set();
          document.addEventListener('focusin', e => window.__reached.add(
            e.target.name + ':' + (e.target.tagName === 'BUTTON' ? e.target.value : ''))); }""")
        reached: set = set()
        for _ in range(20):           # Tab, 50 at a time, until the form's end (or a bound)
            for _ in range(50):
                page.keyboard.press("Tab")
            reached = set(page.evaluate("Array.from(window.__reached)"))
            if expected <= reached:
                break
        assert expected - reached == set()
        if form_id == "cerp":
            page.screenshot(path=str(shots / "referent-zoom200-cerp.png"))
        assert page.js_errors == []
    finally:
        context.close()

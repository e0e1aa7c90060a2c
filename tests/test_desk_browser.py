"""The desk in a real browser (issue 11): Debian's chromium driven by Playwright, on the
app served over real HTTP, a real ``forms-service worker`` reading on the real queue.

An agent signs in, drops a scanned fiche de liaison (two boxes ticked for one choice) on
the upload form, watches the progress refresh by itself until the summary, reviews the
uncertain field with the keyboard alone, and the correction is in the audit trail.
Screenshots of the upload, progress, summary, queue and review pages at 1280 and 820 pixels wide
go to the test's folder (and to ``DESK_SCREENSHOTS`` when set).
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest

import desk_data
from desk_queue import start_worker, stop
from people_data import headers, seed

from referent_browser import CHROMIUM, WIDTHS, launch   # Debian's chromium, in French: one place

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def served(make_app, lo_pool, tmp_path):
    """The app on a loopback port (werkzeug, threaded) and a worker process on its queue."""
    from werkzeug.serving import make_server

    app = make_app(PDF_POOL=lo_pool, REVIEW_SAMPLE_RATE=0)
    people = seed(app)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    worker = start_worker(app.extensions["forms_service.settings"], threads=1,
                          log=tmp_path / "worker.log")
    yield {"app": app, "people": people, "url": f"http://127.0.0.1:{server.server_port}"}
    stop(worker)
    server.shutdown()
    thread.join(10)


def scan_with_two_ticks(app, people) -> bytes:
    """A fiche de liaison rendered for a beneficiary, printed, both « Type de référent »
    boxes ticked by hand, scanned: the reader sends that field to review."""
    import cv2

    client = app.test_client()
    admin = headers(people["keys"]["admin@t.example"])
    _doc_id, pdf = desk_data.render(client, admin, "fiche-liaison", people["beneficiaries"]["ref1_a"],
                                    sample="fiche-liaison-demande-appui")
    layout = client.get("/api/v1/forms/fiche-liaison/layout", headers=admin).get_json()
    box = next(b for b in layout["boxes"] if b["path"] == "referent.type" and b["value"] == "professionnel")
    pages = desk_data.pages_of(pdf)
    k = desk_data.DPI / 72
    x0, top, x1, bottom = (int(v * k) for v in box["bbox"])
    page = pages[box["page"] - 1]
    cv2.line(page, (x0 + 2, top + 2), (x1 - 2, bottom - 2), 20, 3)
    cv2.line(page, (x0 + 2, bottom - 2), (x1 - 2, top + 2), 20, 3)
    return desk_data.encode([desk_data.scanned(p, 7 + i) for i, p in enumerate(pages)], "pdf")


def shoot(page, name: str, folder: Path) -> None:
    """The page at each width (full height), into the test's folder and DESK_SCREENSHOTS."""
    extra = os.environ.get("DESK_SCREENSHOTS")
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        target = folder / f"desk-{name}-{width}.png"
        page.screenshot(path=str(target), full_page=True)
        if extra:
            Path(extra).mkdir(parents=True, exist_ok=True)
            shutil.copy(target, Path(extra) / target.name)
    page.set_viewport_size({"width": WIDTHS[0], "height": 900})


def test_upload_progress_and_keyboard_review_in_a_browser(served, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed")
    app, people, url = served["app"], served["people"], served["url"]
    scan = tmp_path / "courrier-du-jour.pdf"
    scan.write_bytes(scan_with_two_ticks(app, people))
    shots = tmp_path / "captures"
    shots.mkdir()

    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="fr-FR")
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" and
                    "Failed to load resource" not in m.text else None)   # the favicon: checked below
            failed: list[str] = []
            page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 and
                    not r.url.endswith("/favicon.ico") else None)
            page.goto(f"{url}/connexion?suivant=/slai/")
            page.fill("#email", "agent.arr@t.example")
            page.fill("#mot_de_passe", "mot-de-passe-de-test")
            page.keyboard.press("Enter")
            page.wait_for_url(f"{url}/slai/")

            # upload: the plain file input (the drop zone fills the same input)
            page.set_input_files("#fichiers", str(scan))
            expect(page.locator("#fichiers-choisis li")).to_have_text(["courrier-du-jour.pdf"])
            shoot(page, "depot", shots)
            page.click("form#depot button[type=submit]")
            page.wait_for_url(f"{url}/slai/lots/*")
            shoot(page, "progression", shots)

            # the page refreshes by itself (desk.js polls the batch's state) until the summary
            expect(page.locator("#statut")).to_have_text("terminé", timeout=180_000)
            expect(page.locator('#resume [data-cle="forms"]')).to_have_text("1")
            expect(page.locator('#resume [data-cle="needs_review"]')).to_have_text("1")
            shoot(page, "resume", shots)

            # the queue, then the review with the keyboard alone: « N » opens the worst entry,
            # « 2 » picks « Professionnel » and sends it
            page.goto(f"{url}/slai/verification")
            expect(page.locator("table.file")).to_contain_text("Champ à vérifier")
            shoot(page, "file", shots)
            page.keyboard.press("n")
            page.wait_for_url(f"{url}/slai/verification/*")
            expect(page.locator(".raison")).to_contain_text("Plusieurs cases cochées")
            expect(page.locator(".raccourcis")).to_contain_text("Entrée")
            assert page.locator(".apercu img").count() == 1          # the field's zone, not every page
            assert page.locator(".apercu img").evaluate("img => img.naturalWidth") > 100
            shoot(page, "verification", shots)
            record_id = int(page.url.rsplit("/", 1)[-1])
            page.keyboard.press("2")
            page.wait_for_url(f"{url}/slai/verification")
            expect(page.locator("table.file")).to_contain_text("Rien à vérifier")
            assert not errors, errors            # no script error, no CSP violation
            assert not failed, failed
        finally:
            browser.close()

    # the correction is in the audit trail, read back as an administrator reads it
    admin = headers(people["keys"]["admin@t.example"])
    trail = app.test_client().get(f"/api/v1/audit?object_type=enregistrement&object_id={record_id}",
                                  headers=admin).get_json()
    events = trail["items"]
    corrected = [e for e in events if e["action"] == "enregistrement.corrige"]
    assert len(corrected) == 1, events
    detail = corrected[0]["detail"]
    assert detail["path"] == "referent.type" and detail["old"] is None and detail["new"] == "professionnel"
    assert corrected[0]["actor"] == f"user:{people['ids']['agent.arr@t.example']}"
    assert detail["status"] == "valid" and detail["review"] == "done"

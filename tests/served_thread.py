"""An app served over real HTTP inside the test process, and the browser steps the circuit's
browser tests share (Playwright driving Debian's chromium).

    with serving(app) as base:                      # werkzeug in a thread, a free loopback port
        page = login_page(browser, base, "corr.arr@c.example")
        shoot(page, screenshot_dir(tmp_path), "circuit-boite")   # 1280 and 820 px wide

``SCREENSHOT_DIR=docs/screenshots`` makes ``screenshot_dir`` the committed folder (to refresh
the screenshots); otherwise the test's temporary folder.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from pathlib import Path

from tests.circuit_data import PASSWORD

WIDTHS = (1280, 820)
HEIGHT = 900


@contextmanager
def serving(app):
    """The app served on a free loopback port for the block: its base URL."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)


def screenshot_dir(tmp_path: Path) -> Path:
    target = os.environ.get("SCREENSHOT_DIR")
    folder = Path(target) if target else Path(tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def login_page(browser, base: str, email: str, password: str = PASSWORD):
    """A new page of ``browser`` signed in as ``email`` through the login form."""
    page = browser.new_page(viewport={"width": WIDTHS[0], "height": HEIGHT}, locale="fr-FR")
    page.goto(f"{base}/connexion")
    page.fill("input[name=email]", email)
    page.fill("input[name=mot_de_passe]", password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/connexion" not in url)
    return page


def shoot(page, folder: Path, name: str) -> None:
    """Full-page screenshots ``name-1280.png`` and ``name-820.png``; the page is left at 1280."""
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": HEIGHT})
        page.screenshot(path=str(folder / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": WIDTHS[0], "height": HEIGHT})

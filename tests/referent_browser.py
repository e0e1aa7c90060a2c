"""Shared set-up of the référent pages' browser tests (issue 14): one app served over real
HTTP (werkzeug, in a thread) for the whole session, with a real SQLite database and
LibreOffice for the PDFs, Debian's chromium driven by Playwright, and the helpers that
type into the pages as a person would.

Every ``tests/test_referent_*`` browser module shares one app and one browser (the people
are seeded once: argon2 is slow on purpose). A module imports the fixtures it uses from
here; pytest then holds one fixture per module, so the app and the browser themselves are
kept here (``_acquire`` / ``_release``: started by the first module, stopped after the last).

- ``signed_in(browser, base, javascript=True, ...)``: a new context logged in as ref1;
- ``check_page(page, shots, name)``: axe-core (no serious or critical violation) and
  screenshots at 1280 and 820 px wide (``REFERENT_SCREENSHOTS=<dir>`` keeps them, e.g.
  ``docs/screenshots``; else a temporary folder);
- ``fill(page, pairs)`` / ``add_rows(page, data)``: type a form's data, add its list rows
  with the page's « Ajouter une ligne » (in place with JavaScript, posted without).
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest

from tests import people_data

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
#: Debian's chromium shows its strings and formats dates in the language LANGUAGE names
#: (its French strings: the package chromium-l10n): « jj/mm/aaaa », as a French browser.
ENV = {**os.environ, "LANGUAGE": "fr"}
WIDTHS = (1280, 820)
PASSWORD = "mot-de-passe-de-test"

needs_browser = pytest.mark.skipif(not Path(CHROMIUM).exists() or shutil.which("soffice") is None,
                                   reason="chromium or LibreOffice is not installed")


#: name → [value, users, stop]
_SHARED: dict[str, list] = {}


def _acquire(name: str, start):
    """The shared ``name``, started by ``start() -> (value, stop)`` for its first user."""
    if name not in _SHARED:
        value, stop = start()
        _SHARED[name] = [value, 0, stop]
    _SHARED[name][1] += 1
    return _SHARED[name][0]


def _release(name: str) -> None:
    entry = _SHARED[name]
    entry[1] -= 1
    if entry[1] == 0:
        del _SHARED[name]
        entry[2]()


def _serve(tmp_path_factory, lo_pool):
    from werkzeug.serving import make_server

    from forms_service.app import create_app

    var = tmp_path_factory.mktemp("referent-browser")
    app = create_app({"var_dir": var / "var", "database_url": None, "departement_logo": None,
                      "TESTING": True, "PDF_POOL": lo_pool, "WTF_CSRF_SSL_STRICT": False})
    info = people_data.seed(app)
    _with_a_cer_ending(app)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def stop():
        server.shutdown()
        thread.join(10)
        app.close()
    return (app, f"http://127.0.0.1:{server.server_port}", info), stop


@pytest.fixture(scope="session")
def served(tmp_path_factory, lo_pool):
    yield _acquire("served", lambda: _serve(tmp_path_factory, lo_pool))
    _release("served")


def _with_a_cer_ending(app) -> None:
    """One more of ref1's people, whose CER ends in 10 days (an échéance on the home page)."""
    import datetime as dt
    import json

    from forms_service import db
    from forms_service.beneficiaries.importer import import_beneficiaries

    day = lambda n: (dt.date.today() + dt.timedelta(days=n)).isoformat()  # noqa: E731
    line = people_data.person(31, "arrageois", "ref1@t.example",
                              cer={"type": "cerp", "date_debut": day(-170), "date_fin": day(10),
                                   "date_signature": day(-175)},
                              orientation={"sphere": "professionnelle", "date_decision": day(-180)})
    with app.app_context(), db.session() as s:
        assert import_beneficiaries(s, json.dumps([line]).encode(), "b.json").count("created") == 1


def launch(pw):
    """Debian's chromium, in French (:data:`ENV`), for a started Playwright."""
    return pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, env=ENV)


def _launch():
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    b = launch(pw)

    def stop():
        b.close()
        pw.stop()
    return b, stop


@pytest.fixture(scope="session")
def browser():
    yield _acquire("browser", _launch)
    _release("browser")


@pytest.fixture(scope="session")
def shots(tmp_path_factory):
    target = os.environ.get("REFERENT_SCREENSHOTS")
    path = Path(target) if target else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def signed_in(browser, base: str, *, email: str = "ref1@t.example", javascript: bool = True,
              **options):
    """A new browser context logged in as ``email``: ``(context, page)``. The page's script
    errors, CSP refusals and failed GETs are collected in ``page.js_errors``."""
    context = browser.new_context(**{"viewport": {"width": 1280, "height": 900},
                                     "accept_downloads": True, "locale": "fr-FR",
                                     "java_script_enabled": javascript, **options})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text)
            if m.type == "error" and "Failed to load resource" not in m.text else None)
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}")
            if r.status >= 400 and not r.url.endswith("/favicon.ico") and r.request.method == "GET"
            and "/formulaires/" not in r.url else None)
    page.goto(base + "/connexion")
    page.fill("#email", email)
    page.fill("#mot_de_passe", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url(base + "/")
    page.js_errors = errors
    return context, page


@pytest.fixture
def page(browser, served):
    _app, base, _info = served
    context, page = signed_in(browser, base)
    yield page
    context.close()


def check_page(page, shots: Path, name: str) -> None:
    """axe-core: no serious or critical violation; screenshots at both widths."""
    from axe_playwright_python.sync_playwright import Axe

    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        results = Axe().run(page)
        bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
               for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
        assert not bad, f"{name} at {width}px: {bad}"
        page.screenshot(path=str(shots / f"referent-{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})


def fill(page, pairs, scope: str = "#saisie") -> None:
    """Types the (name, value) pairs as a person would: ticks, picks, types (no script of
    the page's is needed: it works with JavaScript disabled)."""
    for name, value in pairs:
        inputs = page.locator(f'{scope} [name="{name}"]')
        kind = inputs.first.get_attribute("type")
        if kind in ("radio", "checkbox") and value != "y":
            page.locator(f'{scope} [name="{name}"][value="{value}"]').check()
        elif kind == "checkbox":
            inputs.first.check()
        elif page.locator(f'{scope} select[name="{name}"]').count():
            inputs.first.select_option(value)
        else:
            inputs.first.fill(value)


def add_rows(page, data: dict) -> None:
    """Adds the list rows ``data`` needs with the page's « Ajouter une ligne »: in place when
    the page's script runs, posted to the server (the page comes back) when it does not."""
    for key, value in data.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            liste = page.locator(f'[data-liste="{key}"]')
            while liste.locator("fieldset.ligne").count() < len(value):
                liste.locator("button.ajouter").click()
                page.wait_for_load_state()


def form_url(base, info, form_id, who: str = "ref1_a"):
    return f"{base}/beneficiaires/{info['beneficiaries'][who]}/formulaires/{form_id}"


def error_texts(page) -> dict:
    """What the page says is wrong: the summary's lines, and each field's messages by id."""
    return {"resume": page.locator("#resume-erreurs li a, #resume-erreurs li").all_inner_texts(),
            "champs": {el.get_attribute("id"): el.inner_text()
                       for el in page.locator(".erreur-champ").all()}}

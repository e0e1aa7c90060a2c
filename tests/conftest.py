"""Shared fixtures (flaskr style): ``app`` on a temporary var dir with its own
SQLite database, ``client`` for HTTP, ``runner`` for the ``forms-service`` CLI,
``make_app`` for an app with other settings (each closed after the test),
``lo_pool`` for the session's LibreOffice pool, ``log_lines`` to read what was logged.

People (issue 10): ``db_url`` (parametrized over SQLite and a real PostgreSQL,
``tests/pg.py``), ``make_user`` (an account), ``api_key`` (a real key, stored
hashed), ``login`` (signs a test client in through ``/connexion``)."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest
from click.testing import CliRunner

from forms_service.app import create_app
from forms_service.logging_setup import configure_logging

pytest_plugins = ["tests.pg"]

#: LibreOffice instances of the session's pool.
POOL_SIZE = 2


@pytest.fixture
def make_app(tmp_path):
    apps = []

    def factory(**overrides):
        config = {"var_dir": tmp_path / "var", "database_url": None,
                  "departement_logo": None, "TESTING": True}
        config.update(overrides)
        if str(config.get("database_url") or "").startswith("postgresql"):
            config.setdefault("migrate_on_startup", True)
        app = create_app(config)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        app.close()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()



@pytest.fixture(scope="session")
def layout_pool(tmp_path_factory):
    """The repository's default pool (``get_pool``, the one its layout maps and fillable PDFs
    are built with), warm, for the layout, fillable and printing tests."""
    from forms_service.render.pdf import get_pool, libreoffice_available

    if not libreoffice_available():
        pytest.skip("LibreOffice is not installed (no soffice): layout, fillable and print tests skipped")
    p = get_pool({"VAR_DIR": str(tmp_path_factory.getbasetemp() / "layout-var"),
                  "PDF_POOL_SIZE": 2, "PDF_POOL_RECYCLE_AFTER": 0})
    p.start()
    assert p.wait_ready(timeout=180), p.instances()
    yield p
    p.close()

@pytest.fixture(scope="session")
def lo_pool(tmp_path_factory):
    """One warm LibreOffice pool for the session (unoserver takes ~10 s to start): apps
    take it as ``make_app(PDF_POOL=lo_pool)`` and do not close it."""
    from forms_service.render.pdf import ConverterPool, libreoffice_available

    if not libreoffice_available():
        pytest.skip("LibreOffice is not installed (no soffice)")
    pool = ConverterPool(size=POOL_SIZE, work_dir=tmp_path_factory.mktemp("session-pool") / "lo")
    pool.start()
    yield pool
    pool.close()


@pytest.fixture
def runner(tmp_path, monkeypatch):
    """Runs ``forms-service`` in-process with a temporary var dir; ``runner.app_config``
    is extra Flask configuration for the command's app (e.g. ``{"PDF_POOL": lo_pool}``)."""
    from forms_service.cli import main

    monkeypatch.setenv("FORMS_SERVICE_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("DATABASE_URL", raising=False)

    class Runner(CliRunner):
        app_config: dict | None = None

        def run(self, *args, input=None):
            return self.invoke(main, [str(a) for a in args], input=input, catch_exceptions=False,
                               obj=dict(self.app_config) if self.app_config else None)

    return Runner()


@pytest.fixture
def log_lines():
    """Everything logged while the test runs, as parsed JSON lines (the real formatter)."""
    configure_logging()
    root = logging.getLogger()
    ours = next(h for h in root.handlers if h.get_name() == "forms_service")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(ours.formatter)
    root.addHandler(handler)

    def read():
        return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]

    read.raw = stream.getvalue
    yield read
    root.removeHandler(handler)


# --------------------------------------------------------------------------- people

@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A fresh database URL: SQLite in the test's folder, or a new database on the
    session's throw-away PostgreSQL cluster."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'people.db'}"
    return request.getfixturevalue("postgresql_server").create_database()


TEST_PASSWORD = "mot-de-passe-de-test"


@pytest.fixture
def make_user(app):
    """``make_user("a@b.fr", "referent", territoire=..., password=...)`` → the account's id."""
    from forms_service import db
    from forms_service.accounts import users

    def factory(email, *roles, password=TEST_PASSWORD, **fields):
        with app.app_context(), db.session() as s:
            return users.save_user(s, email, list(roles) or ["administrateur"],
                                   password=password, **fields).id

    return factory


@pytest.fixture
def api_key(app):
    """``api_key(scopes="render,parse", user="a@b.fr", territoire=None)`` → the key itself."""
    from forms_service import db
    from forms_service.accounts import keys

    counter = iter(range(1, 1000))

    def factory(scopes="render", user=None, territoire=None, name=None):
        with app.app_context(), db.session() as s:
            _row, key = keys.create_key(s, name or f"test-{next(counter)}", scopes,
                                        user_email=user, territoire=territoire)
        return key

    return factory


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or \
        re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


@pytest.fixture
def login():
    """``login(client, email, password)`` → the POST /connexion response (302 when signed in)."""
    def do(client, email, password=TEST_PASSWORD):
        token = csrf_token(client.get("/connexion").get_data(as_text=True))
        return client.post("/connexion", data={"email": email, "mot_de_passe": password,
                                               "csrf_token": token})

    return do

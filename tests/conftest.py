"""Shared fixtures (flaskr style): ``app`` on a temporary var dir with its own
SQLite database, ``client`` for HTTP, ``runner`` for the ``forms-service`` CLI,
``make_app`` for an app with other settings, ``log_lines`` to read what was logged.

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
from forms_service.config import get_settings
from forms_service.logging_setup import configure_logging

pytest_plugins = ["tests.pg"]


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
        app.extensions["forms_service.db"].dispose()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(tmp_path, monkeypatch):
    """Runs ``forms-service`` in-process with a temporary var dir."""
    from forms_service.cli import main

    monkeypatch.setenv("FORMS_SERVICE_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    get_settings.cache_clear()

    class Runner(CliRunner):
        def run(self, *args, input=None):
            return self.invoke(main, [str(a) for a in args], input=input, catch_exceptions=False)

    yield Runner()
    get_settings.cache_clear()


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

"""Shared fixtures (flaskr style): ``app`` on a temporary var dir with its own
SQLite database, ``client`` for HTTP, ``runner`` for the ``forms-service`` CLI,
``make_app`` for an app with other settings, ``log_lines`` to read what was logged."""

from __future__ import annotations

import io
import json
import logging

import pytest
from click.testing import CliRunner

from forms_service.app import create_app
from forms_service.config import get_settings
from forms_service.logging_setup import configure_logging


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

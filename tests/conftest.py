"""Shared fixtures (flaskr style): ``app`` on a temporary var dir with its own
SQLite database, ``client`` for HTTP, ``runner`` for the ``forms-service`` CLI,
``make_app`` for an app with other settings (each closed after the test),
``lo_pool`` for the session's LibreOffice pool, ``log_lines`` to read what was logged."""

from __future__ import annotations

import io
import json
import logging

import pytest
from click.testing import CliRunner

from forms_service.app import create_app
from forms_service.logging_setup import configure_logging

#: LibreOffice instances of the session's pool.
POOL_SIZE = 2


@pytest.fixture
def make_app(tmp_path):
    apps = []

    def factory(**overrides):
        config = {"var_dir": tmp_path / "var", "database_url": None, "api_keys": {},
                  "departement_logo": None, "TESTING": True}
        config.update(overrides)
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

"""Settings, logging redaction, the database schema and the set-up files."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import create_engine, inspect

from forms_service.config import MIB, Settings
from forms_service.logging_setup import MASK, get_logger, redact

ROOT = Path(__file__).resolve().parent.parent


# -- settings -----------------------------------------------------------------

def test_embedded_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = Settings.from_env(environ={})
    assert s.var_dir == tmp_path / "var"
    assert s.database_url == f"sqlite:///{tmp_path / 'var' / 'forms.db'}"
    assert s.storage_dir == tmp_path / "var" / "files"
    assert s.departement_name == "Département du Pas-de-Calais"
    assert s.departement_logo is None
    assert (s.ede_bound_low, s.ede_bound_high) == (18, 35)
    assert s.max_content_length == 10 * MIB
    assert s.soffice_pool_size >= 1
    assert s.secure_cookies is None and s.session_idle_minutes == 30
    assert s.secret_key and s.migrate_on_startup is True


def test_environment_variables(tmp_path):
    s = Settings.from_env(environ={
        "FORMS_SERVICE_VAR_DIR": str(tmp_path), "DATABASE_URL": "postgresql+psycopg://u@h/db",
        "DEPARTEMENT_NAME": "Département du Nord", "EDE_BOUND_LOW": "20", "EDE_BOUND_HIGH": "30",
        "MAX_CONTENT_LENGTH": "1024", "SOFFICE_POOL_SIZE": "3",
        "FORMS_SERVICE_SECURE_COOKIES": "true", "FORMS_SERVICE_SESSION_IDLE_MINUTES": "15",
        "SECRET_KEY": "x"})
    assert s.var_dir == tmp_path and s.storage_dir == tmp_path / "files"
    assert s.database_url.startswith("postgresql") and not s.is_sqlite
    assert s.migrate_on_startup is False  # PostgreSQL: run `forms-service db upgrade`
    assert (s.departement_name, s.ede_bound_low, s.ede_bound_high) == ("Département du Nord", 20, 30)
    assert (s.max_content_length, s.soffice_pool_size, s.secret_key) == (1024, 3, "x")
    assert s.secure_cookies is True and s.session_idle_minutes == 15


def test_overrides_win_over_the_environment(tmp_path):
    env = {"FORMS_SERVICE_VAR_DIR": "/nulle/part", "EDE_BOUND_LOW": "20"}
    s = Settings.from_env({"var_dir": tmp_path, "EDE_BOUND_LOW": 19, "TESTING": True}, environ=env)
    assert s.var_dir == tmp_path and s.ede_bound_low == 19


@pytest.mark.parametrize("overrides", [
    {"inconnu": 1},
    {"api_keys": "mds:cle"},            # FORMS_SERVICE_API_KEYS is gone: keys live in the database
    {"session_idle_minutes": 0},
    {"ede_bound_low": 40, "ede_bound_high": 30},
    {"soffice_pool_size": 0},
])
def test_bad_settings_are_refused(overrides):
    with pytest.raises(ValueError):
        Settings.from_env(overrides, environ={})


def test_settings_are_frozen():
    with pytest.raises(ValidationError):
        Settings.from_env(environ={}).var_dir = Path("/tmp")


def test_create_app_uses_overrides(app, tmp_path):
    settings = app.extensions["forms_service.settings"]
    assert settings.var_dir == tmp_path / "var"
    assert app.config["MAX_CONTENT_LENGTH"] == 10 * MIB and app.config["TESTING"] is True
    assert (tmp_path / "var" / "forms.db").is_file() and (tmp_path / "var" / "files").is_dir()


def test_the_process_environment_is_read_by_from_env_only(monkeypatch, tmp_path):
    monkeypatch.setenv("EDE_BOUND_LOW", "21")
    assert Settings.from_env().ede_bound_low == 21
    assert Settings.from_env(environ={}).ede_bound_low == 18
    assert Settings.from_env({"EDE_BOUND_LOW": 20}).ede_bound_low == 20


def test_every_variable_is_in_the_readme_table():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    for name in Settings.env_names():
        assert f"`{name}`" in table, name


def test_two_apps_do_not_share_their_services(make_app, tmp_path):
    from forms_service.render.service import get_service

    a = make_app(EDE_BOUND_LOW=20)
    b = make_app(var_dir=tmp_path / "autre")
    sa, sb = a.extensions["forms_service"], b.extensions["forms_service"]
    assert a.extensions["forms_service.settings"].ede_bound_low == 20
    assert b.extensions["forms_service.settings"].ede_bound_low == 18
    for part in ("pool", "sandbox", "render", "database"):
        assert getattr(sa, part) is not getattr(sb, part), part
    assert get_service(a) is sa.render and get_service(a).pool is sa.pool
    assert sa.pool.work_dir == tmp_path / "var" / "lo"
    assert sb.pool.work_dir == tmp_path / "autre" / "lo"
    assert a.blueprints["api"] is not b.blueprints["api"]   # built per app


def test_closing_an_app_stops_its_services_only(make_app, lo_pool):
    own = make_app()
    shared = make_app(PDF_POOL=lo_pool)
    other = make_app()
    own.close()
    own.close()  # twice is fine
    services = own.extensions["forms_service"]
    assert services.closed and services.pool.closed
    assert not other.extensions["forms_service"].pool.closed
    shared.close()
    assert not lo_pool.closed   # the caller's pool: not the app's to stop


# -- database -----------------------------------------------------------------

def test_a_reader_of_the_sqlite_database_does_not_block_a_writer(app, tmp_path):
    """Write-ahead log: a transaction reading (a reader process, a poll) neither blocks a
    commit nor sees it before its own end; the writer does not wait for it."""
    import sqlite3
    import time

    from forms_service import db
    from forms_service.db import AuditEvent

    path = tmp_path / "var" / "forms.db"
    with app.app_context(), db.session() as s:   # the app's connection opened (its pragmas)
        s.add(AuditEvent(actor="test", action="test.wal"))
    reader = sqlite3.connect(path, isolation_level=None)
    try:
        assert reader.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        reader.execute("BEGIN")
        before = reader.execute("SELECT count(*) FROM audit_event").fetchone()[0]
        t0 = time.monotonic()
        with app.app_context(), db.session() as s:   # would wait for the reader's lock (5 s), then fail
            s.add(AuditEvent(actor="test", action="test.wal"))
        assert time.monotonic() - t0 < 2.0
        assert reader.execute("SELECT count(*) FROM audit_event").fetchone()[0] == before
        reader.execute("COMMIT")
        assert reader.execute("SELECT count(*) FROM audit_event").fetchone()[0] == before + 1
    finally:
        reader.close()


def test_start_up_migration_creates_the_schema(app, tmp_path):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from forms_service.db import Base

    engine = create_engine(f"sqlite:///{tmp_path / 'var' / 'forms.db'}")
    try:
        tables = set(inspect(engine).get_table_names())
        assert {"template_version", "issued_document", "record", "audit_event",
                "alembic_version"} <= tables
        with engine.connect() as conn:
            # the migrations and the models describe the same schema
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}),
                                    Base.metadata)
        assert diff == []
    finally:
        engine.dispose()


def test_models_round_trip(app):
    from sqlalchemy import select

    from forms_service import db

    with app.app_context():
        with db.session() as s:
            doc = db.IssuedDocument(form_id="fiche-liaison", template_version="0123456789ab",
                                    data={"x": 1}, file_path="files/a.pdf", format="pdf",
                                    created_by="anonyme")
            s.add(doc)
            s.add(db.TemplateVersion(form_id="fiche-liaison", version="0123456789ab",
                                     layout={"pages": []}, template_sha="0" * 64))
        assert len(doc.document_id) == 26
        with db.session() as s:
            s.add(db.Record(form_id="fiche-liaison", document_id=doc.document_id, status="valid",
                            record={"x": 1}, source="scan"))
        with db.session() as s:
            rec = s.scalars(select(db.Record)).one()
            assert rec.document_id == doc.document_id and rec.created_at is not None


def test_document_ids_are_unique_and_sortable():
    from forms_service.db import new_document_id

    ids = [new_document_id() for _ in range(200)]
    assert len(set(ids)) == 200
    assert all(re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{26}", i) for i in ids)


# -- logging ------------------------------------------------------------------

def test_redact_masks_personal_data_at_any_depth():
    event = {"form_id": "fiche-liaison", "nom": "Dupont", "prenom": "Jeanne",
             "beneficiaire": {"anything": "x", "numero": 3},
             "payload": {"adresse": "12 rue des Lilas", "contacts": [{"email": "j@d.fr", "tel": "06"}],
                         "num_caf": "1234567", "dateNaissance": "1980-01-01",
                         "date_naissance": "1980-01-01", "portable": "07", "rule": "cer_duree"},
             "data": {"nom": "Dupont"}}
    out = redact(event)
    assert out["form_id"] == "fiche-liaison" and out["payload"]["rule"] == "cer_duree"
    for key in ("nom", "prenom", "beneficiaire", "data"):
        assert out[key] == MASK
    p = out["payload"]
    assert p["adresse"] == p["num_caf"] == p["dateNaissance"] == p["date_naissance"] == MASK
    assert p["contacts"] == [{"email": MASK, "tel": MASK}] and p["portable"] == MASK
    assert event["nom"] == "Dupont"  # the caller's dict is left alone


def test_log_lines_are_json_and_redacted(log_lines):
    get_logger("test").info("formulaire_recu", form_id="cer", nom="Dupont",
                            beneficiaire={"prenom": "Jeanne", "ville": "Arras"},
                            meta={"email": "jeanne@exemple.fr", "pages": 3})
    lines = [line for line in log_lines() if line.get("event") == "formulaire_recu"]
    assert len(lines) == 1
    line = lines[0]
    assert line["form_id"] == "cer" and line["level"] == "info" and "timestamp" in line
    assert line["nom"] == MASK and line["beneficiaire"] == MASK
    assert line["meta"] == {"email": MASK, "pages": 3}
    raw = log_lines.raw()
    for secret in ("Dupont", "Jeanne", "Arras", "jeanne@exemple.fr"):
        assert secret not in raw


def test_standard_library_loggers_keep_their_extra_fields(log_lines):
    """``logging`` calls with ``extra=`` (ours, and libraries') keep their fields in the JSON
    line, and those fields are masked like structlog's."""
    logging.getLogger("forms_service.test").warning(
        "rendu_lent", extra={"form_id": "cer", "duration_ms": 1234.5, "nom": "Dupont",
                             "beneficiaire": {"prenom": "Jeanne"}})
    lines = [line for line in log_lines() if line.get("event") == "rendu_lent"]
    assert len(lines) == 1
    line = lines[0]
    assert line["form_id"] == "cer" and line["duration_ms"] == 1234.5
    assert line["level"] == "warning" and line["logger"] == "forms_service.test"
    assert line["nom"] == MASK and line["beneficiaire"] == MASK
    assert "Dupont" not in log_lines.raw() and "Jeanne" not in log_lines.raw()


def test_requests_log_no_personal_data(client, log_lines):
    client.post("/api/v1/forms/fiche-liaison/validate",
                json={"beneficiaire": {"nom": "Dupont", "prenom": "Jeanne"}})
    client.post("/api/v1/forms/inconnu/validate", json={"nom": "Dupont"})
    assert "Dupont" not in log_lines.raw() and "Jeanne" not in log_lines.raw()


# -- set-up files ---------------------------------------------------------------

def test_every_dependency_is_pinned_to_what_is_installed():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = project["dependencies"] + project["optional-dependencies"]["test"]
    assert requirements
    for req in requirements:
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)(\[[a-z,]+\])?==([0-9][0-9A-Za-z.+\-]*)", req)
        assert m, f"not pinned exactly: {req}"
        assert metadata.version(m.group(1)) == m.group(3), req


def test_constraints_pin_the_installed_transitive_set():
    """constraints.txt is what scripts/lock writes from this environment (run it after
    changing a pin), and scripts/setup installs with it."""
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "lock"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "-c constraints.txt" in (ROOT / "scripts" / "setup").read_text(encoding="utf-8")


def test_readme_opens_with_the_two_commands():
    head = "\n".join((ROOT / "README.md").read_text(encoding="utf-8").splitlines()[:15])
    assert "scripts/run" in head and "scripts/test" in head


def test_ci_runs_the_test_command():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    commands = [line for line in ci.splitlines() if line.strip() and not line.startswith("#")]
    assert any(line.endswith("scripts/test") for line in commands)


@pytest.mark.parametrize("script", ["scripts/setup", "scripts/run", "scripts/test", ".ci/run"])
def test_scripts_are_valid_bash(script):
    subprocess.run(["bash", "-n", str(ROOT / script)], check=True)


def test_console_script_is_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["scripts"]["forms-service"] == "forms_service.cli:main"
    assert json.loads(json.dumps(project["requires-python"])) == ">=3.11"

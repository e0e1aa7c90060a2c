"""A database that cannot be read under a parse: a clear error, never confident blanks.

Issue 8: the store used to catch every exception and answer "no such document", so a
scan of a pre-filled form came back with its pre-filled zones as confident blanks when
the database was down. Here an app issues a pre-filled EDE (Annexe 3) and a fiche de
liaison on its own SQLite file; the file is then replaced by a damaged one (the engine
disposed first, so no connection survives), and the scan is read through the API, the
CLI and ``parse_files``: each fails with « Base de données indisponible » (503, exit
code 3, ``DatabaseUnavailable``).
"""

from __future__ import annotations

import io
import json

import pytest
from click.testing import CliRunner

from forms_service.errors import DatabaseUnavailable
from forms_service.render.pdf import get_pool, libreoffice_available

from test_parse_roundtrip import encode, sample, scan_pages

pytestmark = pytest.mark.skipif(not libreoffice_available(),
                                reason="LibreOffice is not installed (no soffice)")


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    """(app, var dir, scan bytes, document id), the app's database damaged after issuing."""
    from forms_service.app import create_app
    from forms_service.render.service import get_service

    pool = get_pool({"VAR_DIR": str(tmp_path_factory.getbasetemp() / "render-pool"), "PDF_POOL_SIZE": 2})
    pool.start()
    var = tmp_path_factory.mktemp("parse-db") / "var"
    app = create_app({"var_dir": var, "database_url": None, "departement_logo": None,
                      "TESTING": True, "PDF_POOL": pool})
    ede = get_service(app).render("annexe-3", sample("annexe-3"), fmt="pdf", actor="test")
    scan = encode(scan_pages(ede, sample("annexe-3"), seed=11, tick=False), "png")
    # the database goes: connections closed, the file replaced by one SQLite cannot read
    app.extensions["forms_service.db"].dispose()
    db_file = var / "forms.db"
    db_file.write_bytes(b"ceci n'est plus une base SQLite" * 100)
    yield app, var, scan, ede.document_id
    box = app.extensions.get("parsers.sandbox")
    if box is not None:
        box.close()
    app.extensions["forms_service.db"].dispose()


def test_api_answers_503_not_confident_blanks(broken):
    app, _, scan, _ = broken
    r = app.test_client().post("/api/v1/parse", data={"files": [(io.BytesIO(scan), "ede.png")]},
                               content_type="multipart/form-data")
    assert r.status_code == 503, r.get_data(as_text=True)
    [error] = r.get_json()["errors"]
    assert error["rule"] == "base_indisponible"
    assert error["message"].startswith("Base de données indisponible")


def test_cli_exits_3_with_a_french_line(broken, monkeypatch):
    from forms_service.cli import main

    _, var, scan, _ = broken
    path = var / "ede.png"
    path.write_bytes(scan)
    monkeypatch.setenv("FORMS_SERVICE_VAR_DIR", str(var))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    result = CliRunner().invoke(main, ["parse", str(path), "--json"])
    assert result.exit_code == 3, result.output
    assert "Erreur : Base de données indisponible" in result.output
    assert "Traceback" not in result.output


def test_parse_files_raises_database_unavailable(broken):
    from parsers.parse import parse_files
    from parsers.store import Store

    app, _, scan, _ = broken
    store = Store(app.extensions["forms_service.settings"], database=app.extensions["forms_service.db"])
    with pytest.raises(DatabaseUnavailable):
        parse_files([("ede.png", scan)], store=store)


def test_a_readable_database_gives_the_pre_filled_values(tmp_path_factory):
    """The same scan with the database in place: pre-filled values come back (the test
    above can fail only because the database is gone)."""
    from forms_service.app import create_app
    from forms_service.render.service import get_service
    from parsers.parse import parse_files
    from parsers.store import Store

    pool = get_pool({"VAR_DIR": str(tmp_path_factory.getbasetemp() / "render-pool"), "PDF_POOL_SIZE": 2})
    var = tmp_path_factory.mktemp("parse-db-ok") / "var"
    app = create_app({"var_dir": var, "database_url": None, "departement_logo": None,
                      "TESTING": True, "PDF_POOL": pool})
    try:
        ede = get_service(app).render("annexe-3", sample("annexe-3"), fmt="pdf", actor="test")
        scan = encode(scan_pages(ede, sample("annexe-3"), seed=11, tick=False), "png")
        store = Store(app.extensions["forms_service.settings"], database=app.extensions["forms_service.db"])
        [record] = parse_files([("ede.png", scan)], store=store)
        name = record["fields"]["beneficiaire.nom"]
        assert name["value"] == sample("annexe-3")["beneficiaire"]["nom"] and not name["needs_review"]
    finally:
        app.extensions["forms_service.db"].dispose()

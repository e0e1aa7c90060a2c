"""Issue 9, item 2: characters no document can hold (NUL, control characters, lone
surrogates, U+FFFE/FFFF) are refused by validation in every string field of every
form, and the render service re-checks, so nothing holding them is issued."""

from __future__ import annotations

import io
import json
import sqlite3
import zipfile
from xml.dom import minidom

import pytest

from forms_service import characters
from forms_service.catalogue import catalogue
from forms_service.validation import validate
from test_render_service import needs_libreoffice, sample

FORMS = [fd for fd in catalogue.forms() if fd.kind == "form"]
FORBIDDEN = ["\x00", "\x01", "\x08", "\x0b", "\x0c", "\x1f", "\x7f", "\x85", "\x9f",
             "\ud800", "\udfff", "\ufffe", "\uffff"]
ALLOWED = ["\t", "\n", "\r", "é", "’", "€", "\u00a0", "😀"]


def string_fields(fields, prefix=""):
    """(path, field) of every text and code field, list items included (as item 0)."""
    for f in fields:
        path = f"{prefix}{f.path}"
        if f.type in ("text", "code"):
            yield path, f
        elif f.type == "list":
            yield from string_fields(f.item_fields, f"{path}.0.")


def data_with(path: str, value: str) -> dict:
    data: dict = {}
    node = data
    parts = path.split(".")
    for part, nxt in zip(parts, parts[1:]):
        if nxt.isdigit():
            node = node.setdefault(part, [{}])[0]
        elif part.isdigit():
            continue
        else:
            node = node.setdefault(part, {})
    node[parts[-1]] = value
    return data


CASES = [(fd.id, path) for fd in FORMS for path, _ in string_fields(fd.fields)]


@pytest.mark.parametrize("form_id,path", CASES)
def test_every_string_field_refuses_every_forbidden_character(form_id, path):
    fd = catalogue.get(form_id)
    for char in FORBIDDEN:
        report = validate(fd, data_with(path, f"ab{char}cd"))
        assert not report.valid
        problems = [p for p in report.problems if p.rule == "caractere_interdit"]
        assert [p.path for p in problems] == [path], (char, report.as_dict())
        if not "\ud800" <= char <= "\udfff":  # pydantic names a lone surrogate itself
            assert f"U+{ord(char):04X}" in problems[0].message
        assert "Caractère interdit" in problems[0].message


def test_allowed_characters_pass():
    fd = catalogue.get("fiche-liaison")
    for char in ALLOWED:
        report = validate(fd, {"mds": f"MDS{char}Arras"})
        assert report.model_valid, (char, report.as_dict())
    assert characters.first_forbidden("".join(ALLOWED)) is None


def test_forbidden_paths_walks_lists_and_keys():
    value = {"a": ["ok", {"b": "x\x00"}], "c\x01": 1}
    assert list(characters.forbidden_paths(value)) == [("a.1.b", "\x00"), ("c\x01", "\x01")]


# ---------------------------------------------------------------------- through the API

@pytest.fixture
def app(make_app, lo_pool):
    return make_app(PDF_POOL=lo_pool)


def rows(app) -> int:
    db = app.extensions["forms_service.settings"].var_dir / "forms.db"
    with sqlite3.connect(db) as con:
        return con.execute("SELECT count(*) FROM issued_document").fetchone()[0] + \
            con.execute("SELECT count(*) FROM audit_event").fetchone()[0]


def stored_files(app) -> list:
    return list(app.extensions["forms_service.settings"].storage_dir.rglob("*.*"))


@pytest.mark.parametrize("fmt", ["docx", "pdf"])
def test_render_refuses_a_nul_and_issues_nothing(app, fmt):
    if fmt == "pdf":
        pytest.importorskip("unoserver")
    client = app.test_client()
    body = json.dumps(dict(sample("fiche-liaison"), mds="MDS\u0000Arras"))
    r = client.post(f"/api/v1/forms/fiche-liaison/render?format={fmt}", data=body,
                    content_type="application/json")
    assert r.status_code == 422
    assert r.get_json()["errors"] == [{"path": "mds", "rule": "caractere_interdit",
                                       "message": characters.message("\x00")}]
    assert rows(app) == 0 and stored_files(app) == []


@needs_libreoffice
def test_pdf_batch_of_8_with_one_control_character_issues_nothing(app):
    client = app.test_client()
    items = [dict(sample("fiche-liaison"), mds=f"MDS {i}") for i in range(8)]
    items[5]["mds"] = "MDS\u001bArras"
    r = client.post("/api/v1/forms/fiche-liaison/render-batch?format=pdf", json=items)
    assert r.status_code == 422
    assert [(e["path"], e["rule"]) for e in r.get_json()["errors"]] == [
        ("items.5.mds", "caractere_interdit")]
    assert rows(app) == 0 and stored_files(app) == []


def test_docx_with_tabs_and_newlines_is_well_formed_xml(app):
    client = app.test_client()
    r = client.post("/api/v1/forms/fiche-liaison/render",
                    json=dict(sample("fiche-liaison"), mds="MDS\td'Arras\nligne 2\r\n"))
    assert r.status_code == 200
    with zipfile.ZipFile(io.BytesIO(r.data)) as z:
        for name in z.namelist():
            if name.endswith(".xml"):
                minidom.parseString(z.read(name))  # raises on a character XML cannot hold

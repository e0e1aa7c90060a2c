"""Issue 9, item 8: every message a user reads is French. pydantic's error types go
through one table (``forms_service.errors.PYDANTIC_MESSAGES``)."""

from __future__ import annotations

import re
import typing

import pytest
from pydantic_core.core_schema import ErrorType

from forms_service.catalogue import catalogue
from forms_service.errors import PYDANTIC_MESSAGES, problem_from_pydantic
from forms_service.validation import validate

ENGLISH = re.compile(r"\b(Input|should|valid|must|field|required|expected|Value error|"
                     r"error|unable|characters?|greater|less|type)\b")
ERROR_CODES = [t for t in typing.get_args(ErrorType) if "_" in t]
FORMS = [fd for fd in catalogue.forms() if fd.kind == "form"]


def assert_french(message: str) -> None:
    assert message and not ENGLISH.search(message), message
    shown = [t for t in ERROR_CODES if re.search(rf"\b{t}\b", message)]
    assert not shown, message  # no error-type code shown as text


@pytest.mark.parametrize("error_type", typing.get_args(ErrorType))
def test_every_pydantic_error_type_has_a_french_message(error_type):
    ctx = {"expected": "'a' or 'b'", "max_length": 3, "min_length": 1, "ge": 1, "le": 9,
           "gt": 0, "lt": 10, "multiple_of": 2, "max_digits": 4, "decimal_places": 2,
           "value": "x", "liste": "annexe-1", "codepoint": "U+0000"}
    p = problem_from_pydantic({"type": error_type, "loc": ("a",), "msg": "Input should be x",
                               "ctx": ctx}, "a")
    assert_french(p.message)
    assert re.fullmatch(r"[a-z_]+", p.rule)


def test_missing_context_never_shows_a_placeholder():
    for error_type in PYDANTIC_MESSAGES:
        p = problem_from_pydantic({"type": error_type, "loc": (), "msg": "x"}, "")
        assert "{" not in p.message, (error_type, p.message)


def bad_values(field):
    """A wrong value of each kind for a field, by its type."""
    common = [{"objet": 1}, [1], 3.5]
    by_type = {
        "text": [12, True, "x" * 5000],
        "code": [12, "ZZZZZ-inconnu"],
        "date": ["23/11/2026", "2026-02-30", 12, "2026-11-23T10:00:00"],
        "integer": ["douze", 1.5, True, 10 ** 30, -10 ** 6],
        "bool": ["peut-être", 2, None],
        "tri": ["peut-être", 2],
        "choice": ["inconnu", 3],
        "multi": ["pas une liste", ["inconnu"], [None]],
        "list": ["pas une liste", [None], [1], [{}] * 500],
    }
    return by_type.get(field.type, []) + common


def walk(fields, prefix=""):
    for f in fields:
        yield f"{prefix}{f.path}", f
        if f.type == "list":
            yield from walk(f.item_fields, f"{prefix}{f.path}.0.")


def data_at(path: str, value):
    data: dict = {}
    node = data
    parts = path.split(".")
    for part, nxt in zip(parts, parts[1:]):
        if part.isdigit():
            continue
        node = node.setdefault(part, [{}])[0] if nxt.isdigit() else node.setdefault(part, {})
    node[parts[-1]] = value
    return data


@pytest.mark.parametrize("fd", FORMS, ids=lambda fd: fd.id)
def test_every_error_our_models_raise_is_french(fd):
    seen = set()
    for path, field in walk(fd.fields):
        if field.type == "signature":
            continue
        for value in bad_values(field):
            report = validate(fd, data_at(path, value))
            for p in report.problems:
                if p.severity == "error":
                    assert_french(p.message)
                    seen.add(p.rule)
    report = validate(fd, {"champ_qui_n_existe_pas": 1})
    assert [p.rule for p in report.problems] == ["champ_inconnu"]
    assert {"type_invalide", "champ_inconnu"} <= seen | {"champ_inconnu"}


def test_query_parameter_errors_are_french(client):
    for query in ("format=xml", "fillable=peut-etre", "strict=2"):
        r = client.post(f"/api/v1/forms/fiche-liaison/render?{query}", json={})
        assert r.status_code == 400
        for e in r.get_json()["errors"]:
            assert_french(e["message"])
            assert "literal_error" not in e["message"] and "bool_parsing" not in e["message"]


def test_a_null_batch_item_is_named(client):
    r = client.post("/api/v1/forms/fiche-liaison/render-batch", json=[{}, {}, {}, None])
    assert r.status_code == 422
    assert r.get_json()["errors"] == [{
        "path": "items.3", "rule": "objet_attendu",
        "message": "L'élément 3 du lot doit être un objet JSON (null reçu)"}]


def test_werkzeug_errors_are_french(client):
    r = client.get("/api/v1/nulle-part")
    assert r.status_code == 404 and r.get_json()["errors"][0]["message"] == "Ressource introuvable"
    r = client.delete("/api/v1/forms")
    assert r.status_code == 405
    assert_french(r.get_json()["errors"][0]["message"])

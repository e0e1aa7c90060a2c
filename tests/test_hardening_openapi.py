"""Issue 9, item 7: the OpenAPI document validates, declares the API-key schemes, and
declares each form's body as the form's own schema, so a client following it is
accepted (the schemathesis run, ``test_schemathesis.py``, checks the rest)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from openapi_spec_validator import validate as validate_spec

from forms_service.catalogue import catalogue

ROOT = Path(__file__).resolve().parents[1]
FORMS = [fd for fd in catalogue.forms() if fd.kind == "form"]
REFERENCES = [fd for fd in catalogue.forms() if fd.kind != "form"]


@pytest.fixture
def spec(client):
    return client.get("/api/v1/openapi.json").get_json()


def test_document_validates(spec):
    validate_spec(spec)


def test_api_key_schemes_are_declared(spec):
    schemes = spec["components"]["securitySchemes"]
    assert {"type": "apiKey", "in": "header", "name": "X-API-Key"}.items() <= schemes["cleApi"].items()
    assert schemes["porteur"]["type"] == "http" and schemes["porteur"]["scheme"] == "bearer"
    assert spec["security"] == [{"cleApi": []}, {"porteur": []}]
    assert spec["paths"]["/api/v1/health"]["get"]["security"] == []


@pytest.mark.parametrize("fd", FORMS, ids=lambda fd: fd.id)
def test_each_form_body_is_its_schema(spec, fd):
    ref = {"$ref": f"#/components/schemas/{fd.id}"}
    paths = spec["paths"]
    validate_op = paths[f"/api/v1/forms/{fd.id}/validate"]["post"]
    assert validate_op["requestBody"]["content"]["application/json"]["schema"] == ref
    assert validate_op["requestBody"]["required"] is True
    render = paths[f"/api/v1/forms/{fd.id}/render"]["post"]
    assert render["requestBody"]["content"]["application/json"]["schema"] == ref
    assert render["requestBody"]["required"] is False
    batch = paths[f"/api/v1/forms/{fd.id}/render-batch"]["post"]
    assert batch["requestBody"]["content"]["application/json"]["schema"]["items"] == ref
    for op in (validate_op, render, batch):
        assert {"400", "413", "415"} <= set(op["responses"])


@pytest.mark.parametrize("fd", REFERENCES, ids=lambda fd: fd.id)
def test_reference_lists_promise_no_body(spec, fd):
    paths = spec["paths"]
    assert f"/api/v1/forms/{fd.id}/validate" not in paths
    assert f"/api/v1/forms/{fd.id}/render-batch" not in paths
    render = paths[f"/api/v1/forms/{fd.id}/render"]["post"]
    assert "requestBody" not in render
    assert "fillable" not in {p["name"] for p in render["parameters"]}


def test_samples_fit_the_document_and_are_accepted(spec, client):
    """A client following the document: each sample fits the declared body and the
    service accepts it (validate 200, render 200)."""
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    registry = Registry().with_resource(
        "urn:spec", Resource.from_contents(spec, default_specification=DRAFT202012))
    for sample in sorted((ROOT / "samples").glob("*.json")):
        form_id = next((fd.id for fd in FORMS if sample.stem == fd.id or
                        sample.stem.startswith(fd.id + "-")), None)
        if form_id is None:
            continue
        data = json.loads(sample.read_text())
        schema = {"$ref": f"urn:spec#/components/schemas/{form_id}"}
        jsonschema.Draft202012Validator(schema, registry=registry).validate(data)
        r = client.post(f"/api/v1/forms/{form_id}/validate", json=data)
        assert r.status_code == 200, sample.name
        assert client.post(f"/api/v1/forms/{form_id}/render", json=data).status_code == 200


def test_a_body_refused_by_the_document_is_refused_by_the_service(spec, client):
    r = client.post("/api/v1/forms/fiche-liaison/validate", json={"champ_inconnu": 1})
    assert r.status_code == 200 and r.get_json()["valid"] is False
    schema = spec["components"]["schemas"]["fiche-liaison"]
    assert schema.get("additionalProperties") is False

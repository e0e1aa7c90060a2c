"""Contract of the JSON API under /api/v1: shapes, status codes, error bodies."""

from __future__ import annotations

import pytest

from forms_service.catalogue import catalogue

FORMS = [fd for fd in catalogue.forms() if fd.kind == "form"]
REFERENCES = [fd for fd in catalogue.forms() if fd.kind != "form"]
VALIDATE = "/api/v1/forms/{}/validate"


def assert_error_body(response, status, rule=None):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json
    body = response.get_json()
    assert set(body) == {"errors"} and body["errors"]
    for item in body["errors"]:
        assert set(item) == {"path", "rule", "message"}
        assert all(isinstance(v, str) for v in item.values())
    if rule:
        assert rule in {e["rule"] for e in body["errors"]}
    return body


def test_list_forms(client):
    r = client.get("/api/v1/forms")
    assert r.status_code == 200
    forms = r.get_json()
    assert [f["id"] for f in forms] == [fd.id for fd in catalogue.forms()]
    for f in forms:
        assert set(f) == {"id", "title", "kind", "pages"}
        assert f["kind"] in {"form", "reference"}
        assert f["pages"] is None or isinstance(f["pages"], int)
    assert "fiche-liaison" in {f["id"] for f in forms}


@pytest.mark.parametrize("fd", FORMS, ids=lambda fd: fd.id)
def test_get_form_gives_its_schema(client, fd):
    r = client.get(f"/api/v1/forms/{fd.id}")
    assert r.status_code == 200
    body = r.get_json()
    assert {k: body[k] for k in ("id", "title", "kind", "pages")} == \
        {"id": fd.id, "title": fd.title, "kind": "form", "pages": fd.pages}
    assert body["schema"] == fd.json_schema()
    assert "entries" not in body


@pytest.mark.parametrize("fd", REFERENCES, ids=lambda fd: fd.id)
def test_get_reference_gives_its_entries(client, fd):
    body = client.get(f"/api/v1/forms/{fd.id}").get_json()
    assert body["kind"] == "reference" and "schema" not in body
    assert body["entries"] and all({"code", "label"} <= set(e) for e in body["entries"])


def test_alias_resolves_to_the_form(client):
    fd = next(fd for fd in catalogue.forms() if fd.aliases)
    body = client.get(f"/api/v1/forms/{fd.aliases[0]}").get_json()
    assert body["id"] == fd.id


def test_unknown_form_is_404(client):
    assert_error_body(client.get("/api/v1/forms/pas-un-formulaire"), 404, "formulaire_inconnu")
    assert_error_body(client.post(VALIDATE.format("pas-un-formulaire"), json={}), 404,
                      "formulaire_inconnu")


def test_validate_reports_findings_with_200(client):
    r = client.post(VALIDATE.format("fiche-liaison"), json={})
    assert r.status_code == 200
    report = r.get_json()
    assert report["valid"] is False and report["errors"]
    for p in report["errors"]:
        assert {"path", "rule", "severity", "message"} <= set(p)
        assert p["severity"] in {"error", "warning"}


def test_validate_matches_the_library(client):
    from forms_service.validation import validate

    data = {"beneficiaire": {"nom": "Exemple"}}
    expected = validate(catalogue.get("fiche-liaison"), data).as_dict()
    assert client.post(VALIDATE.format("fiche-liaison"), json=data).get_json() == expected


@pytest.mark.parametrize("body,content_type", [
    (b"{pas du json", "application/json"),
    (b"[1, 2]", "application/json"),
    (b'"{}"', "application/json"),
    (b"null", "application/json"),
    (b"42", "application/json"),
    (b"", "application/json"),
])
def test_validate_body_must_be_a_json_object(client, body, content_type):
    r = client.post(VALIDATE.format("fiche-liaison"), data=body, content_type=content_type)
    assert_error_body(r, 400, "requete_invalide")


def test_validate_body_sent_as_text_is_415(client):  # issue 9, item 10
    r = client.post(VALIDATE.format("fiche-liaison"), data=b'{"a": 1}', content_type="text/plain")
    assert_error_body(r, 415, "type_de_contenu")


def test_validate_a_reference_list_is_400(client):
    fd = REFERENCES[0]
    assert_error_body(client.post(VALIDATE.format(fd.id), json={}), 400, "liste_de_reference")


def test_huge_body_is_413(client, app):
    size = app.config["MAX_CONTENT_LENGTH"] + 1
    r = client.post(VALIDATE.format("fiche-liaison"), data=b" " * size, content_type="application/json")
    assert_error_body(r, 413, "taille_maximale")


def test_wrong_method_is_405_json(client):
    r = client.delete("/api/v1/forms")
    assert_error_body(r, 405, "methode_non_autorisee")
    assert "GET" in r.headers.get("Allow", "")


def test_unknown_api_path_is_404_json(client):
    assert_error_body(client.get("/api/v1/rien-ici"), 404, "introuvable")


@pytest.mark.parametrize("method,url,kwargs", [
    ("get", "/api/v1/forms/%C3%A9t%C3%A9", {}),
    ("get", "/api/v1/forms/" + "x" * 2000, {}),
    ("get", "/api/v1/forms/..%2F..%2Fetc%2Fpasswd", {}),
    ("post", VALIDATE.format("fiche-liaison"), {"json": {"beneficiaire": [1, {"a": None}]}}),
    ("post", VALIDATE.format("fiche-liaison"), {"json": {"cer": {"date_debut": "pas une date"}}}),
    ("post", VALIDATE.format("fiche-liaison"), {"json": {"x" * 500: "y" * 100000}}),
    ("post", VALIDATE.format("fiche-liaison"), {"data": b"\xff\xfe\x00", "content_type": "application/json"}),
    ("post", VALIDATE.format("annexe-3"), {"json": {"items": {"a": {"b": {"c": []}}}}}),
    ("put", "/api/v1/forms/fiche-liaison", {"json": {}}),
    ("post", "/api/v1/health", {}),
])
def test_odd_requests_never_give_500(client, method, url, kwargs):
    r = getattr(client, method)(url, **kwargs)
    assert r.status_code < 500, r.get_data(as_text=True)
    assert r.is_json


def test_a_bug_is_a_json_500_without_personal_data(make_app, log_lines):
    app = make_app()

    @app.get("/api/v1/_boom")
    def boom():
        raise RuntimeError("Dupont Jeanne, 12 rue des Lilas")

    r = app.test_client().get("/api/v1/_boom")
    body = assert_error_body(r, 500, "erreur_interne")
    assert "Dupont" not in str(body)
    logged = log_lines.raw()
    assert "erreur_interne" in logged and "RuntimeError" in logged
    assert "Dupont" not in logged and "Lilas" not in logged


def test_html_pages_get_french_error_pages(client):
    r = client.get("/formulaires/pas-un-formulaire")
    assert r.status_code == 404 and r.mimetype == "text/html"
    assert "Formulaire inconnu" in r.get_data(as_text=True)
    r = client.get("/page-qui-n-existe-pas")
    assert r.status_code == 404 and "Page introuvable" in r.get_data(as_text=True)


def test_health(client):
    r = client.get("/api/v1/health")
    assert r.status_code == 200
    body = r.get_json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["catalogue"]["ok"] is True


def test_health_reports_a_failing_check(make_app):
    from forms_service.app import register_health_check

    app = make_app()
    register_health_check(app, "libreoffice", lambda: {"ok": False, "detail": "arrêté"})

    def broken():
        raise OSError("no such thing")

    register_health_check(app, "casse", broken)
    r = app.test_client().get("/api/v1/health")
    assert r.status_code == 503
    body = r.get_json()
    assert body["status"] == "degraded"
    assert body["checks"]["libreoffice"] == {"ok": False, "detail": "arrêté"}
    assert body["checks"]["casse"]["ok"] is False


def test_openapi_document_is_generated(client):
    r = client.get("/api/v1/openapi.json")
    assert r.status_code == 200
    spec = r.get_json()
    assert spec["openapi"].startswith("3.")
    # Validation is declared per form, with the form's schema as its body (issue 9, item 7).
    assert {"/api/v1/forms", "/api/v1/forms/{form_id}", "/api/v1/forms/fiche-liaison/validate",
            "/api/v1/health"} <= set(spec["paths"])
    schemas = spec["components"]["schemas"]
    for fd in FORMS:
        assert fd.id in schemas
    # every $ref points at a component that exists
    refs = []

    def walk(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "$ref":
                    refs.append(v)
                else:
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(spec)
    assert refs
    for ref in refs:
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.removeprefix("#/components/schemas/") in schemas, ref
    validate_op = spec["paths"]["/api/v1/forms/fiche-liaison/validate"]["post"]
    assert "requestBody" in validate_op and "200" in validate_op["responses"]
    assert validate_op["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/fiche-liaison"}


def test_api_keys_once_an_account_exists(app, api_key):
    """Keys created through the model (stored hashed): X-API-Key or Bearer; health stays open."""
    c = app.test_client()
    assert c.get("/api/v1/forms").status_code == 200          # open mode: no account, no key
    key, other = api_key(scopes="render"), api_key(scopes="parse")
    assert_error_body(c.get("/api/v1/forms"), 401, "cle_api_invalide")
    assert_error_body(c.get("/api/v1/forms", headers={"X-API-Key": "faux"}), 401)
    assert c.get("/api/v1/forms", headers={"X-API-Key": key}).status_code == 200
    assert c.get("/api/v1/forms", headers={"Authorization": f"Bearer {other}"}).status_code == 200
    assert c.get("/api/v1/health").status_code == 200


def test_home_lists_every_form(client):
    r = client.get("/")
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    assert '<html lang="fr">' in html and "Département du Pas-de-Calais" in html
    for fd in catalogue.forms():
        assert f"/formulaires/{fd.id}" in html
    for fd in catalogue.forms():
        assert client.get(f"/formulaires/{fd.id}").status_code == 200


def test_slai_page(client):
    r = client.get("/slai/")
    assert r.status_code == 200 and "Guichet SLAI" in r.get_data(as_text=True)


def test_departement_name_and_logo_are_configurable(make_app, tmp_path):
    logo = tmp_path / "logo.png"
    logo.write_bytes(b"\x89PNG\r\n\x1a\n")
    c = make_app(departement_name="Département de Test", departement_logo=logo).test_client()
    html = c.get("/").get_data(as_text=True)
    assert "Département de Test" in html and "/logo" in html
    assert c.get("/logo").data.startswith(b"\x89PNG")


def test_audit_event_is_stored_without_personal_data(app):
    from sqlalchemy import select

    from forms_service import db
    from forms_service.audit import record_event

    with app.app_context():
        record_event("mds-arras", "document.rendu", form_id="fiche-liaison", document_id="01TEST",
                     format="pdf", beneficiaire={"nom": "Dupont"}, nom="Dupont")
        with db.session() as s:
            event = s.scalars(select(db.AuditEvent)).one()
    assert (event.actor, event.action, event.form_id, event.document_id) == \
        ("mds-arras", "document.rendu", "fiche-liaison", "01TEST")
    assert event.detail["format"] == "pdf"
    assert "Dupont" not in str(event.detail)

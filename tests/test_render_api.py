"""``POST /api/v1/forms/{id}/render``, ``/render-batch`` and ``GET /layout`` over HTTP
(the Flask test client, and once through a real server on 127.0.0.1), with the real
LibreOffice pool of the session (shared with the other render test modules)."""

from __future__ import annotations

import io
import json
import threading
import urllib.error
import urllib.request
import zipfile

import pytest

from forms_service.render.pdf import libreoffice_available, pdf_page_count
from forms_service.render.service import FINDINGS_HEADER_LIMIT, MAX_BATCH
from test_render_service import (assert_pages_identify, needs_libreoffice, norm, pdf_pages_text,
                                 sample)

FORM = "fiche-liaison"
REFERENCE = "annexe-1"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


@pytest.fixture
def app(make_app, lo_pool):
    return make_app(PDF_POOL=lo_pool)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def no_lo_client(make_app):
    """An app whose pool is configured with a soffice that does not exist."""
    return make_app(PDF_SOFFICE="/nonexistent/soffice").test_client()


def errors_of(r, status: int) -> list[dict]:
    assert r.status_code == status, r.get_data(as_text=True)[:500]
    assert r.is_json
    body = r.get_json()
    assert set(body) == {"errors"} and body["errors"]
    assert all(set(e) == {"path", "rule", "message"} for e in body["errors"])
    return body["errors"]


def findings(r) -> list[dict]:
    raw = r.headers["X-Forms-Findings"]
    assert raw.isascii()
    items = json.loads(raw)
    assert all(set(f) == {"path", "rule", "severity", "message"} for f in items)
    return items


# ---------------------------------------------------------------------- one document

@needs_libreoffice
def test_render_pdf(client):
    r = client.post(f"/api/v1/forms/{FORM}/render?format=pdf", json=sample(FORM) or {})
    assert r.status_code == 200, r.get_data(as_text=True)[:500]
    assert r.mimetype == "application/pdf"
    doc_id, version = r.headers["X-Document-Id"], r.headers["X-Template-Version"]
    assert r.headers["Content-Disposition"].startswith("attachment;")
    assert f"{FORM}_" in r.headers["Content-Disposition"] and f"_{doc_id}.pdf" in r.headers["Content-Disposition"]
    assert "WATTEBLED" not in r.headers["Content-Disposition"]
    assert r.headers["Cache-Control"] == "no-store"
    assert pdf_page_count(r.data) == 3
    assert_pages_identify(r.data, FORM, version, doc_id)
    assert int(r.headers["X-Forms-Findings-Count"]) == len(findings(r))


def test_render_docx_with_findings_header(client):
    r = client.post("/api/v1/forms/annexe-7/render", json={"objet": ["autre"]})
    assert r.status_code == 200 and r.mimetype == DOCX
    items = findings(r)
    assert {"objet_autre_non_precise", "page1_champ_obligatoire"} <= {f["rule"] for f in items}
    assert "\\u00" in r.headers["X-Forms-Findings"]  # French messages, ASCII-escaped
    assert any("être" in f["message"] for f in items)
    assert len(r.headers["X-Template-Version"]) == 12


def test_empty_body_renders_the_blank_form(client):
    for kwargs in ({}, {"data": b""}, {"json": {}}, {"data": b"null", "content_type": "application/json"}):
        r = client.post(f"/api/v1/forms/{FORM}/render", **kwargs)
        assert r.status_code == 200, (kwargs, r.get_data(as_text=True)[:300])
        assert r.data[:2] == b"PK"


def test_reference_list_renders_without_data_only(client):
    r = client.post(f"/api/v1/forms/{REFERENCE}/render")
    assert r.status_code == 200 and r.data[:2] == b"PK"
    assert json.loads(r.headers["X-Forms-Findings"]) == []
    errors_of(client.post(f"/api/v1/forms/{REFERENCE}/render", json={"a": 1}), 400)


def test_huge_findings_header_is_cut(client):
    from forms_service.errors import Problem
    from forms_service.render.service import findings_header

    many = [Problem(f"p{i}", "regle", "Message assez long pour remplir l'en-tête " * 3)
            for i in range(200)]
    header = findings_header(many)
    assert len(header) <= FINDINGS_HEADER_LIMIT and 0 < len(json.loads(header)) < 200


@needs_libreoffice
def test_fillable_pdf(client):
    r = client.post(f"/api/v1/forms/{FORM}/render?format=pdf&fillable=true",
                    json={"mds": "MDS de Lens", "objet": ["passage_ep"]})
    assert r.status_code == 200, r.get_data(as_text=True)[:500]
    from pypdf import PdfReader

    fields = PdfReader(io.BytesIO(r.data)).get_fields() or {}
    assert any(f.get("/V") == "MDS de Lens" for f in fields.values())
    assert_pages_identify(r.data, FORM, r.headers["X-Template-Version"], r.headers["X-Document-Id"])


# ---------------------------------------------------------------------- errors

def test_unknown_form_is_404(client):
    [e] = errors_of(client.post("/api/v1/forms/nope/render", json={}), 404)
    assert e["rule"] == "formulaire_inconnu"


def test_invalid_json_is_400(client):
    [e] = errors_of(client.post(f"/api/v1/forms/{FORM}/render", data=b"{\"mds\": ",
                                content_type="application/json"), 400)
    assert e["rule"] in ("json_invalide", "requete_invalide")
    errors_of(client.post(f"/api/v1/forms/{FORM}/render", json=[1, 2]), 400)
    errors_of(client.post(f"/api/v1/forms/{FORM}/render?format=odt", json={}), 400)
    errors_of(client.post(f"/api/v1/forms/{FORM}/render?format=docx&fillable=true", json={}), 400)


def test_wrong_types_are_422_with_paths(client):
    data = {"beneficiaire": {"nom": ["x"], "rsa_depuis": "2010-13-45"}, "objet": ["pas_un_code"],
            "inconnu": True}
    errs = errors_of(client.post(f"/api/v1/forms/{FORM}/render?format=pdf", json=data), 422)
    assert {(e["path"], e["rule"]) for e in errs} == {
        ("beneficiaire.nom", "type_invalide"), ("beneficiaire.rsa_depuis", "date_invalide"),
        ("objet.0", "code_inconnu"), ("inconnu", "champ_inconnu")}


def test_text_longer_than_its_box_is_422(client):
    [e] = errors_of(client.post(f"/api/v1/forms/{FORM}/render", json={"mds": "M" * 61}), 422)
    assert (e["path"], e["rule"]) == ("mds", "longueur_maximale")


def test_strict_mode_is_422_with_rule_codes(client):
    data = {"objet": ["autre"]}
    errs = errors_of(client.post(f"/api/v1/forms/{FORM}/render?strict=true", json=data), 422)
    assert {"objet_autre_non_precise", "page1_champ_obligatoire"} <= {e["rule"] for e in errs}
    assert ("objet_autre", "objet_autre_non_precise") in {(e["path"], e["rule"]) for e in errs}
    if sample(FORM):
        assert client.post(f"/api/v1/forms/{FORM}/render?strict=true",
                           json=sample(FORM)).status_code == 200


def test_huge_body_is_413(client, app):
    size = app.config["MAX_CONTENT_LENGTH"] + 1
    body = b'{"mds": "' + b"x" * size + b'"}'
    [e] = errors_of(client.post(f"/api/v1/forms/{FORM}/render", data=body,
                                content_type="application/json"), 413)
    assert e["rule"] == "taille_maximale"


def test_pdf_without_libreoffice_is_503_and_docx_still_works(no_lo_client):
    [e] = errors_of(no_lo_client.post(f"/api/v1/forms/{FORM}/render?format=pdf", json={}), 503)
    assert e["rule"] == "composant_indisponible" and "LibreOffice" in e["message"]
    assert "DOCX" in e["message"]
    assert no_lo_client.post(f"/api/v1/forms/{FORM}/render?format=docx", json={}).status_code == 200
    errors_of(no_lo_client.post(f"/api/v1/forms/{FORM}/render-batch?format=pdf", json=[{}]), 503)
    # bad data is still reported as such
    errors_of(no_lo_client.post(f"/api/v1/forms/{FORM}/render?format=pdf", json={"mds": 1}), 422)
    health = no_lo_client.get("/api/v1/health")
    assert health.status_code == 503
    assert health.get_json()["checks"]["libreoffice"]["ok"] is False


@needs_libreoffice
def test_health_reports_the_pool_without_converting_on_each_call(client, lo_pool):
    r = client.get("/api/v1/health")  # at most one test print per minute: maybe this one
    assert r.status_code == 200, r.get_json()
    conversions = lo_pool.stats["conversions"]
    for _ in range(3):
        r = client.get("/api/v1/health")
        assert r.status_code == 200, r.get_json()
    assert lo_pool.stats["conversions"] == conversions
    check = r.get_json()["checks"]["libreoffice"]
    assert check["ok"] is True and check["mode"] == "pool"
    assert check["instances"]["configured"] == lo_pool.size
    assert check["instances"]["ready"] + check["instances"]["busy"] >= 1
    assert isinstance(check["last_success_age_s"], float)
    text = repr(check)
    assert "pid" not in text and "port" not in text and "/" not in text, check


def test_health_does_not_start_a_lazy_pool(make_app):
    app = make_app()  # TESTING: the pool starts at the first PDF, not at app start
    r = app.test_client().get("/api/v1/health")
    check = r.get_json()["checks"]["libreoffice"]
    assert app.extensions["pdf_pool"].mode == "stopped"
    assert check["mode"] == "stopped"
    assert check["ok"] is libreoffice_available() and r.status_code == (200 if check["ok"] else 503)


def test_actor_is_the_api_key_name(make_app):
    from forms_service import db

    from forms_service.accounts import keys

    app = make_app()
    client = app.test_client()
    with app.app_context(), db.session() as s:
        _row, key = keys.create_key(s, "mds-lens", "render")
    errors_of(client.post(f"/api/v1/forms/{FORM}/render", json={}), 401)
    r = client.post(f"/api/v1/forms/{FORM}/render", json={}, headers={"X-API-Key": key})
    assert r.status_code == 200
    with app.app_context(), db.session() as s:
        row = s.get(db.IssuedDocument, r.headers["X-Document-Id"])
        assert row.created_by == "key:mds-lens"
        event = s.query(db.AuditEvent).filter_by(document_id=row.document_id).one()
        assert event.actor == "key:mds-lens" and event.action == "document.rendu"


# ---------------------------------------------------------------------- batches

@needs_libreoffice
def test_batch_zip(client):
    items = [sample(FORM) or {}, {}, {"mds": "MDS de Lens"}]
    r = client.post(f"/api/v1/forms/annexe-7/render-batch?format=pdf", json=items)
    assert r.status_code == 200, r.get_data(as_text=True)[:500]
    assert r.mimetype == "application/zip" and r.headers["X-Documents-Count"] == "3"
    assert "lot-3.zip" in r.headers["Content-Disposition"]
    with zipfile.ZipFile(io.BytesIO(r.data)) as z:
        names = z.namelist()
        sidecar = json.loads(z.read("findings.json"))
        files = {n: z.read(n) for n in names if n != "findings.json"}
    assert len(files) == 3 and names[-1] == "findings.json"
    assert [e["file"] for e in sidecar] == names[:3]
    assert [e["index"] for e in sidecar] == [0, 1, 2]
    for entry in sidecar:
        content = files[entry["file"]]
        assert entry["file"].endswith(f"_{entry['document_id']}.pdf")
        assert_pages_identify(content, FORM, entry["template_version"], entry["document_id"])
    assert sidecar[1]["findings"] and all(set(f) == {"path", "rule", "severity", "message"}
                                          for f in sidecar[1]["findings"])
    assert "MDS de Lens" in norm(pdf_pages_text(files[sidecar[2]["file"]])[0])


def test_batch_bad_item_is_422_naming_the_item(client):
    errs = errors_of(client.post(f"/api/v1/forms/{FORM}/render-batch",
                                 json=[{}, {"mds": "x" * 100}, {"cer": {"date_debut": "hier"}}]), 422)
    assert [(e["path"], e["rule"]) for e in errs] == [
        ("items.1.mds", "longueur_maximale"), ("items.2.cer.date_debut", "date_invalide")]
    errs = errors_of(client.post(f"/api/v1/forms/{FORM}/render-batch?strict=true", json=[{}]), 422)
    assert all(e["path"].startswith("items.0") for e in errs)


def test_batch_shape_and_size(client):
    errors_of(client.post(f"/api/v1/forms/{FORM}/render-batch", json={}), 400)
    errors_of(client.post(f"/api/v1/forms/{FORM}/render-batch", json=[]), 400)
    errors_of(client.post(f"/api/v1/forms/{FORM}/render-batch", data=b"[{", content_type="application/json"), 400)
    [e] = errors_of(client.post(f"/api/v1/forms/{FORM}/render-batch", json=[{}] * (MAX_BATCH + 1)), 413)
    assert e["rule"] == "taille_maximale"
    errors_of(client.post("/api/v1/forms/nope/render-batch", json=[{}]), 404)


def test_docx_batch(client):
    r = client.post(f"/api/v1/forms/{FORM}/render-batch", json=[{}, {}])
    assert r.status_code == 200
    with zipfile.ZipFile(io.BytesIO(r.data)) as z:
        assert [n.endswith(".docx") for n in z.namelist()] == [True, True, False]


# ---------------------------------------------------------------------- layout, OpenAPI

@needs_libreoffice
def test_layout_of_the_blank_form(client):
    r = client.get(f"/api/v1/forms/annexe-7/layout")
    assert r.status_code == 200, r.get_data(as_text=True)[:500]
    layout = r.get_json()
    assert layout["form"] == FORM and len(layout["pages"]) == 3
    assert {b["page"] for b in layout["boxes"]} == {1, 2, 3}
    version = client.post(f"/api/v1/forms/{FORM}/render", json={}).headers["X-Template-Version"]
    assert layout["template_version"] == version
    errors_of(client.get(f"/api/v1/forms/{REFERENCE}/layout"), 400)
    errors_of(client.get("/api/v1/forms/nope/layout"), 404)


def test_openapi_documents_the_render_endpoints(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    paths = spec["paths"]
    # Declared per form, with the form's schema as body (issue 9, item 7).
    render = paths["/api/v1/forms/fiche-liaison/render"]["post"]
    assert {p["name"] for p in render["parameters"]} == {"format", "fillable", "strict",
                                                         "beneficiaire", "Idempotency-Key"}
    ok = render["responses"]["200"]
    assert set(ok["content"]) == {"application/pdf", DOCX}
    assert {"X-Document-Id", "X-Template-Version", "X-Forms-Findings"} <= set(ok["headers"])
    assert render["requestBody"]["required"] is False
    for code in ("404", "422", "503"):
        assert render["responses"][code]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    batch = paths["/api/v1/forms/fiche-liaison/render-batch"]["post"]
    assert "application/zip" in batch["responses"]["200"]["content"]
    assert batch["requestBody"]["content"]["application/json"]["schema"]["maxItems"] == MAX_BATCH
    assert "/api/v1/forms/{form_id}/layout" in paths


# ---------------------------------------------------------------------- real server

def test_through_a_real_http_server(app):
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}/api/v1"
    try:
        req = urllib.request.Request(f"{base}/forms/annexe-7/render",
                                     data=json.dumps({"mds": "MDS d'Arras"}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=60) as r:
            assert r.status == 200
            assert r.headers["Content-Type"] == DOCX
            assert json.loads(r.headers["X-Forms-Findings"])
            assert r.read()[:2] == b"PK"
        bad = urllib.request.Request(f"{base}/forms/{FORM}/render", data=b'{"mds": 3}',
                                     headers={"Content-Type": "application/json"}, method="POST")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(bad, timeout=60)
        assert err.value.code == 422
        assert json.loads(err.value.read())["errors"][0]["path"] == "mds"
    finally:
        server.shutdown()
        thread.join(timeout=10)

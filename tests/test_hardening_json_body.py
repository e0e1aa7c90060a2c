"""Issue 9, items 4 and 10: JSON bodies are checked before parsing (depth, size) and
must be sent as ``application/json`` (a cross-site form post cannot issue documents)."""

from __future__ import annotations

import json

import pytest

from forms_service.api.json_body import MAX_DEPTH, nesting_depth

ENDPOINTS = ["/api/v1/forms/fiche-liaison/validate", "/api/v1/forms/fiche-liaison/render",
             "/api/v1/forms/fiche-liaison/render-batch"]


def errors(r, status):
    assert r.status_code == status, r.get_data(as_text=True)[:300]
    body = r.get_json()
    assert set(body) == {"errors"}
    assert all(set(e) == {"path", "rule", "message"} for e in body["errors"])
    return body["errors"]


def test_nesting_depth_skips_strings():
    assert nesting_depth(b"{}") == 1
    assert nesting_depth(b'{"a": [1, {"b": "[[[[{{{{\\"]]]"}]}') == 3
    assert nesting_depth(b"[" * 1000 + b"]" * 1000) == 1000
    assert nesting_depth(b"[" * 1000, stop_above=32) == 33
    assert nesting_depth(b"42") == 0


@pytest.mark.parametrize("url", ENDPOINTS)
@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_json_nested_1000_deep_is_400(client, url, opener):
    closer = "]" if opener == "[" else "}"
    body = opener * 1000 + "1" + closer * 1000   # ~6 KB, gave 500 (RecursionError)
    e = errors(client.post(url, data=body, content_type="application/json"), 400)
    assert e[0]["rule"] == "profondeur_maximale" and "imbriquées" in e[0]["message"]


@pytest.mark.parametrize("url", ENDPOINTS[:2])
def test_nesting_at_the_limit_is_read(client, url):
    body = {"mds": "x"}
    nested = json.dumps([body])
    assert nesting_depth(nested.encode()) <= MAX_DEPTH
    r = client.post(url, data=json.dumps(body), content_type="application/json")
    assert r.status_code == 200


@pytest.mark.parametrize("url", ENDPOINTS)
@pytest.mark.parametrize("content_type", [
    "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None])
def test_json_endpoints_refuse_other_content_types(client, url, content_type):
    """What a web page can make a browser send cross-site without a preflight."""
    body = json.dumps([{}] if url.endswith("batch") else {})
    kwargs = {"content_type": content_type} if content_type else {}
    e = errors(client.post(url, data=body, **kwargs), 415)
    assert e[0]["rule"] == "type_de_contenu" and "application/json" in e[0]["message"]


def test_json_with_charset_and_vendor_types_is_accepted(client):
    for ct in ("application/json; charset=utf-8", "application/merge-patch+json"):
        r = client.post(ENDPOINTS[0], data="{}", content_type=ct)
        assert r.status_code == 200, ct


def test_empty_render_body_is_the_blank_form_whatever_its_content_type(client):
    assert client.post(ENDPOINTS[1]).status_code == 200
    assert client.post(ENDPOINTS[1], data="", content_type="text/plain").status_code == 200


def test_body_over_max_content_length_is_413(make_app):
    app = make_app(max_content_length=1024)
    c = app.test_client()
    for url in ENDPOINTS:
        body = json.dumps({"mds": "x" * 2000})
        e = errors(c.post(url, data=body, content_type="application/json"), 413)
        assert e[0]["rule"] == "taille_maximale"


def test_parse_still_takes_multipart(client):
    import io

    r = client.post("/api/v1/parse", data={"files": (io.BytesIO(b"pas un pdf"), "x.pdf")},
                    content_type="multipart/form-data")
    assert r.status_code != 415

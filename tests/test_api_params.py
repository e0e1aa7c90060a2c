"""Ids and page numbers beyond what the databases hold are a 400 in French (schemathesis
found 500s: an integer overflow inside SQLite on /beneficiaries?page=1.8e20 and
/beneficiaries/2.1e21)."""

from __future__ import annotations

import pytest


@pytest.fixture
def admin_headers(api_key, make_user):
    make_user("admin@exemple.fr", "administrateur")
    return {"X-API-Key": api_key("beneficiaries,records,admin", user="admin@exemple.fr")}


@pytest.mark.parametrize("url", [
    "/api/v1/beneficiaries?page=188267840024311824384",
    "/api/v1/beneficiaries?referent_id=-46870273209307",
    "/api/v1/beneficiaries/2110515946946622914560",
    "/api/v1/beneficiaries/0",
    "/api/v1/records/9223372036854775808",
    "/api/v1/audit?page=99999999999",
])
def test_out_of_range_ids_and_pages_are_400_in_french(client, admin_headers, url):
    r = client.get(url, headers=admin_headers)
    assert r.status_code == 400, r.get_data(as_text=True)
    (problem,) = r.get_json()["errors"]
    assert problem["message"].startswith("Paramètre invalide")
    assert "Input should" not in problem["message"]


def test_the_largest_id_is_a_plain_404(client, admin_headers):
    r = client.get("/api/v1/beneficiaries/9223372036854775807", headers=admin_headers)
    assert r.status_code == 404

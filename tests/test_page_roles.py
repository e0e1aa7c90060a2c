"""Each audience's pages open to its role (and administrators) only, refused in French by the
one check in ``accounts.authn`` (``PAGE_ROLES``), for every role of the people issue. The
expected table is written out here, apart from ``PAGE_ROLES``, so that a change to either
shows."""

from __future__ import annotations

import pytest

from conftest import TEST_PASSWORD, csrf_token
from forms_service import db
from forms_service.accounts import users
from forms_service.principal import ROLES

#: page → the roles that open it (administrators open every page).
PAGES = {
    "/": set(ROLES),
    "/beneficiaires": {"referent"},
    "/mes-demandes/": {"referent"},
    "/correspondant/": {"correspondant"},
    "/ep/": {"secretariat_ep"},
    "/decision/": {"decideur"},
    "/decision/envois": {"decideur", "agent_slai"},
    "/structure/": {"structure"},
    "/slai/": {"agent_slai"},
    "/administration/": set(),
}


@pytest.fixture(scope="module")
def signed_in(tmp_path_factory):
    from forms_service.app import create_app

    app = create_app({"var_dir": tmp_path_factory.mktemp("roles") / "var", "database_url": None,
                      "departement_logo": None, "TESTING": True})
    with app.app_context(), db.session() as s:
        for role in ROLES:
            users.save_user(s, f"{role}@t.example", [role], password=TEST_PASSWORD,
                            territoire=None if role in ("administrateur", "structure") else "arrageois",
                            organisme="chantier-artois" if role == "structure" else None)
    clients = {}
    for role in ROLES:
        client = app.test_client()
        token = csrf_token(client.get("/connexion").get_data(as_text=True))
        answer = client.post("/connexion", data={"email": f"{role}@t.example",
                                                 "mot_de_passe": TEST_PASSWORD, "csrf_token": token})
        assert answer.status_code == 302, role
        clients[role] = client
    return clients


@pytest.mark.parametrize("role", ROLES)
def test_each_audience_page_opens_to_its_role_only(signed_in, role):
    for path, roles in PAGES.items():
        answer = signed_in[role].get(path)
        if role == "administrateur" or role in roles:
            assert answer.status_code == 200, (role, path, answer.status_code)
        else:
            assert answer.status_code == 403, (role, path, answer.status_code)
            text = answer.get_data(as_text=True)
            assert "<html" in text.lower() and ("réservée" in text or "Accès refusé" in text), (role, path)

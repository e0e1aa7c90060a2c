"""The desk's pages are the desk's (issue 11): scope ``desk`` (SLAI agents, administrators);
a référent — who holds ``records`` and ``parse`` — is refused with the French 403 page,
and the nav does not offer the desk. A référent cannot open the correspondants' inbox either.
"""

from __future__ import annotations

import pytest

from people_data import seed


def _signed_in(app, login, email):
    client = app.test_client()
    assert login(client, email).status_code == 302
    return client


@pytest.mark.parametrize("email, allowed", [("agent.arr@t.example", True), ("admin@t.example", True),
                                            ("ref1@t.example", False)])
def test_desk_pages_need_the_desk_scope(make_app, login, email, allowed):
    app = make_app()
    seed(app)
    client = _signed_in(app, login, email)
    home = client.get("/slai/")
    if allowed:
        assert home.status_code == 200
        assert "Guichet SLAI</a>" in client.get("/").get_data(as_text=True)
        return
    assert home.status_code == 403
    page = home.get_data(as_text=True)
    assert "Accès refusé" in page and "« desk »" in page and "<html" in page.lower()
    for path in ("/slai/verification", "/slai/lots/1", "/slai/verification/1"):
        assert client.get(path).status_code == 403, path
    assert client.post("/slai/lots", data={}).status_code in (400, 403)   # CSRF first, then scope
    assert "Guichet SLAI</a>" not in client.get("/").get_data(as_text=True)
    inbox = client.get("/correspondant/")
    assert inbox.status_code == 403 and "réservée aux correspondants" in inbox.get_data(as_text=True)

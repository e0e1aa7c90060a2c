"""Accounts, roles, authentication (issue 10, part A), end to end through the real
HTTP test client and the real CLI, on SQLite and on a real PostgreSQL (``db_url``)."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from forms_service import db
from forms_service.accounts import authn
from forms_service.accounts.models import UserRole
from forms_service.principal import ROLES, SCOPES
from tests.conftest import TEST_PASSWORD, csrf_token

TERRITOIRE = "arrageois"


@pytest.fixture
def app(make_app, db_url):
    """Every test of this module runs on SQLite and on PostgreSQL."""
    return make_app(database_url=db_url)


def errors_of(response, status):
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    body = response.get_json()
    assert set(body) == {"errors"} and all(set(e) == {"path", "rule", "message"}
                                           for e in body["errors"])
    return body["errors"]


def fields_for(role):
    return {"territoire": TERRITOIRE} if role in ("agent_slai", "correspondant", "secretariat_ep",
                                                  "decideur") else {"organisme": "aave"}


# ----------------------------------------------------------------------------- schema

def test_schema_matches_models_and_refuses_unknown_roles(app, make_user):
    from alembic import command

    command.check(db.alembic_config(app.extensions["forms_service.db"].url))  # no drift
    user_id = make_user("Admin@Exemple.FR", "administrateur")
    with app.app_context(), db.session() as s:
        assert s.get(authn.User, user_id).email == "admin@exemple.fr"
    with pytest.raises(IntegrityError), app.app_context(), db.session() as s:
        s.execute(insert(UserRole).values(user_id=user_id, role="super_admin"))


# ------------------------------------------------------------------------- open mode

def test_open_only_until_the_first_account(app, make_user):
    c = app.test_client()
    health = c.get("/api/v1/health").get_json()
    assert health["checks"]["access"] == {"ok": True, "open": True}
    assert c.get("/").status_code == 200 and c.get("/api/v1/forms").status_code == 200
    make_user("admin@exemple.fr", "administrateur")
    assert c.get("/api/v1/health").get_json()["checks"]["access"]["open"] is False
    r = c.get("/formulaires/cer")
    assert r.status_code == 302 and r.headers["Location"].startswith("/connexion?suivant=/formulaires/cer")
    assert errors_of(c.get("/api/v1/forms"), 401)[0]["rule"] == "cle_api_invalide"
    assert c.get("/connexion").status_code == 200
    assert c.get("/static/style.css").status_code == 200


# -------------------------------------------------------------------- pages, per role

@pytest.mark.parametrize("role", ROLES)
def test_login_through_the_page_as_each_role(app, make_user, login, role):
    make_user(f"{role}@exemple.fr", role, **fields_for(role))
    c = app.test_client()
    r = login(c, f"{role.upper()}@Exemple.fr")              # e-mail case does not matter
    assert r.status_code == 302 and r.headers["Location"] == "/"
    home = c.get("/")
    assert home.status_code == 200 and "Se déconnecter" in home.get_data(as_text=True)
    assert c.get("/administration/").status_code == (200 if role == "administrateur" else 403)
    assert c.get("/slai/").status_code == (200 if "desk" in authn.ROLE_SCOPES[role] else 403)   # the desk's scope
    assert c.get("/api/v1/forms").status_code == 401        # /api/v1 takes keys only


def test_wrong_password_and_unknown_email_answer_alike(app, make_user, login):
    make_user("admin@exemple.fr", "administrateur")
    c = app.test_client()
    wrong, unknown = login(c, "admin@exemple.fr", "pas-le-bon-mdp"), login(c, "x@exemple.fr")
    assert wrong.status_code == unknown.status_code == 401
    assert "Adresse e-mail ou mot de passe incorrect" in wrong.get_data(as_text=True)
    assert c.get("/").status_code == 302


def test_login_redirects_only_to_a_local_path(app, make_user):
    make_user("admin@exemple.fr", "administrateur")
    c = app.test_client()
    for suivant, expected in [("/slai/", "/slai/"), ("//evil.example/x", "/"),
                              ("https://evil.example/", "/")]:
        c.post("/deconnexion", data={"csrf_token": csrf_token(c.get("/connexion").get_data(as_text=True))})
        token = csrf_token(c.get("/connexion").get_data(as_text=True))
        r = c.post(f"/connexion?suivant={suivant}", data={
            "email": "admin@exemple.fr", "mot_de_passe": TEST_PASSWORD, "csrf_token": token})
        assert r.status_code == 302 and r.headers["Location"] == expected


def test_logout_needs_its_csrf_token(app, make_user, login):
    make_user("admin@exemple.fr", "administrateur")
    c = app.test_client()
    login(c, "admin@exemple.fr")
    assert c.post("/deconnexion").status_code == 400        # no token: refused, still signed in
    assert c.get("/").status_code == 200
    token = csrf_token(c.get("/").get_data(as_text=True))
    assert c.post("/deconnexion", data={"csrf_token": token}).status_code == 302
    assert c.get("/").status_code == 302


def test_forms_without_csrf_token_are_refused(app, make_user):
    make_user("admin@exemple.fr", "administrateur")
    c = app.test_client()
    r = c.post("/connexion", data={"email": "admin@exemple.fr", "mot_de_passe": TEST_PASSWORD})
    assert r.status_code != 302 and c.get("/").status_code == 302


def test_sixth_wrong_password_within_a_minute_is_refused(app, make_user, login):
    make_user("admin@exemple.fr", "administrateur")
    c = app.test_client()
    for _ in range(5):
        assert login(c, "admin@exemple.fr", "mauvais-mot-de-passe").status_code == 401
    sixth = login(c, "admin@exemple.fr", "mauvais-mot-de-passe")
    assert sixth.status_code == 429 and "Trop de tentatives" in sixth.get_data(as_text=True)
    assert login(c, "admin@exemple.fr").status_code == 429  # even the right one, this minute
    make_user("autre@exemple.fr", "referent")
    assert login(c, "autre@exemple.fr").status_code == 302  # counted per (IP, e-mail)


def test_session_cookie_flags_and_idle_expiry(make_app, db_url, monkeypatch):
    from forms_service.accounts import users

    def signed_in(app, base_url="http://localhost"):
        c = app.test_client()
        page = c.get("/connexion", base_url=base_url).get_data(as_text=True)
        r = c.post("/connexion", base_url=base_url, headers={"Referer": f"{base_url}/connexion"}, data={
            "email": "admin@exemple.fr", "mot_de_passe": TEST_PASSWORD, "csrf_token": csrf_token(page)})
        assert r.status_code == 302
        return c, r.headers["Set-Cookie"]

    app = make_app(database_url=db_url, session_idle_minutes=5)
    with app.app_context(), db.session() as s:
        users.save_user(s, "admin@exemple.fr", ["administrateur"], password=TEST_PASSWORD)
    c, cookie = signed_in(app)
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    _c, cookie = signed_in(app, base_url="https://localhost")      # auto: HTTPS → Secure
    assert "Secure" in cookie
    import itsdangerous.timed as timed

    real = timed.time.time
    assert c.get("/").status_code == 200
    monkeypatch.setattr(timed.time, "time", lambda: real() + 6 * 60)   # 6 idle minutes later
    assert c.get("/").status_code == 302
    monkeypatch.setattr(timed.time, "time", real)
    forced = make_app(database_url=db_url, secure_cookies=True, var_dir=app.extensions[
        "forms_service.settings"].var_dir)
    _c, cookie = signed_in(forced)
    assert "Secure" in cookie


# ------------------------------------------------------------------------------- API

@pytest.mark.parametrize("role", ROLES)
def test_api_as_each_role_through_a_personal_key(app, make_user, api_key, role):
    make_user(f"{role}@exemple.fr", role, **fields_for(role))
    key = api_key(scopes=",".join(SCOPES), user=f"{role}@exemple.fr")
    c = app.test_client()
    headers = {"Authorization": f"Bearer {key}"}
    assert c.get("/api/v1/forms", headers=headers).status_code == 200
    # parse needs "parse": allowed → the view answers (400: no file), refused → 403
    r = c.post("/api/v1/parse", headers=headers)
    allowed = "parse" in authn.ROLE_SCOPES[role]
    assert r.status_code == (400 if allowed else 403), r.get_data(as_text=True)[:200]
    if not allowed:
        assert errors_of(r, 403)[0]["rule"] == "portee_manquante"


def test_api_key_scopes_missing_wrong_revoked(app, make_user, api_key, runner, log_lines):
    render_only = api_key(scopes="render", territoire=TERRITOIRE)
    c = app.test_client()
    errors = errors_of(c.post("/api/v1/parse"), 401)
    assert "clé d'API" in errors[0]["message"]
    errors_of(c.get("/api/v1/forms", headers={"X-API-Key": render_only[:-2] + "xx"}), 401)
    errors = errors_of(c.post("/api/v1/parse", headers={"X-API-Key": render_only}), 403)
    assert "« parse »" in errors[0]["message"]
    assert c.get("/api/v1/forms/cers", headers={"X-API-Key": render_only}).status_code == 200
    # a key acting as a person holds at most that person's scopes; disabling them stops it
    make_user("ref@exemple.fr", "structure", organisme="aave")
    personal = api_key(scopes="parse", user="ref@exemple.fr")
    errors_of(c.post("/api/v1/parse", headers={"X-API-Key": personal}), 403)
    from forms_service.accounts import keys, users

    with app.app_context(), db.session() as s:
        keys.revoke_key(s, "test-1")
        users.disable_user(s, "ref@exemple.fr")
    errors_of(c.get("/api/v1/forms", headers={"X-API-Key": render_only}), 401)
    errors_of(c.get("/api/v1/forms", headers={"X-API-Key": personal}), 401)
    assert render_only not in log_lines.raw()


def test_a_personal_key_is_its_person_in_the_audit(app, make_user, api_key):
    from forms_service.audit import current_actor

    user_id = make_user("agent@exemple.fr", "agent_slai", territoire=TERRITOIRE)
    key = api_key(scopes="render", user="agent@exemple.fr")
    bare = api_key(scopes="render", name="mds-lens")
    with app.test_request_context("/api/v1/forms", headers={"X-API-Key": key}):
        authn.authenticate()
        from flask import g

        assert g.principal.actor == current_actor() == f"user:{user_id}"
        assert g.principal.roles == {"agent_slai"} and g.principal.territoire == TERRITOIRE
    with app.test_request_context("/api/v1/forms", headers={"X-API-Key": bare}):
        authn.authenticate()
        assert current_actor() == "key:mds-lens"


# ----------------------------------------------------------------- administration page

def test_admin_adds_an_account_and_hands_over_a_one_time_link(app, make_user, login):
    make_user("admin@exemple.fr", "administrateur")
    admin = app.test_client()
    login(admin, "admin@exemple.fr")
    page = admin.get("/administration/").get_data(as_text=True)
    r = admin.post("/administration/", data={
        "email": "Nouvelle@Exemple.fr", "nom": "Camille Test", "roles": ["agent_slai", "correspondant"],
        "territoire": TERRITOIRE, "organisme": "", "csrf_token": csrf_token(page)})
    html = r.get_data(as_text=True)
    assert r.status_code == 200, html[:500]
    link = re.search(r"<code>(http://localhost/reinitialisation/[^<]+)</code>", html).group(1)
    assert "nouvelle@exemple.fr" in html and "Agent SLAI" in html
    # the person sets a password from the link (once), then signs in
    person = app.test_client()
    path = link.removeprefix("http://localhost")
    form = person.get(path)
    assert form.status_code == 200
    r = person.post(path, data={"mot_de_passe": "un-nouveau-secret", "confirmation": "un-nouveau-secret",
                                "csrf_token": csrf_token(form.get_data(as_text=True))})
    assert r.status_code == 302
    assert person.get(path).status_code == 404                       # one-time
    assert login(person, "nouvelle@exemple.fr", "un-nouveau-secret").status_code == 302
    assert person.get("/slai/").status_code == 200
    # disabling the account ends its session at once
    with app.app_context(), db.session() as s:
        user_id = authn.users.get_user(s, "nouvelle@exemple.fr").id
    token = csrf_token(admin.get("/administration/").get_data(as_text=True))
    assert admin.post(f"/administration/comptes/{user_id}/desactiver",
                      data={"csrf_token": token}).status_code == 302
    assert person.get("/slai/").status_code == 302
    assert login(person, "nouvelle@exemple.fr", "un-nouveau-secret").status_code == 401
    # a form without its token changes nothing
    r = admin.post("/administration/", data={"email": "x@exemple.fr", "roles": ["referent"]})
    assert r.status_code == 400 and "x@exemple.fr" not in admin.get("/administration/").get_data(as_text=True)


def test_reset_link_replaces_the_password_and_ends_sessions(app, make_user, login):
    make_user("admin@exemple.fr", "administrateur")
    make_user("ref@exemple.fr", "referent", organisme="aave")
    admin, person = app.test_client(), app.test_client()
    login(admin, "admin@exemple.fr")
    login(person, "ref@exemple.fr")
    with app.app_context(), db.session() as s:
        user_id = authn.users.get_user(s, "ref@exemple.fr").id
    token = csrf_token(admin.get("/administration/").get_data(as_text=True))
    html = admin.post(f"/administration/comptes/{user_id}/reinitialiser",
                      data={"csrf_token": token}).get_data(as_text=True)
    path = re.search(r"<code>http://localhost(/reinitialisation/[^<]+)</code>", html).group(1)
    form = person.get(path).get_data(as_text=True)
    short = person.post(path, data={"mot_de_passe": "court", "confirmation": "court",
                                    "csrf_token": csrf_token(form)})
    assert short.status_code == 200 and "Au moins 10 caractères" in short.get_data(as_text=True)
    person.post(path, data={"mot_de_passe": "tout-nouveau-mdp", "confirmation": "tout-nouveau-mdp",
                            "csrf_token": csrf_token(form)})
    assert person.get("/").status_code == 302                  # the old session is gone
    assert login(person, "ref@exemple.fr").status_code == 401
    assert login(person, "ref@exemple.fr", "tout-nouveau-mdp").status_code == 302


# ------------------------------------------------------------------------ security

def test_security_headers_on_pages_and_api(app, make_user):
    c = app.test_client()
    for r in (c.get("/connexion"), c.get("/api/v1/health"), c.get("/api/v1/nulle-part")):
        csp = r.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Referrer-Policy"] == "same-origin"
        assert r.headers["X-Frame-Options"] == "DENY"
        assert r.headers["Cache-Control"] == "no-store"


def test_templates_have_no_inline_script_or_style():
    from pathlib import Path

    import forms_service.web as web

    for path in (Path(web.__file__).parent / "templates").rglob("*.html"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"<script(?![^>]*\bsrc=)|<style|\sstyle=|\son[a-z]+=", text), path.name


def test_download_names_use_rfc_6266():
    from forms_service.security import content_disposition

    assert content_disposition("cer-01ABC.pdf") == 'attachment; filename="cer-01ABC.pdf"'
    value = content_disposition('fiche "liaison"\r\né.pdf')
    assert value == ("attachment; filename=\"fiche _liaison_e.pdf\"; "
                     "filename*=UTF-8''fiche%20%22liaison%22%C3%A9.pdf")


# ----------------------------------------------------------------------------- CLI

@pytest.fixture
def cli(runner, db_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("FORMS_SERVICE_MIGRATE_ON_STARTUP", "1")
    return runner


def test_cli_user_commands(cli):
    r = cli.run("user", "add", "admin@exemple.fr", "--role", "administrateur")
    assert r.exit_code == 2 and "--password-stdin" in r.stderr        # no terminal: fails at once
    r = cli.run("user", "add", "Admin@Exemple.fr", "--role", "administrateur", "--role", "referent",
                "--organisme", "aave", "--password-stdin", input=f"{TEST_PASSWORD}\n")
    assert r.exit_code == 0, r.stderr
    r = cli.run("user", "add", "admin@exemple.fr", "--role", "referent", "--password-stdin",
                input=f"{TEST_PASSWORD}\n")
    assert r.exit_code == 2 and r.stderr.startswith("Erreur : Un compte existe déjà")
    r = cli.run("user", "add", "admin@exemple.fr", "--role", "administrateur", "--update")
    assert r.exit_code == 0, r.stderr
    r = cli.run("user", "add", "agent@exemple.fr", "--role", "agent_slai", "--password-stdin",
                input=f"{TEST_PASSWORD}\n")
    assert r.exit_code == 2 and "territoire" in r.stderr
    r = cli.run("user", "add", "court@exemple.fr", "--role", "referent", "--password-stdin",
                input="court\n")
    assert r.exit_code == 2 and "au moins 10 caractères" in r.stderr
    r = cli.run("user", "add", "x@exemple.fr", "--role", "chef", "--password-stdin", input="x\n")
    assert r.exit_code == 2
    listed = json.loads(cli.run("user", "list", "--json").stdout)
    assert [(u["email"], u["roles"], u["organisme"]) for u in listed] == [
        ("admin@exemple.fr", ["administrateur"], "aave")]
    assert "password" not in json.dumps(listed)
    assert cli.run("user", "disable", "admin@exemple.fr").exit_code == 0
    assert "désactivé" in cli.run("user", "list").stdout
    r = cli.run("user", "disable", "personne@exemple.fr")
    assert r.exit_code == 2 and r.stderr.startswith("Erreur : Aucun compte")


def test_cli_apikey_commands_give_a_working_key_once(cli, make_app, db_url):
    cli.run("user", "add", "agent@exemple.fr", "--role", "agent_slai", "--territoire", TERRITOIRE,
            "--password-stdin", input=f"{TEST_PASSWORD}\n")
    r = cli.run("apikey", "add", "mds-arras", "--scopes", "render,parse", "--user", "agent@exemple.fr")
    assert r.exit_code == 0, r.stderr
    key = r.stdout.strip()
    assert re.fullmatch(r"fs_[0-9a-f]{8}_[A-Za-z0-9_-]{43}", key) and r.stdout == key + "\n"
    assert cli.run("apikey", "add", "mds-arras", "--scopes", "render").exit_code == 2
    r = cli.run("apikey", "add", "autre", "--scopes", "render,tout")
    assert r.exit_code == 2 and "tout" in r.stderr
    listing = cli.run("apikey", "list").stdout + cli.run("apikey", "list", "--json").stdout
    assert "mds-arras" in listing and key not in listing and key[12:] not in listing
    app = make_app(database_url=db_url)
    c = app.test_client()
    assert c.post("/api/v1/parse", headers={"X-API-Key": key}).status_code == 400  # allowed
    assert cli.run("apikey", "revoke", "mds-arras").exit_code == 0
    errors_of(c.post("/api/v1/parse", headers={"X-API-Key": key}), 401)
    assert cli.run("apikey", "revoke", "inconnue").exit_code == 2


def test_a_key_used_while_the_database_is_locked_is_not_kept_waiting(app, api_key):
    """Noting a key's ``last_used`` is bookkeeping: while another transaction holds the
    lock it needs (a desk worker storing a batch on SQLite; the key's row on PostgreSQL),
    the request is answered at once and the note is left for a later request."""
    import threading

    from sqlalchemy import create_engine, select, text

    from forms_service.accounts.models import ApiKey

    key = api_key(scopes="render")
    c = app.test_client()
    other = create_engine(app.extensions["forms_service.settings"].database_url)
    answers = []
    with other.connect() as conn:
        tx = conn.begin()
        conn.execute(text("UPDATE api_key SET name = name"))           # holds the lock
        thread = threading.Thread(target=lambda: answers.append(
            c.get("/api/v1/forms", headers={"X-API-Key": key}).status_code), daemon=True)
        thread.start()
        thread.join(timeout=3)
        tx.rollback()
    thread.join(timeout=10)
    other.dispose()
    assert answers == [200], "the request waited for the lock (or failed)"
    with app.app_context(), db.session() as s:
        assert s.scalar(select(ApiKey.last_used)) is None               # skipped, not waited for
    assert c.get("/api/v1/forms", headers={"X-API-Key": key}).status_code == 200
    with app.app_context(), db.session() as s:
        assert s.scalar(select(ApiKey.last_used)) is not None           # noted by the next one

"""Authentication, in one place for the pages and the API.

One ``before_request`` (``authenticate``) runs first on every request and puts
the caller on ``g.principal`` (``forms_service.principal.Principal``) and its
``actor`` on ``g.actor`` (what ``forms_service.audit`` records):

- under ``/api/`` from an API key only (``X-API-Key: fs_...`` or
  ``Authorization: Bearer fs_...``); missing or wrong: 401 with the one error body;
- on pages from the Flask-Login session (a signed cookie); none: a redirect to
  ``/connexion``;
- while the service has no account and no key at all (first start):
  ``Principal(open_mode=True)``, and ``GET /api/v1/health`` says ``"open": true``.

Only ``PUBLIC_ENDPOINTS`` answer without authentication. Then the endpoint's
scope (``ENDPOINT_SCOPES``, one table) must be among the caller's scopes: a key's
own (intersected with its user's, for a key made for a person), a session's
from its roles (``ROLE_SCOPES``); otherwise 403.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

from flask import Flask, current_app, g, redirect, request, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_login import LoginManager, UserMixin, current_user
from flask_login import login_user as _flask_login_user

from forms_service import db
from forms_service.accounts import keys, users
from forms_service.accounts.models import User
from forms_service.errors import Forbidden, Unauthorized
from forms_service.logging_setup import get_logger
from forms_service.principal import ANONYMOUS, ROLES, SCOPES, Principal

log = get_logger(__name__)

API_PREFIX = "/api/"
CLOSED_KEY = "forms_service.accounts.closed"

#: Endpoints that answer without authentication (the login page, health, static files).
PUBLIC_ENDPOINTS = {
    "api.health", "auth.connexion", "auth.reinitialisation", "referent.static", "referent.logo",
    "openapi.doc_url", "openapi.static", "openapi.openapi",
}

#: Endpoint, or blueprint prefix ending with ".", → the scope it needs (``None``: any
#: authenticated caller). The longest matching entry wins. An API endpoint found
#: nowhere needs ``DEFAULT_API_SCOPE`` (deny by default: add a row for a new blueprint).
ENDPOINT_SCOPES: dict[str, str | None] = {
    "api.forms.": None,                  # the catalogue (GET) and validation
    "api.render.": "render",
    "api.render_jobs.": "render",        # long render batches on the queue (issue 11)
    "api.parse.": "parse",
    "api.batches.": "parse",
    "api.records.": "records",
    "api.requests.": "requests",
    "api.beneficiaries.": "beneficiaries",
    "api.directory.": "admin",
    "api.audit.": "admin",
    "api.accounts.": "admin",
    "api.webhooks.": "admin",            # the webhooks' delivery log (issue 13)
    "api.ep.": "requests",               # the EP's sessions, agenda and avis (issue 13)
    "referent.": None,
    "slai.": "desk",                     # the SLAI desk's pages: its agents' (issue 11)
    "correspondant.": "requests",        # the circuit's inboxes (issue 12)
    "mes_demandes.": "requests",
    "ep.": "requests",                   # the EP's secretariat (issue 13)
    "decision.": "requests",             # the Président's decision, the structures (issue 13)
    "structure.": "requests",
    "auth.": None,
    "admin.": "admin",
}
DEFAULT_API_SCOPE = "admin"

#: The pages of each audience: endpoint, or blueprint prefix ending with ".", → the roles
#: that may open them (administrators always may) and the French refusal. The longest
#: matching entry wins; ``None`` lets any signed-in person in (the référent's form pages
#: serve every role that issues forms). Checked after the scope, in :func:`authenticate`:
#: the one place pages are refused by role. The API's audiences are its scopes.
PAGE_ROLES: dict[str, tuple[frozenset[str], str] | None] = {
    "referent.": (frozenset({"referent"}), "Accès refusé : pages réservées aux référents"),
    "referent.accueil": None,
    "referent.formulaire": None,
    "referent.logo": None,
    "referent.static": None,
    "referent.rome": None,
    "referent.rome_recherche": None,
    "mes_demandes.": (frozenset({"referent"}), "Cette page est réservée aux référents"),
    "correspondant.": (frozenset({"correspondant"}),
                       "Cette page est réservée aux correspondants RSA"),
    "ep.": (frozenset({"secretariat_ep"}),
            "Cette page est réservée au secrétariat de l'équipe pluridisciplinaire"),
    "decision.": (frozenset({"decideur"}),
                  "Cette page est réservée aux décideurs (par délégation du Président)"),
    "decision.envois": (frozenset({"decideur", "agent_slai"}),
                        "Cette page est réservée au SLAI et aux décideurs"),
    "decision.renvoyer": (frozenset({"decideur", "agent_slai"}),
                          "Cette page est réservée au SLAI et aux décideurs"),
    "structure.": (frozenset({"structure"}), "Cette page est réservée aux structures"),
}

#: What a person's roles allow (web sessions, and keys made for a person).
ROLE_SCOPES: dict[str, frozenset[str]] = {
    "referent": frozenset({"render", "parse", "records", "requests", "beneficiaries"}),
    "agent_slai": frozenset({"render", "parse", "records", "requests", "beneficiaries", "desk"}),
    "correspondant": frozenset({"render", "parse", "records", "requests", "beneficiaries"}),
    "secretariat_ep": frozenset({"records", "requests", "beneficiaries"}),
    "decideur": frozenset({"records", "requests", "beneficiaries"}),
    "structure": frozenset({"requests"}),
    "administrateur": frozenset(SCOPES),
}
assert set(ROLE_SCOPES) == set(ROLES)

OPEN_PRINCIPAL = Principal(actor="anonyme", open_mode=True)

login_manager = LoginManager()
login_manager.session_protection = "basic"


# --- Flask-Login: the session holds "<user id>:<password fingerprint>" -------------------

def session_id_for(user: User) -> str:
    """Changing the password (or disabling the account) ends the account's sessions."""
    fingerprint = hashlib.sha256((user.password_hash or "").encode()).hexdigest()[:16]
    return f"{user.id}:{fingerprint}"


class SessionUser(UserMixin):
    """What Flask-Login holds for a signed-in person (``current_user``)."""

    def __init__(self, user: User):
        self.user = user

    def get_id(self) -> str:
        return session_id_for(self.user)

    @property
    def is_active(self) -> bool:
        return bool(self.user.active)


@login_manager.user_loader
def _load_user(session_id: str) -> User | None:
    user_id, _, fingerprint = (session_id or "").partition(":")
    if not user_id.isdigit():
        return None
    with db.session() as s:
        user = s.get(User, int(user_id))
        if user is None or not user.active:
            return None
        if not secrets.compare_digest(session_id_for(user).partition(":")[2], fingerprint):
            return None
        user.roles  # loaded before the session closes
        return SessionUser(user)


def login(user: User) -> None:
    """Open a session for ``user`` (password already checked) and note the login."""
    with db.session() as s:
        row = s.get(User, user.id)
        row.last_login = datetime.now(timezone.utc)
    _flask_login_user(SessionUser(user))
    from flask import session

    session.permanent = True  # idle expiry: PERMANENT_SESSION_LIFETIME, refreshed each request


# --- principals ---------------------------------------------------------------------------

def principal_for_user(user: User) -> Principal:
    return Principal(actor=f"user:{user.id}", user_id=user.id, roles=frozenset(user.roles),
                     territoire=user.territoire, organisme=user.organisme, scopes=None)


def _given_key() -> str:
    given = request.headers.get("X-API-Key", "").strip()
    if not given:
        auth = request.headers.get("Authorization", "")
        given = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
    return given


def _principal_for_key(given: str) -> Principal | None:
    now = datetime.now(timezone.utc)
    with db.session() as s:
        row = keys.find_key(s, given)
        if row is None:
            return None
        key_id, touch = row.id, keys.needs_touch(row, now)
        scopes = frozenset(row.scopes)
        if row.user is not None:
            user = row.user
            principal = Principal(actor=f"user:{user.id}", user_id=user.id,
                                  roles=frozenset(user.roles), scopes=scopes,
                                  territoire=row.territoire or user.territoire,
                                  organisme=user.organisme)
        else:
            principal = Principal(actor=f"key:{row.name}", scopes=scopes, territoire=row.territoire)
    if touch:
        keys.touch(db.get_database().engine, key_id, now)
    return principal


def effective_scopes(principal: Principal) -> frozenset[str]:
    """The scopes ``principal`` holds: a key's, within its person's roles' when it has one."""
    if principal.open_mode:
        return frozenset(SCOPES)
    from_roles = frozenset().union(*(ROLE_SCOPES.get(r, frozenset()) for r in principal.roles))
    if principal.scopes is None:        # a web session
        return from_roles
    if principal.user_id is not None:   # a key acting as a person
        return principal.scopes & from_roles
    return principal.scopes


def required_scope(endpoint: str | None, is_api: bool) -> str | None:
    endpoint = endpoint or ""
    best, scope = -1, (DEFAULT_API_SCOPE if is_api else None)
    for name, needed in ENDPOINT_SCOPES.items():
        matches = endpoint.startswith(name) if name.endswith(".") else endpoint == name
        if matches and len(name) > best:
            best, scope = len(name), needed
    return scope


def page_roles(endpoint: str | None) -> tuple[frozenset[str], str] | None:
    """The roles a page needs (``PAGE_ROLES``, longest match), ``None`` for any person."""
    endpoint = endpoint or ""
    best, found = -1, None
    for name, needed in PAGE_ROLES.items():
        matches = endpoint.startswith(name) if name.endswith(".") else endpoint == name
        if matches and len(name) > best:
            best, found = len(name), needed
    return found


def is_open(app: Flask | None = None) -> bool:
    """True while no account and no key exist. Once closed, closed for the process."""
    app = app or current_app
    if app.extensions.get(CLOSED_KEY):
        return False
    with db.session() as s:
        closed = users.any_account(s)
    if closed:
        app.extensions[CLOSED_KEY] = True
    return not closed


def authenticate():
    """The one authentication step (first before_request of every request)."""
    is_api = request.path.startswith(API_PREFIX)
    endpoint = request.endpoint
    if is_open():
        _set(OPEN_PRINCIPAL)
        return None
    principal: Principal | None = None
    if is_api:
        given = _given_key()
        if given:
            principal = _principal_for_key(given)
            if principal is None:
                _set(ANONYMOUS)
                raise Unauthorized("Clé d'API invalide ou révoquée")
    elif current_user.is_authenticated:
        principal = principal_for_user(current_user.user)
    if principal is None:
        _set(ANONYMOUS)
        if endpoint in PUBLIC_ENDPOINTS:
            return None
        if is_api:
            raise Unauthorized("Authentification requise : clé d'API dans l'en-tête X-API-Key "
                               "(ou Authorization: Bearer)")
        target = request.full_path if request.query_string else request.path
        return redirect(url_for("auth.connexion") + "?suivant=" + quote(target, safe="/"))
    _set(principal)
    needed = required_scope(endpoint, is_api)
    if needed is not None and endpoint not in PUBLIC_ENDPOINTS \
            and needed not in effective_scopes(principal):
        log.info("acces_refuse", actor=principal.actor, scope=needed, endpoint=endpoint)
        raise Forbidden(f"Accès refusé : la portée « {needed} » est nécessaire", rule="portee_manquante")
    roles = None if is_api or endpoint in PUBLIC_ENDPOINTS else page_roles(endpoint)
    if roles is not None and not principal.has_role(*roles[0], "administrateur"):
        log.info("acces_refuse", actor=principal.actor, roles=sorted(roles[0]), endpoint=endpoint)
        raise Forbidden(roles[1], rule="role_manquant")
    return None


def _set(principal: Principal) -> None:
    g.principal = principal
    g.actor = principal.actor


# --- cookies ------------------------------------------------------------------------------

class SessionInterface(SecureCookieSessionInterface):
    """Signed-cookie sessions whose ``Secure`` flag follows the setting, or, when the
    setting is unset (auto), whether this request came over HTTPS."""

    def __init__(self, secure: bool | None):
        self.secure = secure

    def get_cookie_secure(self, app) -> bool:
        if self.secure is not None:
            return self.secure
        return request.is_secure if request else False


def _check_access_mode() -> dict:
    return {"ok": True, "open": is_open()}


def init_app(app: Flask) -> None:
    from forms_service.api import register_health_check

    settings = app.extensions["forms_service.settings"]
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=bool(settings.secure_cookies),
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=settings.session_idle_minutes),
        SESSION_REFRESH_EACH_REQUEST=True,
    )
    app.session_interface = SessionInterface(settings.secure_cookies)
    login_manager.init_app(app)
    # First of all before_request functions (before CSRF: an anonymous POST goes to login).
    app.before_request_funcs.setdefault(None, []).insert(0, authenticate)
    register_health_check(app, "access", _check_access_mode)

    @app.context_processor
    def _inject_principal():
        from forms_service.principal import current_principal

        principal = current_principal()
        return {"principal": principal, "principal_scopes": effective_scopes(principal)}

"""The JSON API, mounted at ``/api/v1``: ``build_api()`` makes the ``api`` blueprint,
once per app (``create_app`` calls it).

Sub-blueprints come from ``BLUEPRINT_MODULES``: each module defines ``bp`` (an
``APIBlueprint`` without prefix), mounted under ``/api/v1``. A team adds its
endpoints by adding its module's name to that list.

``GET /api/v1/health`` runs the checks registered with ``register_health_check``
(``app.extensions["forms_service.health_checks"]``): each is a callable returning
a dict with at least ``"ok": bool``; any failing or raising check makes the
answer 503 ``{"status": "degraded"}``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from flask import current_app
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field

from forms_service import __version__
from forms_service.api.errors import ErrorBody
from forms_service.logging_setup import get_logger

log = get_logger(__name__)

URL_PREFIX = "/api/v1"
HEALTH_CHECKS_KEY = "forms_service.health_checks"

#: Modules whose ``bp`` is mounted under /api/v1.
BLUEPRINT_MODULES = [
    "forms_service.api.forms",
    "forms_service.render.api",
    "parsers.api",
    "forms_service.beneficiaries.api",
    "forms_service.api.documents",
    "forms_service.api.audit",
    "forms_service.api.requests",
    "forms_service.api.batches",
    "forms_service.api.webhooks",
    "forms_service.api.render_jobs",
    "forms_service.api.ep",              # the EP's sessions (issue 13)
]

HealthCheck = Callable[[], dict[str, Any]]



def build_api() -> APIBlueprint:
    """A new ``api`` blueprint: ``/health`` and every module's ``bp`` (authentication is
    the app's one step, ``accounts.authn``)."""
    api = APIBlueprint("api", __name__, url_prefix=URL_PREFIX)
    api.get("/health", summary="État du service", tags=[Tag(name="service")],
            responses={200: Health, 503: Health})(health)
    for name in BLUEPRINT_MODULES:
        api.register_api(importlib.import_module(name).bp)
    return api


def register_health_check(app, name: str, check: HealthCheck) -> None:
    """Add a readiness check (e.g. a test conversion by the LibreOffice pool)."""
    app.extensions.setdefault(HEALTH_CHECKS_KEY, []).append((name, check))


class HealthCheckResult(BaseModel):
    ok: bool
    model_config = {"extra": "allow"}


class Health(BaseModel):
    status: str = Field(description="« ok » ou « degraded »")
    version: str
    checks: dict[str, HealthCheckResult]


def health():
    checks: dict[str, dict] = {}
    for name, check in current_app.extensions.get(HEALTH_CHECKS_KEY, []):
        try:
            result = dict(check())
        except Exception as exc:  # a failing check must not turn health into a 500
            log.warning("health_check_failed", check=name, exc_type=type(exc).__name__)
            result = {"ok": False, "error": type(exc).__name__}
        result["ok"] = bool(result.get("ok"))
        checks[name] = result
    ok = all(c["ok"] for c in checks.values())
    body = {"status": "ok" if ok else "degraded", "version": __version__, "checks": checks}
    return body, (200 if ok else 503)


__all__ = ["build_api", "register_health_check", "HEALTH_CHECKS_KEY", "BLUEPRINT_MODULES", "ErrorBody"]

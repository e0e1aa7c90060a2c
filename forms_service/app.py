"""The application factory.

    app = create_app()                       # settings from the environment
    app = create_app({"var_dir": tmp_path})  # overrides (tests)
    app = create_app(settings=settings)      # settings built by the caller (the CLI)
    ...
    app.close()                              # stops the app's pool, workers, database

Upper-case keys of ``config`` that are not settings (``TESTING``...) go to
``app.config`` as they are. The app owns its services (``forms_service.services``):
made here, stopped by ``app.close()`` (also at interpreter exit).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from flask_openapi3 import Info, OpenAPI
from flask_wtf import CSRFProtect
from sqlalchemy import text

from forms_service import __version__
from forms_service import db as database
from forms_service import services, worker_apps
from forms_service.api import HEALTH_CHECKS_KEY, URL_PREFIX, build_api, json_body, register_health_check
from forms_service.api.errors import ErrorBody, register_error_handlers, validation_error_callback
from forms_service.config import Settings
from forms_service.logging_setup import configure_logging, get_logger

__all__ = ["create_app", "register_health_check", "HEALTH_CHECKS_KEY"]

SETTINGS_KEY = services.SETTINGS_KEY
log = get_logger(__name__)


class FormsOpenAPI(OpenAPI):
    """The generated OpenAPI document, completed so that a client following it is
    accepted (``tests/test_schemathesis.py`` checks it against the running service):

    * each form's JSON Schema goes to ``components.schemas.<form id>``;
    * an operation taking a form's data on ``/forms/{form_id}/…`` is declared once per
      form, on the form's own path, with that form's schema as its body (validate:
      required; render: optional, empty is the blank form; render-batch: a list of
      them). A reference list is declared only where it is accepted: render, no body;
    * the API-key security schemes (``X-API-Key`` header, HTTP bearer); ``/health`` is
      open;
    * request-validation errors use our error body (not a list of them), and the
      statuses every JSON endpoint may answer (409, 413, 415) are declared.
    """

    def generate_spec_json(self):
        super().generate_spec_json()
        from forms_service.api.forms import form_components

        spec = self.spec_json
        components = spec.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        schemas.update(form_components())
        components["securitySchemes"] = SECURITY_SCHEMES
        spec["security"] = [{name: []} for name in SECURITY_SCHEMES]
        error_ref = {"$ref": f"#/components/schemas/{ErrorBody.__name__}"}
        for path_item in spec.get("paths", {}).values():
            for operation in path_item.values():
                responses = operation.get("responses", {})
                content = responses.get(self.validation_error_status, {}) \
                    .get("content", {}).get("application/json", {})
                if content.get("schema", {}).get("items") == error_ref:
                    content["schema"] = error_ref
                if "requestBody" in operation:
                    for status, description in _BODY_STATUSES.items():
                        responses.setdefault(status, {
                            "description": description,
                            "content": {"application/json": {"schema": error_ref}}})
        health = spec.get("paths", {}).get(f"{URL_PREFIX}/health", {}).get("get")
        if health is not None:
            health["security"] = []
        spec["paths"] = _per_form_paths(spec.get("paths", {}))


SECURITY_SCHEMES = {
    "cleApi": {"type": "apiKey", "in": "header", "name": "X-API-Key",
               "description": "Clé d'API (en-tête X-API-Key)"},
    "porteur": {"type": "http", "scheme": "bearer",
                "description": "Clé d'API en en-tête Authorization: Bearer <clé>"},
}
_BODY_STATUSES = {"409": "Clé Idempotency-Key déjà utilisée pour une autre requête",
                  "413": "Corps trop volumineux", "415": "Corps qui n'est pas du JSON"}
_FORM_PARAM = "{form_id}"
_IDEMPOTENCY_PARAM = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "description": "Clé choisie par le client (1 à 128 caractères ASCII) : une nouvelle tentative "
                   "avec la même clé et les mêmes données rend les mêmes documents sans en "
                   "émettre d'autres ; la même clé avec d'autres données : 409",
    "schema": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[!-~]+$"}}


def _per_form_paths(paths: dict) -> dict:
    """``/forms/{form_id}/…`` operations with a body → one path per form (see above)."""
    from forms_service.catalogue import catalogue
    from forms_service.render.service import MAX_BATCH

    out: dict = {}
    for template, item in paths.items():
        with_body = {m: op for m, op in item.items() if "requestBody" in op}
        if _FORM_PARAM not in template or not with_body:
            out[template] = item
            continue
        rest = {m: op for m, op in item.items() if m not in with_body}
        if rest:
            out[template] = rest
        action = template.rsplit("/", 1)[-1]
        for fd in catalogue.forms():
            ref = {"$ref": f"#/components/schemas/{fd.id}"}
            if fd.kind != "form" and action != "render":
                continue
            for method, op in with_body.items():
                op = copy.deepcopy(op)
                op["operationId"] = f"{op['operationId']}_{fd.id.replace('-', '_')}"
                op["parameters"] = [p for p in op.get("parameters", [])
                                    if not (p.get("in") == "path" and p.get("name") == "form_id")]
                if action in ("render", "render-batch"):
                    op["parameters"].append(dict(_IDEMPOTENCY_PARAM))
                if fd.kind != "form":
                    del op["requestBody"]
                    op["parameters"] = [p for p in op["parameters"] if p.get("name") != "fillable"]
                    for status in ("415", "422"):
                        op["responses"].pop(status, None)
                elif action == "render-batch":
                    op["requestBody"]["content"] = {"application/json": {"schema": {
                        "type": "array", "items": ref, "minItems": 1, "maxItems": MAX_BATCH}}}
                else:
                    op["requestBody"]["content"] = {"application/json": {"schema": ref}}
                    op["requestBody"]["required"] = action != "render"
                out.setdefault(template.replace(_FORM_PARAM, fd.id), {})[method] = op
    return out


def _check_database() -> dict[str, Any]:
    with database.session() as s:
        s.execute(text("SELECT 1"))
    return {"ok": True}


def _check_catalogue() -> dict[str, Any]:
    from forms_service.catalogue import catalogue

    return {"ok": True, "forms": len(catalogue.forms())}


def create_app(config: Mapping[str, Any] | None = None, *,
               settings: Settings | None = None) -> OpenAPI:
    """A new app. ``settings``: use these (``config`` then holds Flask keys only); else
    they are read from the environment with ``config``'s overrides."""
    config = dict(config or {})
    env_names = set(Settings.env_names())
    if settings is None:
        settings = Settings.from_env(config)
    elif any(k in env_names or k in Settings.model_fields for k in config):
        raise ValueError("create_app: settings given, config may only hold Flask keys")
    configure_logging(settings.log_level)

    app = FormsOpenAPI(
        __name__,
        info=Info(title="Service des formulaires RSA", version=__version__,
                  description="Catalogue, validation, rendu et lecture des formulaires du RSA."),
        doc_prefix=URL_PREFIX,
        doc_url="/openapi.json",
        validation_error_status=400,
        validation_error_callback=validation_error_callback,
        validation_error_model=ErrorBody,
        static_folder=None,
    )
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_content_length,
        JSON_SORT_KEYS=False,
    )
    app.config.update({k: v for k, v in config.items() if k.isupper() and k not in env_names})
    app.json.sort_keys = False
    app.json.ensure_ascii = False
    app.extensions[SETTINGS_KEY] = settings
    from forms_service import clock
    app.extensions[clock.EXTENSION_KEY] = clock.from_settings(settings)   # "now", one place

    for path in (settings.var_dir, settings.storage_dir):
        path.mkdir(parents=True, exist_ok=True)
    db = database.init_app(app, settings)
    owned = services.install(app, settings, db)

    api = build_api()
    app.register_api(api)
    json_body.init_app(app)
    csrf = CSRFProtect(app)
    # The JSON API is authenticated by key, not by cookie (nested blueprints count separately).
    for name, blueprint in app.blueprints.items():
        if name == api.name or name.startswith(api.name + "."):
            csrf.exempt(blueprint)

    from forms_service import accounts, security, web
    from forms_service.circuit import hooks as circuit_hooks

    circuit_hooks.install(settings)   # stored fiches de liaison become requests
    web.register(app)
    accounts.init_app(app)
    security.init_app(app)
    register_error_handlers(app)

    app.extensions.setdefault(HEALTH_CHECKS_KEY, [])
    register_health_check(app, "database", _check_database)
    register_health_check(app, "catalogue", _check_catalogue)
    register_health_check(app, "libreoffice", owned.libreoffice_check)
    owned.start()

    log.info("app_created", version=__version__, sqlite=settings.is_sqlite)
    return app


worker_apps.set_factory(create_app)   # the queue workers' app (forms_service.worker_apps)

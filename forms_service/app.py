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

from collections.abc import Mapping
from typing import Any

from flask_openapi3 import Info, OpenAPI
from flask_wtf import CSRFProtect
from sqlalchemy import text

from forms_service import __version__
from forms_service import db as database
from forms_service import services
from forms_service.api import HEALTH_CHECKS_KEY, URL_PREFIX, build_api, register_health_check
from forms_service.api.errors import ErrorBody, register_error_handlers, validation_error_callback
from forms_service.config import Settings
from forms_service.logging_setup import configure_logging, get_logger

__all__ = ["create_app", "register_health_check", "HEALTH_CHECKS_KEY"]

SETTINGS_KEY = services.SETTINGS_KEY
log = get_logger(__name__)


class FormsOpenAPI(OpenAPI):
    """Adds each form's JSON Schema to the generated document's components, and
    documents request-validation errors with our error body (not a list of them)."""

    def generate_spec_json(self):
        super().generate_spec_json()
        from forms_service.api.forms import form_components

        schemas = self.spec_json.setdefault("components", {}).setdefault("schemas", {})
        schemas.update(form_components())
        error_ref = {"$ref": f"#/components/schemas/{ErrorBody.__name__}"}
        for path_item in self.spec_json.get("paths", {}).values():
            for operation in path_item.values():
                response = operation.get("responses", {}).get(self.validation_error_status, {})
                content = response.get("content", {}).get("application/json", {})
                if content.get("schema", {}).get("items") == error_ref:
                    content["schema"] = error_ref


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

    for path in (settings.var_dir, settings.storage_dir):
        path.mkdir(parents=True, exist_ok=True)
    db = database.init_app(app, settings)
    owned = services.install(app, settings, db)

    api = build_api()
    app.register_api(api)
    csrf = CSRFProtect(app)
    # The JSON API is authenticated by key, not by cookie (nested blueprints count separately).
    for name, blueprint in app.blueprints.items():
        if name == api.name or name.startswith(api.name + "."):
            csrf.exempt(blueprint)

    from forms_service import web

    web.register(app)
    register_error_handlers(app)

    app.extensions.setdefault(HEALTH_CHECKS_KEY, [])
    register_health_check(app, "database", _check_database)
    register_health_check(app, "catalogue", _check_catalogue)
    register_health_check(app, "libreoffice", owned.libreoffice_check)
    owned.start()

    log.info("app_created", version=__version__, sqlite=settings.is_sqlite,
             api_keys=len(settings.api_keys))
    return app

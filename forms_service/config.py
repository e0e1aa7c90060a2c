"""Service configuration: environment variables with embedded defaults, read once.

``Settings.from_env()`` builds an immutable snapshot; ``get_settings()`` caches the
process-wide one. ``create_app(config)`` passes a dict of overrides (keys are field
names such as ``"var_dir"`` or the environment names such as ``"DATABASE_URL"``), so
tests never touch ``os.environ``.

Every variable is listed once, in ``ENV`` below; the README's table mirrors it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

MIB = 1024 * 1024


def _int(value: Any) -> int:
    return int(value)


def _path(value: Any) -> Path:
    return Path(value).expanduser()


def _opt_path(value: Any) -> Path | None:
    return None if value in (None, "") else Path(value).expanduser()


def _str(value: Any) -> str:
    return str(value)


def _opt_bool(value: Any) -> bool | None:
    return None if value in (None, "", "auto") else _bool(value)


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"1", "true", "yes", "oui", "on"}


# field name -> (environment variable, parser). Defaults live on the dataclass.
ENV: dict[str, tuple[str, Any]] = {
    "var_dir": ("FORMS_SERVICE_VAR_DIR", _path),
    "database_url": ("DATABASE_URL", _str),
    "storage_dir": ("FORMS_SERVICE_STORAGE_DIR", _path),
    "departement_name": ("DEPARTEMENT_NAME", _str),
    "departement_logo": ("DEPARTEMENT_LOGO", _opt_path),
    "ede_bound_low": ("EDE_BOUND_LOW", _int),
    "ede_bound_high": ("EDE_BOUND_HIGH", _int),
    "max_content_length": ("MAX_CONTENT_LENGTH", _int),
    "soffice_pool_size": ("SOFFICE_POOL_SIZE", _int),
    "secure_cookies": ("FORMS_SERVICE_SECURE_COOKIES", _opt_bool),
    "session_idle_minutes": ("FORMS_SERVICE_SESSION_IDLE_MINUTES", _int),
    "secret_key": ("SECRET_KEY", _str),
    "log_level": ("FORMS_SERVICE_LOG_LEVEL", _str),
    "migrate_on_startup": ("FORMS_SERVICE_MIGRATE_ON_STARTUP", _bool),
    "templates_dir": ("FORMS_SERVICE_TEMPLATES_DIR", _path),
    "ede_grid": ("FORMS_SERVICE_EDE_GRID", _opt_path),
}

#: The repository's ``templates/`` (``docx/`` and ``pdf/``): the committed templates.
DEFAULT_TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"


@dataclass(frozen=True)
class Settings:
    var_dir: Path = Path("var")
    #: ``None`` means ``sqlite:///<var_dir>/forms.db``.
    database_url: str | None = None
    #: ``None`` means ``<var_dir>/files``.
    storage_dir: Path | None = None
    departement_name: str = "Département du Pas-de-Calais"
    departement_logo: Path | None = None
    ede_bound_low: int = 18
    ede_bound_high: int = 35
    max_content_length: int = 10 * MIB
    soffice_pool_size: int = field(default_factory=lambda: os.cpu_count() or 1)
    #: Session cookie ``Secure`` flag; ``None`` (auto): set when the request came over HTTPS.
    secure_cookies: bool | None = None
    #: A web session ends after this many minutes without a request.
    session_idle_minutes: int = 30
    #: A random key per process when unset (sessions then end with the process).
    secret_key: str = field(default_factory=lambda: secrets.token_hex(32), repr=False)
    log_level: str = "INFO"
    #: ``None`` means: on for SQLite, off otherwise (run ``forms-service db upgrade``).
    migrate_on_startup: bool | None = None
    #: Where ``docx/`` and ``pdf/`` templates are read from (a département's edited copies).
    templates_dir: Path = DEFAULT_TEMPLATES_DIR
    #: The département's own EDE grid (YAML); ``None``: the indicative grid.
    ede_grid: Path | None = None

    def __post_init__(self) -> None:
        # Resolve the derived defaults once, so every reader sees the same values.
        var_dir = Path(self.var_dir).expanduser().resolve()
        object.__setattr__(self, "var_dir", var_dir)
        if self.storage_dir is None:
            object.__setattr__(self, "storage_dir", var_dir / "files")
        if not self.database_url:
            object.__setattr__(self, "database_url", f"sqlite:///{var_dir / 'forms.db'}")
        if self.migrate_on_startup is None:
            object.__setattr__(self, "migrate_on_startup", self.is_sqlite)
        if self.ede_bound_low > self.ede_bound_high:
            raise ValueError("EDE_BOUND_LOW doit être inférieur ou égal à EDE_BOUND_HIGH")
        if self.soffice_pool_size < 1:
            raise ValueError("SOFFICE_POOL_SIZE doit être au moins 1")
        if self.session_idle_minutes < 1:
            raise ValueError("FORMS_SERVICE_SESSION_IDLE_MINUTES doit être au moins 1")
        if self.max_content_length < 1:
            raise ValueError("MAX_CONTENT_LENGTH doit être positif")

    @property
    def is_sqlite(self) -> bool:
        return str(self.database_url).startswith("sqlite")

    @classmethod
    def from_env(cls, overrides: Mapping[str, Any] | None = None,
                 environ: Mapping[str, str] | None = None) -> "Settings":
        """Build settings from ``environ`` (default ``os.environ``), then ``overrides``.

        Override keys may be field names (``var_dir``) or variable names
        (``FORMS_SERVICE_VAR_DIR``). Other upper-case keys are ignored here (they are
        Flask configuration, see ``create_app``); an unknown lower-case key is an error.
        """
        environ = os.environ if environ is None else environ
        overrides = dict(overrides or {})
        by_env_name = {env: name for name, (env, _) in ENV.items()}
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for name, (env, parse) in ENV.items():
            if env in environ and environ[env] != "":
                values[name] = parse(environ[env])
        for key, value in overrides.items():
            name = by_env_name.get(key, key)
            if name in known:
                values[name] = value if value is None else ENV[name][1](value)
            elif key.islower():
                raise ValueError(f"Paramètre de configuration inconnu : {key}")
        return cls(**values)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment once."""
    return Settings.from_env()


def current_settings() -> Settings:
    """The running app's settings inside an app context, else the process-wide ones."""
    from flask import current_app, has_app_context

    if has_app_context():
        settings = current_app.extensions.get("forms_service.settings")
        if settings is not None:
            return settings
    return get_settings()


def ede_grid_file() -> str | None:
    """The EDE grid file the process uses (read by the catalogue when it loads)."""
    grid = get_settings().ede_grid
    return str(grid) if grid else None

"""Service configuration: environment variables with embedded defaults (pydantic-settings).

One :class:`Settings` object is built per app or per command and passed on; nothing
reads the process environment behind the caller's back:

* ``create_app(config)`` builds its own (``Settings.from_env(config)``) and keeps it in
  ``app.extensions["forms_service.settings"]``; code serving a request reads it there
  (:func:`current_settings`).
* the ``forms-service`` command builds one per invocation in its click group and hands
  it to the commands (``forms_service.cli_context.pass_settings``).

``Settings.from_env(overrides)`` takes overrides keyed by field name (``"var_dir"``) or by
environment variable name (``"DATABASE_URL"``), so tests never touch ``os.environ``.
Every variable is declared once, as a field's ``validation_alias`` below; the README's
configuration table mirrors them. Invalid values are refused in French
(:class:`SettingsError`, a ``ValueError``).
"""

from __future__ import annotations

import contextvars
import os
import secrets
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict

MIB = 1024 * 1024

#: The repository's ``templates/`` (``docx/`` and ``pdf/``): the committed templates.
DEFAULT_TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"

_TRUE = {"1", "true", "yes", "oui", "on"}
_FALSE = {"0", "false", "no", "non", "off"}


class SettingsError(ValueError):
    """A setting with a value the service cannot use (message in French)."""


def _env(name: str, default: Any = None, **kw: Any) -> Any:
    return Field(default, validation_alias=name, **kw)


class Settings(BaseSettings):
    """The service's settings (immutable). Field names are what code reads
    (``settings.var_dir``); each field's alias is its environment variable."""

    model_config = SettingsConfigDict(frozen=True, case_sensitive=True, env_ignore_empty=True,
                                      populate_by_name=True, extra="ignore")

    var_dir: Path = _env("FORMS_SERVICE_VAR_DIR", Path("var"))
    #: ``None`` means ``sqlite:///<var_dir>/forms.db``.
    database_url: str | None = _env("DATABASE_URL")
    #: ``None`` means ``<var_dir>/files``.
    storage_dir: Path | None = _env("FORMS_SERVICE_STORAGE_DIR")
    departement_name: str = _env("DEPARTEMENT_NAME", "Département du Pas-de-Calais")
    departement_logo: Path | None = _env("DEPARTEMENT_LOGO")
    ede_bound_low: int = _env("EDE_BOUND_LOW", 18)
    ede_bound_high: int = _env("EDE_BOUND_HIGH", 35)
    max_content_length: int = _env("MAX_CONTENT_LENGTH", 10 * MIB)
    #: The PDF fast path (``render/fastpath.py``): values written on LibreOffice's print of
    #: the blank form when they cannot change its layout (on by default: proven against
    #: LibreOffice by tests/test_pdf_fastpath.py); off: every PDF through LibreOffice.
    pdf_fast_path: bool = _env("PDF_FAST_PATH", True)
    soffice_pool_size: int = Field(default_factory=lambda: os.cpu_count() or 1,
                                   validation_alias="SOFFICE_POOL_SIZE")
    #: Session cookie ``Secure`` flag; ``None`` (auto): set when the request came over HTTPS.
    secure_cookies: bool | None = _env("FORMS_SERVICE_SECURE_COOKIES")
    #: A web session ends after this many minutes without a request.
    session_idle_minutes: int = _env("FORMS_SERVICE_SESSION_IDLE_MINUTES", 30)
    #: A random key per process when unset (sessions then end with the process).
    secret_key: str = Field(default_factory=lambda: secrets.token_hex(32),
                            validation_alias="SECRET_KEY", repr=False)
    log_level: str = _env("FORMS_SERVICE_LOG_LEVEL", "INFO")
    #: ``None`` means: on for SQLite, off otherwise (run ``forms-service db upgrade``).
    migrate_on_startup: bool | None = _env("FORMS_SERVICE_MIGRATE_ON_STARTUP")
    #: Where ``docx/`` and ``pdf/`` templates are read from (a département's edited copies).
    templates_dir: Path = _env("FORMS_SERVICE_TEMPLATES_DIR", DEFAULT_TEMPLATES_DIR)
    #: The département's own EDE grid (YAML); ``None``: the indicative grid.
    ede_grid: Path | None = _env("FORMS_SERVICE_EDE_GRID")
    # -- the SLAI desk (issue 11)
    #: The task queue: ``None`` is Huey on SQLite (``<var_dir>/queue.db``); ``redis://…`` Redis.
    queue_url: str | None = _env("QUEUE_URL")
    #: Largest batch of received files (all files together), apart from MAX_CONTENT_LENGTH.
    max_batch_bytes: int = _env("MAX_BATCH_BYTES", 1024 * MIB)
    #: A render batch of more items than this runs on the task queue (202 and a job to poll).
    render_async_threshold: int = _env("RENDER_ASYNC_THRESHOLD", 20, ge=1)
    #: Watched folders: one subfolder per territory code (``<dir>/arrageois/``); ``None``: none.
    watch_dir: Path | None = _env("FORMS_SERVICE_WATCH_DIR")
    #: A watched file is taken once unchanged (size, time) for this many seconds.
    watch_settle_seconds: float = _env("FORMS_SERVICE_WATCH_SETTLE_SECONDS", 5.0)
    #: Threads of a ``forms-service worker`` (each reads one job at a time); ``None``: two
    #: per core (``desk.queue.default_threads``).
    worker_threads: int | None = _env("FORMS_SERVICE_WORKER_THREADS")
    #: Share of the automatically accepted records sent to the review queue anyway (0 to 1),
    #: chosen from the record id (``desk.batches.sampled``): the machine's error rate is measured.
    review_sample_rate: float = _env("REVIEW_SAMPLE_RATE", 0.02)
    #: How long an agent holds a record under review before another may take it.
    review_lease_minutes: int = _env("REVIEW_LEASE_MINUTES", 10)

    # -- e-mail (the fiche de liaison's circuit): no SMTP_HOST → .eml files in <var>/outbox/
    smtp_host: str | None = _env("SMTP_HOST")
    smtp_port: int | None = _env("SMTP_PORT")
    smtp_user: str | None = _env("SMTP_USER")
    smtp_password: str | None = Field(None, validation_alias="SMTP_PASSWORD", repr=False)
    #: STARTTLS after connecting (port 465 means implicit TLS whatever this says).
    smtp_starttls: bool = _env("SMTP_STARTTLS", False)
    mail_from: str = _env("MAIL_FROM", "rsa-formulaires@localhost")
    #: The service's address as its users reach it, for the links in e-mails.
    public_url: str = _env("FORMS_SERVICE_PUBLIC_URL", "http://127.0.0.1:5000")
    #: Freezes the service's clock at this instant (ISO date-time; ``forms_service.clock``):
    #: tests and rehearsals of the deadlines. ``None``: the system clock.
    clock_now: datetime | None = _env("FORMS_SERVICE_CLOCK_NOW")
    # -- webhooks (issue 13, « other systems »): each transition of a request, signed
    #: Where every transition is POSTed (JSON, signed); ``None``: no webhook.
    webhook_url: str | None = _env("WEBHOOK_URL")
    #: The HMAC-SHA256 key of ``X-RSA-Signature`` (required with WEBHOOK_URL).
    webhook_secret: str | None = Field(None, validation_alias="WEBHOOK_SECRET", repr=False)
    #: Tries of one delivery after the first, and the first delay (doubled at each try).
    webhook_retries: int = _env("WEBHOOK_RETRIES", 6)
    webhook_retry_delay: float = _env("WEBHOOK_RETRY_DELAY", 10.0)

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise SettingsError(_french(exc)) from None

    # -- parsing of the environment's strings
    @field_validator("migrate_on_startup", "secure_cookies", "smtp_starttls", mode="before")
    @classmethod
    def _parse_bool(cls, raw: Any) -> Any:
        if isinstance(raw, str) and raw.strip().lower() == "auto":
            return None
        if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
            return raw.strip().lower() in _TRUE
        return raw

    @field_validator("var_dir", "storage_dir", "departement_logo", "templates_dir", "ede_grid",
                     "watch_dir", mode="before")
    @classmethod
    def _parse_path(cls, raw: Any) -> Any:
        if raw in (None, ""):
            return None
        return Path(raw).expanduser()

    @model_validator(mode="after")
    def _derive(self) -> "Settings":
        # Resolve the derived defaults once, so every reader sees the same values.
        var_dir = (self.var_dir or Path("var")).resolve()
        derived = {"var_dir": var_dir,
                   "storage_dir": self.storage_dir or var_dir / "files",
                   "database_url": self.database_url or f"sqlite:///{var_dir / 'forms.db'}",
                   "templates_dir": self.templates_dir or DEFAULT_TEMPLATES_DIR}
        for name, value in derived.items():
            object.__setattr__(self, name, value)
        if self.migrate_on_startup is None:
            object.__setattr__(self, "migrate_on_startup", self.is_sqlite)
        if self.ede_bound_low > self.ede_bound_high:
            raise ValueError("EDE_BOUND_LOW doit être inférieur ou égal à EDE_BOUND_HIGH")
        if self.soffice_pool_size < 1:
            raise ValueError("SOFFICE_POOL_SIZE doit être au moins 1")
        if self.session_idle_minutes < 1:
            raise ValueError("FORMS_SERVICE_SESSION_IDLE_MINUTES doit être au moins 1")
        if not 0 <= self.review_sample_rate <= 1:
            raise ValueError("REVIEW_SAMPLE_RATE doit être compris entre 0 et 1")
        if self.review_lease_minutes < 1:
            raise ValueError("REVIEW_LEASE_MINUTES doit être au moins 1")
        if self.max_content_length < 1:
            raise ValueError("MAX_CONTENT_LENGTH doit être positif")
        if self.webhook_url and not self.webhook_secret:
            raise ValueError("WEBHOOK_SECRET est requis avec WEBHOOK_URL")
        if self.webhook_retries < 0 or self.webhook_retry_delay < 0:
            raise ValueError("WEBHOOK_RETRIES et WEBHOOK_RETRY_DELAY doivent être positifs")
        return self

    # -- sources: the environment given to from_env, or the process's
    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings,
                                   dotenv_settings, file_secret_settings):
        environ = _ENVIRON.get()
        if environ is not None:
            env_settings = _MappingEnvSource(settings_cls, environ)
        return (init_settings, env_settings)

    @property
    def is_sqlite(self) -> bool:
        return str(self.database_url).startswith("sqlite")

    @classmethod
    def env_names(cls) -> dict[str, str]:
        """Environment variable name -> field name."""
        return {f.validation_alias: name for name, f in cls.model_fields.items()}

    @classmethod
    def from_env(cls, overrides: Mapping[str, Any] | None = None,
                 environ: Mapping[str, str] | None = None) -> "Settings":
        """Build settings from ``environ`` (default ``os.environ``), then ``overrides``.

        Override keys may be field names (``var_dir``) or variable names
        (``FORMS_SERVICE_VAR_DIR``). Other upper-case keys are ignored here (they are
        Flask configuration, see ``create_app``); an unknown lower-case key is an error.
        """
        by_env_name = cls.env_names()
        values: dict[str, Any] = {}
        for key, value in dict(overrides or {}).items():
            name = by_env_name.get(key, key)
            if name in cls.model_fields:
                values[name] = value
            elif key.islower():
                raise SettingsError(f"Paramètre de configuration inconnu : {key}")
        token = _ENVIRON.set(dict(os.environ if environ is None else environ))
        try:
            return cls(**values)
        finally:
            _ENVIRON.reset(token)


#: The environment ``from_env`` reads (set for the duration of one build).
_ENVIRON: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar(
    "forms_service_environ", default=None)


class _MappingEnvSource(EnvSettingsSource):
    """The environment source, reading a given mapping instead of ``os.environ``."""

    def __init__(self, settings_cls, environ: Mapping[str, str]):
        super().__init__(settings_cls)
        # case-sensitive names, empty values ignored (as the model's configuration says)
        self.env_vars = {k: v for k, v in environ.items() if v != ""}


_FRENCH = {
    "int_parsing": "nombre entier attendu",
    "int_from_float": "nombre entier attendu",
    "int_type": "nombre entier attendu",
    "float_parsing": "nombre attendu",
    "float_type": "nombre attendu",
    "bool_parsing": "valeur attendue : oui ou non (1/0, true/false)",
    "bool_type": "valeur attendue : oui ou non (1/0, true/false)",
    "string_type": "texte attendu",
    "path_type": "chemin de fichier attendu",
    "dict_type": "liste « nom:clé » attendue",
    "frozen_instance": "les paramètres ne se modifient pas une fois lus",
}


def _french(exc: ValidationError) -> str:
    """One French line per problem: ``VARIABLE : message``."""
    names = {name: f.validation_alias for name, f in Settings.model_fields.items()}
    lines = []
    for err in exc.errors():
        loc = str(err["loc"][0]) if err["loc"] else ""
        where = names.get(loc, loc)
        if err["type"] == "value_error":
            message = str(err.get("ctx", {}).get("error", err["msg"]))
        else:
            message = _FRENCH.get(err["type"], "valeur invalide")
        lines.append(f"{where} : {message}" if where else message)
    return "Configuration invalide : " + " ; ".join(lines)


def current_settings() -> Settings:
    """The settings of the app serving the current request (an app context is required:
    outside one, pass the settings explicitly)."""
    from flask import current_app, has_app_context

    if not has_app_context():
        raise RuntimeError("current_settings() needs an app context; pass the settings explicitly")
    return current_app.extensions["forms_service.settings"]

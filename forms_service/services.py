"""What an app owns and must stop: its database engine, its LibreOffice pool, its parse
sandbox and its render service (with the service's caches).

``create_app`` makes one :class:`AppServices` per app and keeps it in
``app.extensions["forms_service"]``; nothing here is shared between two apps unless a
test passes a pool in on purpose (``PDF_POOL``: that pool is the caller's, and the app
does not close it). ``app.close()`` (= ``AppServices.close``) stops everything; it runs
at interpreter exit too (``atexit``), and ``forms-service serve`` calls it on SIGTERM and
SIGINT, so that a stopped service leaves no LibreOffice or worker process behind.

The pool and the sandbox start nothing when made: LibreOffice starts at the first PDF
(or in the background when the app is served, ``PDF_POOL_AUTOSTART``), the sandbox's
worker processes at the first parse.

Flask configuration keys read here (tests and benchmarks): ``PDF_POOL`` (a pool to use),
``PDF_POOL_AUTOSTART`` (default: not ``TESTING``), ``PDF_SOFFICE``, ``PDF_UNO_PYTHON``,
``PDF_POOL_BASE_PORT``, ``PDF_POOL_RECYCLE_AFTER`` (0: never), ``PARSE_WORKERS``.
"""

from __future__ import annotations

import atexit
import threading
import weakref
from typing import Any

from forms_service.config import Settings
from forms_service.db import Database
from forms_service.logging_setup import get_logger

log = get_logger(__name__)

EXTENSION_KEY = "forms_service"
#: Where the parts are also found by the code that uses them (the settings and the
#: database are put there by ``create_app`` and ``db.init_app``; the render service is
#: under ``render.service.EXTENSION_KEY``, read by ``get_service``).
SETTINGS_KEY = "forms_service.settings"
SANDBOX_KEY = "parsers.sandbox"

#: Parse worker processes per app (each reads one file at a time, within memory limits).
DEFAULT_PARSE_WORKERS = 2


def make_pool(settings: Settings, config: dict[str, Any]):
    """The app's LibreOffice pool (profiles under ``<var>/lo``; ``SOFFICE_POOL_SIZE``
    instances), not started."""
    from forms_service.render.pdf import ConverterPool

    options: dict[str, Any] = {}
    for key, option in (("PDF_SOFFICE", "soffice"), ("PDF_UNO_PYTHON", "uno_python"),
                        ("PDF_POOL_BASE_PORT", "base_port")):
        if config.get(key):
            options[option] = config[key]
    if "PDF_POOL_RECYCLE_AFTER" in config:
        options["recycle_after"] = int(config["PDF_POOL_RECYCLE_AFTER"] or 0) or None
    return ConverterPool(size=settings.soffice_pool_size, work_dir=settings.var_dir / "lo",
                         **options)


class AppServices:
    """The services of one app, stopped together by :meth:`close` (idempotent)."""

    def __init__(self, app, settings: Settings, database: Database):
        from forms_service.render.service import RenderService, libreoffice_check
        from parsers.sandbox import Sandbox

        self.settings = settings
        self.database = database
        injected = app.config.get("PDF_POOL")
        self.owns_pool = injected is None
        self.pool = make_pool(settings, app.config) if injected is None else injected
        self.sandbox = Sandbox(settings, pool=self.pool,
                               workers=int(app.config.get("PARSE_WORKERS", DEFAULT_PARSE_WORKERS)))
        self.render = RenderService(app, self.pool)
        self.autostart = bool(app.config.get("PDF_POOL_AUTOSTART", not app.testing))
        self.libreoffice_check = libreoffice_check(self.pool, self.autostart)
        self._closed = False
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start what a served app starts at once (the pool, in the background)."""
        if self.autostart and not self.pool.closed:
            self.pool.start(wait=False)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop the sandbox's workers, the pool (when the app made it) and the database
        engine. Safe to call twice, from ``atexit`` and from a signal handler."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for name, stop in (("sandbox", self.sandbox.close),
                           ("pdf_pool", self.pool.close if self.owns_pool else None),
                           ("database", self.database.dispose)):
            if stop is None:
                continue
            try:
                stop()
            except Exception as exc:  # keep stopping the others; say which one failed
                log.error("service_close_failed", service=name, exc_type=type(exc).__name__)
        log.info("app_closed")


def install(app, settings: Settings, database: Database) -> AppServices:
    """Make the app's services, put them where their users look, and give the app a
    ``close()`` (also run at interpreter exit)."""
    from forms_service.render.service import EXTENSION_KEY as RENDER_KEY, POOL_KEY

    from forms_service.render.service import recover_storage

    services = AppServices(app, settings, database)
    recover_storage(app)
    app.extensions[EXTENSION_KEY] = services
    app.extensions[RENDER_KEY] = services.render
    app.extensions[POOL_KEY] = services.pool
    app.extensions[SANDBOX_KEY] = services.sandbox
    app.close = services.close
    ref = weakref.ref(services)   # atexit must not keep every test's app alive
    atexit.register(lambda: (s := ref()) is not None and s.close())
    return services


def services_of(app) -> AppServices:
    return app.extensions[EXTENSION_KEY]

"""The app a queue worker's jobs run in: its render service and LibreOffice pool, made once
per settings and closed with the process.

    app = worker_app(settings)       # in a queue task (render jobs, the structures' copies)

``forms_service.app`` hands its ``create_app`` over when it is imported (``set_factory``;
``forms-service worker`` imports it first): the modules below the app (the circuit, the
render jobs) get an app without importing the module that imports them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from forms_service.config import Settings

_factory: Callable | None = None
_apps: dict[Settings, object] = {}
_lock = threading.Lock()


def set_factory(factory: Callable) -> None:
    global _factory
    _factory = factory


def worker_app(settings: Settings):
    """The worker process's app for these settings, made once (LibreOffice starts at the
    first PDF, not before: a DOCX needs none)."""
    with _lock:
        app = _apps.get(settings)
        if app is None:
            if _factory is None:
                raise RuntimeError("no app factory: import forms_service.app (the worker "
                                   "command does) before running a task that needs an app")
            app = _apps[settings] = _factory({"PDF_POOL_AUTOSTART": False}, settings=settings)
        return app


__all__ = ["worker_app", "set_factory"]

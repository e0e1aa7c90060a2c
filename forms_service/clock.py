"""The service's clock: what "now" and "today" are, in one place a test can control.

    clock.current().today()            # the app's clock (in a request / app context),
    clock.current().now()              # else the process's (a CLI command, a worker)

Settings ``FORMS_SERVICE_CLOCK_NOW`` (an ISO date-time, e.g. ``2027-01-15T09:00:00+00:00``)
freezes it at that instant: the tests and a rehearsal run the EP's deadlines (one month,
CASF R262-71) on the day they choose, in the web app, the CLI and a queue worker alike.
Unset, it is the system clock (UTC). A test may also move an app's fixed clock on:
``clock.of(app).advance(days=31)``.

``create_app`` gives each app its clock (``app.extensions[EXTENSION_KEY]``); a CLI command
or a worker calls :func:`install` with its settings.
"""

from __future__ import annotations

import datetime as dt
import threading

EXTENSION_KEY = "forms_service.clock"


class Clock:
    """The system clock (UTC)."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc)

    def today(self) -> dt.date:
        return self.now().date()


class FixedClock(Clock):
    """A clock that stays where it is set (and moves only when told)."""

    def __init__(self, at: dt.datetime):
        self._lock = threading.Lock()
        self._at = _aware(at)

    def now(self) -> dt.datetime:
        with self._lock:
            return self._at

    def set(self, at: dt.datetime) -> None:
        with self._lock:
            self._at = _aware(at)

    def advance(self, **delta) -> None:
        with self._lock:
            self._at = self._at + dt.timedelta(**delta)


def _aware(at: dt.datetime) -> dt.datetime:
    return at if at.tzinfo else at.replace(tzinfo=dt.timezone.utc)


def from_settings(settings) -> Clock:
    at = getattr(settings, "clock_now", None)
    return FixedClock(at) if at is not None else Clock()


_process: list[Clock] = []


def install(settings) -> Clock:
    """The process's clock, from settings (a CLI command, a worker)."""
    c = from_settings(settings)
    _process[:] = [c]
    return c


def of(app) -> Clock:
    return app.extensions[EXTENSION_KEY]


def current() -> Clock:
    """The current app's clock, else the process's, else the system clock."""
    from flask import current_app, has_app_context

    if has_app_context() and EXTENSION_KEY in current_app.extensions:
        return current_app.extensions[EXTENSION_KEY]
    return _process[0] if _process else Clock()


__all__ = ["Clock", "FixedClock", "current", "install", "of", "from_settings", "EXTENSION_KEY"]

"""The settings in force for the circuit's hooks, which run where no request is: the
current app's, else those a worker process installed (``circuit.hooks.install``).
A module of its own, below the hooks, so that the steps they call can read it."""

from __future__ import annotations

from forms_service.config import Settings

_installed: list[Settings] = []


def install(settings: Settings) -> None:
    _installed.append(settings)


def settings_now() -> Settings | None:
    """The settings in force: the current app's, else those installed (a worker)."""
    from flask import has_app_context

    if has_app_context():
        from forms_service.config import current_settings
        return current_settings()
    return _installed[-1] if _installed else None


__all__ = ["install", "settings_now"]

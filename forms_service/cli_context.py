"""What a ``forms-service`` command gets from the group: the invocation's settings, and
an app built from them when the command needs one.

    @click.command("parse")
    @pass_settings
    def parse(settings, ...): ...          # the Settings the group built, once

    app = command_app()                     # built once per invocation, closed at its end

The group (``forms_service.cli.main``) reads the environment once per invocation and
keeps the :class:`~forms_service.config.Settings` as the click context's object;
nothing below it reads the environment again.
"""

from __future__ import annotations

import click

from forms_service.config import Settings

#: ``@pass_settings`` gives the command the invocation's settings as first argument.
pass_settings = click.make_pass_decorator(Settings)

_APP_KEY = "forms_service.app"
#: Extra Flask configuration for ``command_app`` (``ctx.meta``; tests hand a pool in).
APP_CONFIG_KEY = "forms_service.app_config"


def command_settings(ctx: click.Context | None = None) -> Settings:
    """The invocation's settings (from the nearest context that holds them)."""
    ctx = ctx or click.get_current_context()
    settings = ctx.find_object(Settings)
    if settings is None:  # a command invoked without the group (a test calling it alone)
        settings = ctx.find_root().obj = Settings.from_env()
    return settings


def command_app(ctx: click.Context | None = None):
    """An app on the invocation's settings, made on first use and closed (its LibreOffice
    pool and parse workers stopped) when the command ends. LibreOffice is not started in
    the background: a DOCX needs none, a PDF starts it at its first conversion."""
    from forms_service.app import create_app

    ctx = ctx or click.get_current_context()
    root = ctx.find_root()
    app = root.meta.get(_APP_KEY)
    if app is None:
        config = {"PDF_POOL_AUTOSTART": False, **root.meta.get(APP_CONFIG_KEY, {})}
        app = root.meta[_APP_KEY] = create_app(config, settings=command_settings(ctx))
        root.call_on_close(app.close)
    return app

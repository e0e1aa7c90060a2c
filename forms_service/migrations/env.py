"""Alembic environment. The URL comes from the Alembic config, which the service sets
(``forms_service.db.alembic_config``: ``forms-service db upgrade`` and the app's start-up
migration, from their settings); an ``alembic`` run without it reads the settings of
the environment (``DATABASE_URL`` / ``FORMS_SERVICE_VAR_DIR``) here, at its entry point."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from forms_service.config import Settings
from forms_service.db.schema import metadata

config = context.config
target_metadata = metadata


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or Settings.from_env().database_url


def run_migrations_offline() -> None:
    url = _url()
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True,
                      dialect_opts={"paramstyle": "named"},
                      render_as_batch=url.startswith("sqlite"))
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    url = _url()
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=url.startswith("sqlite"), compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()

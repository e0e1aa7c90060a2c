"""Database access: one engine per app, sessions as context managers, and the Alembic
upgrade the app runs at start-up on SQLite.

    from forms_service import db
    with db.session() as s:          # the current app's database; commits on success,
        s.add(db.AuditEvent(...))    # rolls back on error

Outside an app (a parse worker process, a script), name the database:
``db.session(settings)`` uses one engine per URL for the process. Nothing falls back
to the environment.

``Record`` (data read back from a returned form) stays: issue 11 stores the records.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from forms_service.config import Settings
from forms_service.db.models import (AuditEvent, Base, IdempotencyKey, IssuedDocument, Record,
                                     TemplateVersion, new_document_id)
from forms_service.db import schema  # noqa: F401  (every table on Base.metadata)

__all__ = ["AuditEvent", "Base", "Database", "IdempotencyKey", "IssuedDocument", "Record",
           "TemplateVersion", "database_for", "get_database", "init_app", "new_document_id",
           "session", "upgrade"]

EXTENSION_KEY = "forms_service.db"
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


#: How long a SQLite statement waits for another connection's lock before it fails.
SQLITE_BUSY_TIMEOUT_MS = 5000


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    # write-ahead log: readers (the desk's reader processes, a poll, a page) never wait
    # for a writer's commit nor block it, and a commit syncs one file, not three. Kept in
    # the database file; an in-memory database answers « memory ». synchronous stays FULL:
    # a committed receipt survives a power cut.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


class Database:
    """An engine and its session factory."""

    def __init__(self, url: str):
        self.url = url
        if url.startswith("sqlite"):
            _ensure_sqlite_dir(url)
            self.engine: Engine = create_engine(url, connect_args={"check_same_thread": False})
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            self.engine = create_engine(url, pool_pre_ping=True)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction: commit on success, rollback on error."""
        with self._sessions.begin() as s:
            yield s

    def dispose(self) -> None:
        self.engine.dispose()


def _ensure_sqlite_dir(url: str) -> None:
    path = url.split("///", 1)[1] if "///" in url else ""
    if path and path != ":memory:" and not path.startswith("file:"):
        Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)


@lru_cache(maxsize=8)
def database_for(url: str) -> Database:
    """The process's engine for ``url`` (code that runs outside an app)."""
    return Database(url)


def init_app(app, settings: Settings) -> Database:
    """Create the app's engine; bring the schema to head when configured to."""
    database = Database(settings.database_url)
    app.extensions[EXTENSION_KEY] = database
    if settings.migrate_on_startup:
        upgrade(settings.database_url)
    return database


def get_database(settings: Settings | None = None) -> Database:
    """``settings``' database when given, else the current app's (an app context is
    then required)."""
    if settings is not None:
        return database_for(settings.database_url)
    from flask import current_app, has_app_context

    if has_app_context() and EXTENSION_KEY in current_app.extensions:
        return current_app.extensions[EXTENSION_KEY]
    raise RuntimeError("No app context: pass the settings (db.session(settings))")


def session(settings: Settings | None = None):
    """``with db.session() as s: ...`` on the current app's database (or ``settings``')."""
    return get_database(settings).session()


def alembic_config(url: str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation: a literal % in a password must be doubled.
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["configure_logger"] = False
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Apply the Alembic migrations to the database at ``url``, up to ``revision``."""
    from alembic import command

    if url.startswith("sqlite"):
        _ensure_sqlite_dir(url)
    command.upgrade(alembic_config(url), revision)

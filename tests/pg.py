"""A throw-away PostgreSQL cluster for the tests (Debian's postgresql 15).

``postgresql_server`` (session scope) runs ``initdb`` and ``pg_ctl`` in a
temporary folder owned by the ``postgres`` user (PostgreSQL refuses to run as
root, and CI runs as root: the binaries then run through ``runuser -u
postgres --``), listening on 127.0.0.1 on a free port with its unix socket in the
same folder; it is stopped and removed at the end of the session.

``postgresql_url()`` gives a fresh, empty database on it for each test
(``postgresql+psycopg://...``). Without the binaries the PostgreSQL tests are
skipped, except in CI (``CI`` set), where a missing PostgreSQL is a failure.

Use it through the ``db_url`` fixture of ``tests/conftest.py``, parametrized over
``["sqlite", "postgresql"]``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

PG_BIN = Path(os.environ.get("FORMS_SERVICE_PG_BIN", "/usr/lib/postgresql/15/bin"))
RUN_AS = "postgres"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_owner(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", RUN_AS, "--", *cmd]
    return cmd


@dataclass
class PostgresServer:
    root: Path
    port: int
    user: str

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(host="127.0.0.1", port=self.port, user=self.user,
                             dbname="postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, RUN_AS, RUN_AS)
        subprocess.run(_as_owner([str(PG_BIN / "initdb"), "-D", str(self.data_dir), "-U", self.user,
                                  "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "-N"]),
                       check=True, capture_output=True)
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} "
                   f"-c unix_socket_directories={self.root} -c fsync=off "
                   f"-c synchronous_commit=off -c full_page_writes=off")
        subprocess.run(_as_owner([str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-o", options,
                                  "-l", str(self.root / "server.log"), "-w", "-t", "60", "start"]),
                       check=True, capture_output=True)

    def stop(self) -> None:
        subprocess.run(_as_owner([str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate",
                                  "-w", "stop"]), capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


def available() -> bool:
    return (PG_BIN / "initdb").exists() and (PG_BIN / "pg_ctl").exists()


@pytest.fixture(scope="session")
def postgresql_server():
    if not available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI: {PG_BIN}/initdb not found "
                        "(scripts/setup installs the postgresql package)")
        pytest.skip(f"PostgreSQL binaries not found in {PG_BIN}")
    root = Path(tempfile.mkdtemp(prefix="forms-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, RUN_AS, RUN_AS)  # mkdtemp's folder is 0700: the owner must be postgres
    server = PostgresServer(root=root / "cluster", port=_free_port(), user="forms")
    try:
        server.start()
    except subprocess.CalledProcessError as exc:
        log = server.root / "server.log"
        detail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"PostgreSQL did not start: {exc.stderr!r} {detail}")
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)

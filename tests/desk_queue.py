"""Real queue consumers and a real Redis for the desk tests.

``redis_url`` (session): Debian's ``redis-server`` on a free loopback port in a temporary
folder, without persistence, stopped at the end. ``start_worker(settings_env)``: a
``forms-service worker`` process (the real command) with that environment.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is required in CI (scripts/setup installs it)")
        pytest.skip("redis-server is not installed")
    folder = tmp_path_factory.mktemp("redis")
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
                             "--save", "", "--appendonly", "no", "--protected-mode", "yes"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    import redis
    client = redis.Redis(host="127.0.0.1", port=port)
    for _ in range(100):
        try:
            if client.ping():
                break
        except redis.ConnectionError:
            time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("redis-server did not start")
    client.close()
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(10)


def worker_env(settings, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FORMS_SERVICE_", "DATABASE_URL", "QUEUE_URL"))}
    env.update({"FORMS_SERVICE_VAR_DIR": str(settings.var_dir), "DATABASE_URL": settings.database_url,
                "FORMS_SERVICE_STORAGE_DIR": str(settings.storage_dir), "OMP_THREAD_LIMIT": "1",
                "FORMS_SERVICE_MIGRATE_ON_STARTUP": "false",
                "PYTHONPATH": str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")})
    if settings.queue_url:
        env["QUEUE_URL"] = settings.queue_url
    env.update(extra)
    return env


def start_worker(settings, *, threads: int = 2, log: Path | None = None, **extra) -> subprocess.Popen:
    out = open(log, "ab") if log else subprocess.DEVNULL
    return subprocess.Popen([sys.executable, "-m", "forms_service.cli", "worker", "--threads", str(threads)],
                            env=worker_env(settings, **extra), cwd=str(ROOT), stdout=out, stderr=out)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def kill_9(proc: subprocess.Popen) -> None:
    """``kill -9`` of a worker, then of the processes it leaves behind (its sandbox's
    forkserver and readers, which outlive it: the test must not leave them running)."""
    import signal

    import psutil
    try:
        left = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        left = []
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    for child in left:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(left, timeout=10)


WAIT = 240


def submit(client, hdrs, files, **form):
    """``POST /api/v1/batches`` with ``files`` ([(name, bytes)]) and form fields."""
    import io
    data = {"files": [(io.BytesIO(b), name) for name, b in files], **form}
    return client.post("/api/v1/batches", data=data, headers=hdrs, content_type="multipart/form-data")


def wait_done(client, hdrs, batch_id, timeout=WAIT, workers=()):
    """The batch's view once ``done`` (fails when a worker died or the time ran out)."""
    deadline = time.monotonic() + timeout
    view = None
    while time.monotonic() < deadline:
        view = client.get(f"/api/v1/batches/{batch_id}", headers=hdrs).get_json()
        if view["status"] == "done":
            return view
        for w in workers:
            assert w.poll() is None, "a worker died"
        time.sleep(0.3)
    raise AssertionError(f"batch not done: {view and view['progress']}")

"""A real ``forms-service serve`` in a subprocess, on a free loopback port, with its
own var directory: for the tests that kill it, fuzz it or read it over HTTP.

    with Served(tmp_path / "var") as server:
        status, headers, body = server.request("GET", "/api/v1/forms")
        server.kill()          # kill -9 of the server and every process it started
        server.start()         # again, on the same var directory
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    def __init__(self, var_dir: Path, *, env: dict | None = None, threads: int = 4):
        self.var_dir = Path(var_dir)
        self.extra_env = dict(env or {})
        self.threads = threads
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.log_path = self.var_dir.parent / "serve.log"

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout: float = 60) -> "Served":
        self.var_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        env = {**os.environ, "FORMS_SERVICE_VAR_DIR": str(self.var_dir),
               "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               "OMP_THREAD_LIMIT": "1", **self.extra_env}
        env.pop("DATABASE_URL", None)
        env.pop("FORMS_SERVICE_API_KEYS", None)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "forms_service.cli", "serve", "--port", str(self.port),
             "--threads", str(self.threads)],
            cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited {self.proc.returncode}: {self.log_tail()}")
            try:
                if self.request("GET", "/api/v1/forms", timeout=5)[0] == 200:
                    return self
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"serve did not answer in {timeout} s: {self.log_tail()}")

    def descendants(self) -> list[psutil.Process]:
        """The server and every process it started, or that runs on its var directory
        (LibreOffice may detach from the server's process group)."""
        found: dict[int, psutil.Process] = {}
        if self.proc is not None:
            try:
                root = psutil.Process(self.proc.pid)
                found[root.pid] = root
                found.update({p.pid: p for p in root.children(recursive=True)})
            except psutil.NoSuchProcess:
                pass
        marker = str(self.var_dir)
        for p in psutil.process_iter(["cmdline"]):
            try:
                if any(marker in part for part in (p.info["cmdline"] or [])):
                    found[p.pid] = p
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return list(found.values())

    def kill(self) -> None:
        """``kill -9`` of the server's process group and of what it started."""
        procs = self.descendants()
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for p in procs:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(procs, timeout=10)
        if self.proc is not None:
            self.proc.wait(timeout=10)
            self.proc = None

    def stop(self) -> None:
        """SIGTERM, then whatever is left is killed (a test must not leave processes)."""
        if self.proc is None:
            return
        procs = self.descendants()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        for p in procs:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(procs, timeout=10)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def __enter__(self) -> "Served":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ HTTP
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(self, method: str, path: str, body=None, headers: dict | None = None,
                timeout: float = 300) -> tuple[int, dict, bytes]:
        headers = dict(headers or {})
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers)
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

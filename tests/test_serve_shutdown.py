"""``forms-service serve`` stopped with SIGTERM leaves no process behind (issue 9, item 6).

The service runs as a real subprocess on a free loopback port with its own var dir; one
PDF is rendered through HTTP (so the LibreOffice pool runs) and the PDF is parsed back
(so the parse sandbox's forkserver and workers run). Every descendant is collected
before the signal; within a few seconds of the service's exit, none may be alive.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import psutil
import pytest

from forms_service.render.pdf import libreoffice_available

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not libreoffice_available(),
                                reason="LibreOffice is not installed (no soffice)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(base: str, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the service exited ({proc.returncode}): {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{base}/api/v1/forms", timeout=5) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.3)
    pytest.fail("the service did not answer within a minute")


def post(url: str, body: bytes, content_type: str, timeout: float = 240) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def multipart(field: str, filename: str, content: bytes, mimetype: str) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; "
            f"filename=\"{filename}\"\r\nContent-Type: {mimetype}\r\n\r\n").encode()
    body += content + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def test_sigterm_leaves_no_child_process(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FORMS_SERVICE_VAR_DIR": str(tmp_path / "var"),
           "SOFFICE_POOL_SIZE": "1", "FORMS_SERVICE_LOG_LEVEL": "INFO"}
    env.pop("DATABASE_URL", None)
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "forms_service.cli", "serve", "--host",
                                 "127.0.0.1", "--port", str(port), "--threads", "4"],
                                cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    descendants: list[psutil.Process] = []
    try:
        wait_until_up(base, proc, log)
        data = json.loads((ROOT / "samples" / "fiche-liaison.json").read_text(encoding="utf-8"))
        status, pdf = post(f"{base}/api/v1/forms/fiche-liaison/render?format=pdf",
                           json.dumps(data).encode(), "application/json")
        assert status == 200 and pdf.startswith(b"%PDF"), pdf[:300]
        body, content_type = multipart("files", "fiche.pdf", pdf, "application/pdf")
        status, records = post(f"{base}/api/v1/parse", body, content_type)
        assert status == 200, records[:300]

        descendants = psutil.Process(proc.pid).children(recursive=True)
        commands = [" ".join(p.cmdline()) for p in descendants if p.is_running()]
        assert any("soffice" in c or "unoserver" in c for c in commands), commands
        assert any("multiprocessing" in c for c in commands), commands  # forkserver, workers

        proc.send_signal(signal.SIGTERM)
        returncode = proc.wait(timeout=60)
        gone, alive = psutil.wait_procs(descendants, timeout=10)
        assert not alive, [(p.pid, " ".join(p.cmdline())) for p in alive]
        assert returncode == 0, log.read_text()[-2000:]
        assert "Arrêt du service." in log.read_text(encoding="utf-8")
    finally:
        if proc.poll() is None:   # the test failed early: collect its processes now
            try:
                descendants += psutil.Process(proc.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                pass
            proc.kill()
            proc.wait()
        for p in descendants:   # only the processes this test started
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass

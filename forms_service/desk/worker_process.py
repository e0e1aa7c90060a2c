"""The queue consumer ``forms-service serve`` starts beside the web server (a child
process running ``forms-service worker`` with the same environment), stopped with it."""

from __future__ import annotations

import signal
import subprocess
import sys


class WorkerProcess:
    def __init__(self, proc: subprocess.Popen):
        self.proc = proc

    @classmethod
    def start(cls, *, env: dict | None = None) -> "WorkerProcess":
        return cls(subprocess.Popen([sys.executable, "-m", "forms_service.cli", "worker"], env=env))

    def stop(self, timeout: float = 20.0) -> None:
        """Graceful (SIGINT: jobs under way finish), then killed after ``timeout``."""
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

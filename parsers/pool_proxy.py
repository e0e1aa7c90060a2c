"""The caller's LibreOffice pool, lent to the sandbox's worker processes.

A worker that must compute a layout map (a template version whose map is not stored
yet) needs DOCX → PDF conversions. The LibreOffice servers belong to the process that
owns the pool (the app, or the CLI command), so that they stop with it: the sandbox
serves conversions on a private Unix socket (:class:`PoolServer`, authenticated by a
random key), and each worker holds a :class:`RemotePool`, which has the one method of
the pool the readers use, ``convert``.
"""

from __future__ import annotations

import secrets
import threading
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Listener

from forms_service.errors import ComponentMissing, FormsError
from forms_service.logging_setup import get_logger

from .failures import log_failure

log = get_logger(__name__)

MSG_FAILED = "Conversion PDF impossible pendant la lecture (mise en page du formulaire)"


class PoolServer:
    """Answers ``convert`` requests from the workers with ``pool``, on a thread per request."""

    def __init__(self, pool):
        self.pool = pool
        self.authkey = secrets.token_bytes(32)
        self._listener = Listener(family="AF_UNIX", authkey=self.authkey)
        self.address = self._listener.address
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name="parse-pool-server", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._closed:
            try:
                conn = self._listener.accept()
            except (OSError, EOFError, AuthenticationError):
                continue
            if self._closed:
                conn.close()
                return
            threading.Thread(target=self._answer, args=(conn,), name="parse-pool-convert", daemon=True).start()

    def _answer(self, conn) -> None:
        with conn:
            try:
                docx, timeout = conn.recv()
            except (EOFError, OSError):
                return
            try:
                answer = ("ok", self.pool.convert(docx, timeout))
            except FormsError as exc:
                answer = ("error", type(exc).__name__ == "ComponentMissing", exc.message)
            except Exception as exc:
                log_failure("parse_pool_convert_failed", exc)
                answer = ("error", False, MSG_FAILED)
            try:
                conn.send(answer)
            except OSError:
                pass

    def close(self) -> None:
        """Stop serving (idempotent); the pool itself stays the caller's to close."""
        if self._closed:
            return
        self._closed = True
        try:   # wake the accept() up
            Client(self.address, authkey=self.authkey).close()
        except OSError:
            pass
        self._thread.join(timeout=5)
        self._listener.close()


class RemotePool:
    """A worker's handle on the parent's pool: ``convert(docx) -> pdf``."""

    def __init__(self, address: str, authkey: bytes):
        self.address = address
        self.authkey = authkey

    def convert(self, docx: bytes, timeout: float | None = 60.0) -> bytes:
        try:
            with Client(self.address, authkey=self.authkey) as conn:
                conn.send((docx, timeout))
                answer = conn.recv()
        except (OSError, EOFError) as exc:
            log.warning("parse_pool_unreachable", error=type(exc).__name__)
            raise ComponentMissing("Service de conversion PDF indisponible pendant la lecture") from None
        if answer[0] == "ok":
            return answer[1]
        _, missing, message = answer
        if missing:
            raise ComponentMissing(message)
        raise FormsError(message, rule="conversion_pdf_impossible")

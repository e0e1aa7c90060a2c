"""One instance of the converter pool: an unoserver server and its LibreOffice.

The instance lives in its slot directory (claimed by the pool with ``flock``): profile,
temporary files, pid file and the server's log. It is started in its own session (a
process group of its own, so unoserver and LibreOffice are always stopped together),
is ready when a real test conversion returns a PDF, and converts one document at a
time. The pool (:mod:`forms_service.render.pool`) decides when to start, restart and
recycle it.
"""

from __future__ import annotations

import http.client
import logging
import os
import shutil
import socket
import subprocess
import threading
import time
import xmlrpc.client
from pathlib import Path
from .conversion import test_docx
from .processes import alive, cmdline_of, kill_group, members, name_of
from .soffice import clean_env

log = logging.getLogger(__name__)
# The unoserver client logs three INFO lines per conversion: quiet unless configured.
if logging.getLogger("unoserver").level == logging.NOTSET:
    logging.getLogger("unoserver").setLevel(logging.WARNING)

STOP_GRACE = 10.0               # seconds between SIGTERM and SIGKILL on close/recycle


def unoserver_client_class():
    from unoserver.client import UnoClient

    class Client(UnoClient):
        """UnoClient without its 5 × 10 s connection retries, and with the server's
        info() (API check + filter lists, a large XML-RPC answer) fetched once."""

        _info = None

        def _connect(self, proxy, retries=1, sleep=0):
            if self._info is None:
                self._info = super()._connect(proxy, retries=1, sleep=0)
            return self._info

    return Client


class InstanceFailure(Exception):
    """The instance is dead, hung or unreachable (not the document's fault)."""

    def __init__(self, message: str, *, timed_out: bool = False):
        super().__init__(message)
        self.timed_out = timed_out


class StartFailed(Exception):
    pass


class Aborted(Exception):
    pass


# Faults that mean the instance is broken, not the document (LibreOffice gone, server not ready).
FAULT_OF_INSTANCE = ("DisposedException", "bridge disposed", "is not supported")


class Instance:
    """One unoserver + LibreOffice, in slot directory ``dir`` (claimed with flock) by
    ``pool``, the :class:`~forms_service.render.pool.ConverterPool` that owns it."""

    def __init__(self, pool, index: int, slot_dir: Path, lock_fd: int):
        self.pool = pool
        self.index = index
        self.dir = slot_dir
        self.lock_fd = lock_fd
        self.proc: subprocess.Popen | None = None
        self.client = None
        self.port = self.uno_port = 0
        self.state = "stopped"          # stopped | starting | idle | busy | broken
        self.conversions = 0            # since the last start
        self.total = 0
        self.generation = 0             # number of starts
        self.limit: int | None = None
        self.broken_at = 0.0
        self.last_error = ""
        self.seen_pids: set[int] = set()  # every pid of this instance seen running
        self._plock = threading.Lock()  # process spawn/kill

    # -- files
    @property
    def pid_file(self) -> Path:
        return self.dir / "unoserver.pid"

    @property
    def log_file(self) -> Path:
        return self.dir / "unoserver.log"

    def log_tail(self, size: int = 1500) -> str:
        try:
            data = self.log_file.read_bytes()
        except OSError:
            return ""
        return data[-size:].decode(errors="replace")

    def lo_pids(self) -> list[int]:
        """LibreOffice processes (soffice.bin, oosplash) of this instance, remembered in
        :attr:`seen_pids` so that :meth:`stop` kills them even if they left the group."""
        if self.proc is None:
            return []
        pids = [pid for pid in members(self.proc.pid)
                if name_of(pid).startswith(("soffice", "oosplash"))]
        self.seen_pids.update(pids)
        return pids

    def alive(self) -> bool:
        return (self.proc is not None and self.proc.poll() is None
                and any(name_of(pid).startswith("soffice") for pid in members(self.proc.pid)))

    def process_ids(self) -> list[int]:
        """Every live process this instance started (server, LibreOffice), for shutdown checks."""
        if self.proc is not None:
            self.lo_pids()
            self.seen_pids.add(self.proc.pid)
        return alive(self.seen_pids)

    # -- life cycle
    def kill_stale(self) -> None:
        """Kill what a dead previous owner of this slot left running (we hold the flock)."""
        try:
            pgid = int(self.pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        marks = (str(self.dir), self.dir.as_uri())
        found = members(pgid)
        if found and any(m in cmdline_of(pid) for pid in found for m in marks):
            log.warning("slot %s: killing orphaned unoserver/LibreOffice group %d", self.dir, pgid)
            kill_group(pgid)
        self.pid_file.unlink(missing_ok=True)

    def start(self, deadline: float) -> None:
        pool = self.pool
        profile = self.dir / "profile"
        tmp = self.dir / "tmp"
        self.kill_stale()
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True, exist_ok=True)
        self.port, self.uno_port = ports_for(pool.base_port, self.index)
        cmd = [pool._server_python, "-m", "unoserver.server",
               "--interface", "127.0.0.1", "--port", str(self.port),
               "--uno-interface", "127.0.0.1", "--uno-port", str(self.uno_port),
               "--executable", pool._soffice,
               "--user-installation", str(profile),
               "--libreoffice-pid-file", str(self.dir / "soffice.pid"),
               "--temp-dir", str(tmp)]
        if self.log_file.exists():
            os.replace(self.log_file, self.log_file.with_suffix(".log.1"))
        with self._plock:
            if pool.closed:
                raise Aborted()
            with open(self.log_file, "wb") as logf:
                self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf,
                                             stderr=subprocess.STDOUT, start_new_session=True,
                                             cwd=self.dir, env=clean_env())
            self.pid_file.write_text(f"{self.proc.pid}\n")
            self.seen_pids = {self.proc.pid}
        self.client = pool._client_class("127.0.0.1", str(self.port), host_location="remote")
        self.generation += 1
        self.conversions = 0
        log.info("LibreOffice instance %d: starting (generation %d)", self.index, self.generation)
        self._wait_ready(deadline)

    def _wait_ready(self, deadline: float) -> None:
        started = time.monotonic()
        docx = test_docx()
        while True:
            if self.pool.closed:
                raise Aborted()
            if self.proc.poll() is not None:
                raise StartFailed(f"unoserver exited with status {self.proc.returncode}: "
                                   f"{self.log_tail()}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise StartFailed(f"not ready after {time.monotonic() - started:.0f} s: "
                                   f"{self.log_tail()}")
            try:
                pdf = self.call(docx, timeout=min(remaining, 30.0))
            except (InstanceFailure, xmlrpc.client.Fault):
                time.sleep(0.2)
                continue
            if pdf and pdf.startswith(b"%PDF-"):
                self.lo_pids()
                log.info("LibreOffice instance %d ready in %.1f s", self.index,
                         time.monotonic() - started)
                return
            raise StartFailed("the test conversion did not give a PDF")

    def call(self, docx: bytes, timeout: float | None) -> bytes:
        """One conversion through the unoserver client, bounded by ``timeout``.

        Raises :class:`InstanceFailure` (timeout, connection lost) or
        ``xmlrpc.client.Fault`` (an exception inside the server).
        """
        box: dict = {}
        client = self.client

        def run():
            try:
                box["pdf"] = client.convert(indata=bytes(docx), convert_to="pdf")
            except BaseException as exc:  # handed to the caller's thread
                box["exc"] = exc

        worker = threading.Thread(target=run, name=f"pdf-instance-{self.index}", daemon=True)
        worker.start()
        worker.join(timeout)
        if worker.is_alive():
            raise InstanceFailure(f"no answer within {timeout:g} s", timed_out=True)
        exc = box.get("exc")
        if exc is None:
            return box.get("pdf")
        if isinstance(exc, xmlrpc.client.Fault):
            raise exc
        if isinstance(exc, (OSError, http.client.HTTPException, xmlrpc.client.ProtocolError,
                            RuntimeError, ValueError)):
            raise InstanceFailure(f"{type(exc).__name__}: {exc}")
        raise exc

    def stop(self, graceful: bool = False, lock_timeout: float = -1) -> None:
        """Stop the server and LibreOffice (SIGTERM first when ``graceful``).

        ``lock_timeout`` (seconds; -1 waits): when another thread is spawning or
        killing and does not let go in time, everything is killed without the lock.
        """
        if not self._plock.acquire(timeout=lock_timeout):
            self.kill_now()
            return
        try:
            proc, self.proc = self.proc, None
            if proc is not None:
                kill_group(proc.pid, grace=STOP_GRACE if graceful else 0.0, proc=proc,
                           known=tuple(self.seen_pids))
            self.pid_file.unlink(missing_ok=True)
            (self.dir / "soffice.pid").unlink(missing_ok=True)
            self.client = None
        finally:
            self._plock.release()

    def kill_now(self) -> None:
        """SIGKILL everything of this instance at once, without taking a lock (a signal
        handler interrupting a :meth:`stop` under way in the same thread)."""
        proc = self.proc
        if proc is not None:
            kill_group(proc.pid, proc=proc, known=tuple(self.seen_pids))

    def info(self) -> dict:
        """Pids, ports and paths: for tests and operators, never shown by the health check."""
        return {"index": self.index, "state": self.state, "dir": str(self.dir),
                "port": self.port, "uno_port": self.uno_port,
                "pid": self.proc.pid if self.proc is not None else None,
                "libreoffice_pids": self.lo_pids(), "conversions": self.conversions,
                "total_conversions": self.total, "starts": self.generation,
                "recycle_at": self.limit, "last_error": self.last_error}


# --------------------------------------------------------------------------- ports

def ports_for(base_port: int | None, index: int) -> tuple[int, int]:
    """The (XML-RPC, UNO) ports of instance ``index``: ``base_port + 2·index`` and the next
    one when a base is set (refused when taken), else two free ports."""
    if base_port:
        ports = (base_port + 2 * index, base_port + 2 * index + 1)
        busy = [p for p in ports if not _port_is_free(p)]
        if busy:
            raise StartFailed(f"port(s) {busy} already in use")
        return ports
    port = _free_port()
    uno_port = _free_port()
    while uno_port == port:
        uno_port = _free_port()
    return port, uno_port


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True

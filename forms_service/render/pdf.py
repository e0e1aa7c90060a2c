"""DOCX → PDF through LibreOffice: a pool of warm instances, and a cold fallback.

A new ``soffice --convert-to pdf`` process costs ~0.8 s per document; a LibreOffice
that is already running converts the same document in ~0.12 s. :class:`ConverterPool`
keeps N LibreOffice instances running, each behind an unoserver (XML-RPC) server:

* one instance = one unoserver process + its LibreOffice child, in their own process
  group (so they are always killed together), with its own ports, its own profile
  directory and pid files under ``work_dir/<slot>/``;
* slots are claimed with an exclusive ``flock``, so several processes (gunicorn
  workers, test workers) sharing one ``work_dir`` never share a profile, and a slot
  whose owner died is cleaned (its orphaned LibreOffice killed) when it is claimed again;
* an instance is ready when a real test conversion returns a PDF, not after a sleep;
* one conversion at a time per instance, conversions in parallel across instances;
* a conversion that times out or meets a dead instance: the instance is killed and
  restarted in the background, and the conversion is retried once on the next free
  instance, then a clear :class:`ConversionTimeout` / :class:`ConversionFailed` is raised;
* an instance is recycled (restarted) after ``recycle_after`` conversions (LibreOffice
  grows ~30 MiB per 100 conversions); the first limits are staggered so that instances
  are not all restarted at once.

The unoserver *server* must run under a Python that has LibreOffice's ``uno`` module:
on Debian, ``/usr/bin/python3`` with ``python3-uno``, not the project's venv.
:func:`prepare_server_env` makes ``.venv-uno/`` (a venv of ``/usr/bin/python3`` with
``--system-site-packages``) and copies into it the unoserver distribution installed in
the project's venv (pure Python, no dependencies): same version as the client, no
network. ``python -m forms_service.render.pdf --prepare`` does it from a setup script.

See ``docs/pdf-conversion.md`` for figures and operations.
"""

from __future__ import annotations

import argparse
import atexit
import fcntl
import http.client
import io
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
import xmlrpc.client
from collections import deque
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

from forms_service.errors import BadDocument, ComponentMissing, FormsError

log = logging.getLogger(__name__)
# The unoserver client logs three INFO lines per conversion: quiet unless configured.
if logging.getLogger("unoserver").level == logging.NOTSET:
    logging.getLogger("unoserver").setLevel(logging.WARNING)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_UNO_VENV = PROJECT_ROOT / ".venv-uno"
SYSTEM_PYTHON = "/usr/bin/python3"
SOFFICE_CANDIDATES = ("soffice", "libreoffice", "/usr/lib/libreoffice/program/soffice",
                      "/opt/libreoffice/program/soffice")

MSG_MISSING = ("LibreOffice n'est pas installé : la production de PDF est indisponible "
               "(le DOCX reste disponible).")
MSG_NO_UNO = ("Le module Python « uno » de LibreOffice (paquet python3-uno) est introuvable : "
              "la production de PDF est indisponible (le DOCX reste disponible).")
MSG_NO_START = ("LibreOffice ne démarre pas : la production de PDF est indisponible "
                "(le DOCX reste disponible).")
MSG_CLOSED = "Le service de conversion PDF est arrêté."

DEFAULT_TIMEOUT = 60.0          # seconds for one conversion attempt
DEFAULT_START_TIMEOUT = 90.0    # seconds for one instance to become ready (unoserver 3.7: ~10 s)
DEFAULT_QUEUE_TIMEOUT = 120.0   # seconds a conversion may wait for a free instance
DEFAULT_RECYCLE_AFTER = 300     # conversions per LibreOffice process
STOP_GRACE = 10.0               # seconds between SIGTERM and SIGKILL on close/recycle


class ConversionFailed(FormsError):
    """LibreOffice did not produce a PDF from a DOCX it was given."""

    http_status = 500
    exit_code = 3
    rule = "conversion_pdf_impossible"


class ConversionTimeout(ConversionFailed):
    """A conversion did not finish in time (after one retry on a fresh instance)."""

    http_status = 504
    rule = "conversion_pdf_delai_depasse"


# --------------------------------------------------------------------------- discovery

def find_soffice(soffice: str | os.PathLike | None = None) -> str | None:
    """Path of the ``soffice`` executable, or None.

    ``soffice`` (or the ``FORMS_SOFFICE`` environment variable) names it explicitly;
    then it is the only candidate, so a wrong setting is reported, not papered over.
    """
    explicit = soffice if soffice is not None else os.environ.get("FORMS_SOFFICE")
    candidates = (os.fspath(explicit),) if explicit else SOFFICE_CANDIDATES
    for cand in candidates:
        found = shutil.which(cand)
        if found:
            return found
    return None


def libreoffice_available(soffice: str | os.PathLike | None = None) -> bool:
    """True when a LibreOffice ``soffice`` executable is there (cold conversions work).

    The warm pool also needs the ``uno`` Python module (see :func:`prepare_server_env`);
    without it, a pool created with ``cold_fallback=True`` converts with ``soffice``.
    """
    return find_soffice(soffice) is not None


def _clean_env() -> dict[str, str]:
    """Environment for LibreOffice and Debian's Python: without the project venv's settings."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONHOME", "PYTHONPATH", "VIRTUAL_ENV", "PYTHONSTARTUP")}
    return env


_CHECK_SERVER = ("import uno, unoserver.server\n"
                 "from importlib.metadata import version\n"
                 "print(version('unoserver'))")


def _server_env_version(python: str | os.PathLike) -> str | None:
    """unoserver version importable by ``python`` next to ``uno``, or None."""
    try:
        out = subprocess.run([os.fspath(python), "-c", _CHECK_SERVER], capture_output=True,
                             text=True, timeout=60, env=_clean_env())
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _has_uno(python: str | os.PathLike) -> bool:
    try:
        return subprocess.run([os.fspath(python), "-c", "import uno"], capture_output=True,
                              timeout=60, env=_clean_env()).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def prepare_server_env(venv_dir: str | os.PathLike = DEFAULT_UNO_VENV,
                       system_python: str = SYSTEM_PYTHON) -> Path:
    """Make (if needed) the venv the unoserver servers run in; return its python.

    The venv is made from ``system_python`` (Debian's, which sees ``python3-uno``) with
    ``--system-site-packages --without-pip`` (so the ``python3-venv`` package is not
    needed), and gets a copy of the unoserver distribution installed next to this
    module: the client and server versions always match, and no network is used.
    Idempotent; safe when several processes prepare at once (built aside, renamed).
    """
    venv_dir = Path(venv_dir).absolute()
    python = venv_dir / "bin" / "python"
    wanted = metadata.version("unoserver")
    if python.exists() and _server_env_version(python) == wanted:
        return python
    if not Path(system_python).exists() or not _has_uno(system_python):
        raise ComponentMissing(MSG_NO_UNO)
    venv_dir.parent.mkdir(parents=True, exist_ok=True)
    lock = os.open(venv_dir.parent, os.O_RDONLY)  # flock on the parent directory:
    try:                                          # one process prepares, the others wait
        fcntl.flock(lock, fcntl.LOCK_EX)
        if python.exists() and _server_env_version(python) == wanted:
            return python  # made by another process meanwhile
        _build_server_env(venv_dir, system_python)
    finally:
        os.close(lock)
    if _server_env_version(python) != wanted:
        raise ComponentMissing(MSG_NO_UNO)
    log.info("unoserver %s server environment ready in %s", wanted, venv_dir)
    return python


def _build_server_env(venv_dir: Path, system_python: str) -> None:
    build = Path(tempfile.mkdtemp(prefix=venv_dir.name + ".build-", dir=venv_dir.parent))
    try:
        subprocess.run([system_python, "-m", "venv", "--system-site-packages", "--without-pip",
                        str(build)], check=True, capture_output=True, env=_clean_env())
        for script in (build / "bin").iterdir():
            if script.name.lower().startswith("activate"):
                script.unlink()  # they would name the build directory; bin/python is all we use
        purelib = subprocess.run(
            [str(build / "bin" / "python"), "-c",
             "import sysconfig; print(sysconfig.get_path('purelib'))"],
            check=True, capture_output=True, text=True, env=_clean_env()).stdout.strip()
        _copy_distribution("unoserver", Path(purelib))
        if venv_dir.exists():
            shutil.rmtree(venv_dir)  # stale: another unoserver version, or broken
        os.rename(build, venv_dir)
    except (subprocess.CalledProcessError, OSError) as exc:
        detail = getattr(exc, "stderr", None) or exc
        if isinstance(detail, bytes):
            detail = detail.decode(errors="replace")
        log.error("cannot make %s: %s", venv_dir, detail)
        raise ComponentMissing(MSG_NO_START) from exc
    finally:
        if build.exists():
            shutil.rmtree(build, ignore_errors=True)


def _copy_distribution(name: str, purelib: Path) -> None:
    dist = metadata.distribution(name)
    for rel in dist.files or ():
        parts = Path(rel).parts
        if ".." in parts or "__pycache__" in parts:
            continue  # console scripts (bin/) and bytecode are not needed
        dest = purelib / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(dist.locate_file(rel), dest)


def resolve_server_python(uno_python: str | os.PathLike | None = None) -> str:
    """The python that runs unoserver servers: explicit, ``FORMS_UNO_PYTHON``, or ``.venv-uno``
    (made on demand). Raises :class:`ComponentMissing` when ``uno`` is not there."""
    explicit = uno_python or os.environ.get("FORMS_UNO_PYTHON")
    wanted = metadata.version("unoserver")
    if explicit:
        version = _server_env_version(explicit)
        if version is None:
            log.error("%s cannot import uno and unoserver", explicit)
            raise ComponentMissing(MSG_NO_UNO)
        if version != wanted:
            log.warning("unoserver %s on the server side, %s on the client side", version, wanted)
        return os.fspath(explicit)
    return os.fspath(prepare_server_env())


# --------------------------------------------------------------------------- processes

def _proc_table() -> list[tuple[int, int, str]] | None:
    """(pid, pgid, state) of every process, from /proc; None where there is no /proc."""
    try:
        names = os.listdir("/proc")
    except OSError:
        return None
    table = []
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read().decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        table.append((int(name), int(fields[2]), fields[0]))
    return table


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group ``pgid``."""
    table = _proc_table()
    if table is None:
        try:
            os.killpg(pgid, 0)
            return [pgid]
        except OSError:
            return []
    return [pid for pid, grp, state in table if grp == pgid and state not in ("Z", "X")]


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def kill_group(pgid: int, *, grace: float = 0.0, proc: subprocess.Popen | None = None) -> bool:
    """Stop process group ``pgid`` (an unoserver or a ``soffice``, and LibreOffice under it).

    In an order that lets each parent reap its child (no zombies left to an init that
    may not reap them): with ``grace``, SIGTERM to the group leader only (unoserver
    forwards it to LibreOffice and exits; a SIGTERM to the whole group can leave
    ``oosplash`` hanging), then SIGKILL to ``soffice.bin`` (``oosplash`` and unoserver
    then exit by themselves), and last SIGKILL to the whole group. Reaps ``proc`` (our
    direct child). Returns True when no live member is left.
    """
    def gone_within(seconds: float) -> bool:
        end = time.monotonic() + seconds
        while True:
            if proc is not None:
                proc.poll()  # reap our child, or it stays a zombie member
            if not group_members(pgid):
                return True
            if time.monotonic() >= end:
                return False
            time.sleep(0.05)

    def signal_pids(pids, sig) -> None:
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    if not group_members(pgid):
        gone_within(0)
        return True
    if grace > 0:
        signal_pids([pgid], signal.SIGTERM)
        if gone_within(grace):
            return True
    lo = [pid for pid in group_members(pgid) if _comm(pid) == "soffice.bin"]
    if lo:
        signal_pids(lo, signal.SIGKILL)
        if gone_within(3.0):
            return True
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    ok = gone_within(5.0)
    if proc is not None:
        try:
            proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            pass
    return ok


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


# --------------------------------------------------------------------------- documents

_TEST_DOCX: bytes | None = None
TEST_TEXT = "Test d'impression du service des formulaires RSA"


def test_docx() -> bytes:
    """A tiny A4 DOCX (one paragraph), made with python-docx, for readiness and health."""
    global _TEST_DOCX
    if _TEST_DOCX is None:
        import docx
        from docx.shared import Mm

        document = docx.Document()
        section = document.sections[0]
        section.page_width, section.page_height = Mm(210), Mm(297)
        document.add_paragraph(TEST_TEXT)
        buf = io.BytesIO()
        document.save(buf)
        _TEST_DOCX = buf.getvalue()
    return _TEST_DOCX


def _check_docx(docx: bytes) -> None:
    if not isinstance(docx, (bytes, bytearray, memoryview)) or bytes(docx[:2]) != b"PK":
        # LibreOffice would import anything else as plain text and print it.
        raise BadDocument("Le document à convertir en PDF n'est pas un fichier DOCX.")


def _check_pdf(pdf: bytes | None) -> bytes:
    if not pdf or not pdf.startswith(b"%PDF-"):
        raise ConversionFailed("LibreOffice n'a pas produit de PDF pour ce document.")
    return pdf


def pdf_page_count(pdf: bytes) -> int:
    """Pages of a PDF read with pypdf (raises on an unreadable PDF)."""
    from pypdf import PdfReader

    return len(PdfReader(io.BytesIO(pdf)).pages)


def cold_convert(docx: bytes, timeout: float | None = 120.0, *,
                 soffice: str | os.PathLike | None = None) -> bytes:
    """Convert with a new ``soffice --headless --convert-to pdf`` in a fresh temporary profile.

    ~0.8 s per document: the benchmark baseline, and the fallback when the pool's
    server side (``uno``) is missing. The process group is killed on timeout.
    """
    _check_docx(docx)
    exe = find_soffice(soffice)
    if exe is None:
        raise ComponentMissing(MSG_MISSING)
    with tempfile.TemporaryDirectory(prefix="forms-soffice-") as tmp:
        tmp_path = Path(tmp)
        src = tmp_path / "document.docx"
        src.write_bytes(bytes(docx))
        out_dir = tmp_path / "out"
        cmd = [exe, "--headless", "--invisible", "--nologo", "--nodefault", "--norestore",
               "--nolockcheck", "--nofirststartwizard",
               f"-env:UserInstallation={(tmp_path / 'profile').as_uri()}",
               "--convert-to", "pdf:writer_pdf_Export", "--outdir", str(out_dir), str(src)]
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, start_new_session=True,
                                    cwd=tmp, env=_clean_env())
        except OSError as exc:
            raise ComponentMissing(MSG_MISSING) from exc
        try:
            output, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc.pid, proc=proc)
            proc.communicate()
            raise ConversionTimeout(
                f"La conversion en PDF a dépassé le délai de {timeout:g} s.") from None
        finally:
            if group_members(proc.pid):
                kill_group(proc.pid, proc=proc)
        pdf_path = out_dir / "document.pdf"
        if not pdf_path.exists():
            log.error("soffice exited %s without a PDF: %s", proc.returncode,
                      output.decode(errors="replace")[-2000:])
            raise ConversionFailed("LibreOffice n'a pas produit de PDF pour ce document.")
        return _check_pdf(pdf_path.read_bytes())


# --------------------------------------------------------------------------- the pool

def _unoserver_client_class():
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


class _InstanceFailure(Exception):
    """The instance is dead, hung or unreachable (not the document's fault)."""

    def __init__(self, message: str, *, timed_out: bool = False):
        super().__init__(message)
        self.timed_out = timed_out


class _StartFailed(Exception):
    pass


class _Aborted(Exception):
    pass


# Faults that mean the instance is broken, not the document (LibreOffice gone, server not ready).
_FAULT_OF_INSTANCE = ("DisposedException", "bridge disposed", "is not supported")


class _Instance:
    """One unoserver + LibreOffice, in slot directory ``dir`` (claimed with flock)."""

    def __init__(self, pool: ConverterPool, index: int, slot_dir: Path, lock_fd: int):
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
        """LibreOffice processes (soffice.bin, oosplash) of this instance."""
        if self.proc is None:
            return []
        return [pid for pid in group_members(self.proc.pid)
                if _comm(pid).startswith(("soffice", "oosplash"))]

    def alive(self) -> bool:
        return (self.proc is not None and self.proc.poll() is None
                and any(_comm(pid).startswith("soffice") for pid in group_members(self.proc.pid)))

    # -- life cycle
    def kill_stale(self) -> None:
        """Kill what a dead previous owner of this slot left running (we hold the flock)."""
        try:
            pgid = int(self.pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        marks = (str(self.dir), self.dir.as_uri())
        members = group_members(pgid)
        if members and any(m in _cmdline(pid) for pid in members for m in marks):
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
        self.port, self.uno_port = pool._ports_for(self.index)
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
                raise _Aborted()
            with open(self.log_file, "wb") as logf:
                self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf,
                                             stderr=subprocess.STDOUT, start_new_session=True,
                                             cwd=self.dir, env=_clean_env())
            self.pid_file.write_text(f"{self.proc.pid}\n")
        self.client = pool._client_class("127.0.0.1", str(self.port), host_location="remote")
        self.generation += 1
        self.conversions = 0
        log.info("LibreOffice instance %d: unoserver pid %d, ports %d/%d, starting",
                 self.index, self.proc.pid, self.port, self.uno_port)
        self._wait_ready(deadline)

    def _wait_ready(self, deadline: float) -> None:
        started = time.monotonic()
        docx = test_docx()
        while True:
            if self.pool.closed:
                raise _Aborted()
            if self.proc.poll() is not None:
                raise _StartFailed(f"unoserver exited with status {self.proc.returncode}: "
                                   f"{self.log_tail()}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _StartFailed(f"not ready after {time.monotonic() - started:.0f} s: "
                                   f"{self.log_tail()}")
            try:
                pdf = self.call(docx, timeout=min(remaining, 30.0))
            except (_InstanceFailure, xmlrpc.client.Fault):
                time.sleep(0.2)
                continue
            if pdf and pdf.startswith(b"%PDF-"):
                log.info("LibreOffice instance %d ready in %.1f s (pids %s)", self.index,
                         time.monotonic() - started, self.lo_pids())
                return
            raise _StartFailed("the test conversion did not give a PDF")

    def call(self, docx: bytes, timeout: float | None) -> bytes:
        """One conversion through the unoserver client, bounded by ``timeout``.

        Raises :class:`_InstanceFailure` (timeout, connection lost) or
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
            raise _InstanceFailure(f"no answer within {timeout:g} s", timed_out=True)
        exc = box.get("exc")
        if exc is None:
            return box.get("pdf")
        if isinstance(exc, xmlrpc.client.Fault):
            raise exc
        if isinstance(exc, (OSError, http.client.HTTPException, xmlrpc.client.ProtocolError,
                            RuntimeError, ValueError)):
            raise _InstanceFailure(f"{type(exc).__name__}: {exc}")
        raise exc

    def stop(self, graceful: bool = False) -> None:
        with self._plock:
            proc, self.proc = self.proc, None
            if proc is not None:
                kill_group(proc.pid, grace=STOP_GRACE if graceful else 0.0, proc=proc)
            self.pid_file.unlink(missing_ok=True)
            (self.dir / "soffice.pid").unlink(missing_ok=True)
            self.client = None

    def info(self) -> dict:
        return {"index": self.index, "state": self.state, "dir": str(self.dir),
                "port": self.port, "uno_port": self.uno_port,
                "pid": self.proc.pid if self.proc is not None else None,
                "libreoffice_pids": self.lo_pids(), "conversions": self.conversions,
                "total_conversions": self.total, "starts": self.generation,
                "recycle_at": self.limit, "last_error": self.last_error}


_POOLS: "weakref.WeakSet[ConverterPool]" = weakref.WeakSet()


def _close_all_pools() -> None:
    for pool in list(_POOLS):
        try:
            pool.close()
        except Exception:  # at exit, keep closing the others
            log.exception("closing a PDF converter pool")


atexit.register(_close_all_pools)


def _default_size() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


class ConverterPool:
    """N warm LibreOffice instances converting DOCX to PDF (see the module docstring).

    Nothing is started at construction: at :meth:`start` or at the first :meth:`convert`.
    Thread-safe. One pool per process (see :func:`get_pool` / :func:`init_app`).
    """

    def __init__(self, size: int | None = None, work_dir: str | os.PathLike = "var/lo", *,
                 soffice: str | os.PathLike | None = None,
                 uno_python: str | os.PathLike | None = None,
                 base_port: int | None = None,
                 recycle_after: int | None = DEFAULT_RECYCLE_AFTER,
                 start_timeout: float = DEFAULT_START_TIMEOUT,
                 queue_timeout: float = DEFAULT_QUEUE_TIMEOUT,
                 cold_fallback: bool = True):
        self.size = int(size) if size else _default_size()
        if self.size < 1:
            raise ValueError("size must be ≥ 1")
        self.work_dir = Path(work_dir).absolute()
        self.soffice = soffice
        self.uno_python = uno_python
        self.base_port = base_port
        self.recycle_after = recycle_after or None
        self.start_timeout = start_timeout
        self.queue_timeout = queue_timeout
        self.cold_fallback = cold_fallback
        self.mode = "stopped"           # stopped | pool | cold
        self.stats = {"conversions": 0, "retries": 0, "timeouts": 0, "failures": 0,
                      "restarts": 0, "recycles": 0}
        self._reset_state()
        _POOLS.add(self)

    def _reset_state(self) -> None:
        self._pid = os.getpid()
        self._start_lock = threading.Lock()
        self._cond = threading.Condition(threading.Lock())
        self._instances: list[_Instance] = []
        self._idle: deque[_Instance] = deque()
        self._threads: set[threading.Thread] = set()
        self._cold_slots: threading.BoundedSemaphore | None = None
        self._soffice = ""
        self._server_python = ""
        self._client_class = None
        self._started = False
        self.closed = False

    def _check_fork(self) -> None:
        """A pool inherited through fork() does not own its parent's instances."""
        if os.getpid() != self._pid:
            for inst in self._instances:
                try:
                    os.close(inst.lock_fd)
                except OSError:
                    pass
            self.mode = "stopped"
            self._reset_state()

    def __repr__(self) -> str:
        return f"<ConverterPool size={self.size} mode={self.mode} work_dir={self.work_dir}>"

    def __enter__(self) -> ConverterPool:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- start
    def start(self, wait: bool = True) -> ConverterPool:
        """Start the instances (idempotent). ``wait=False`` starts them in the background.

        Raises :class:`ComponentMissing` when LibreOffice is absent or no instance starts.
        """
        if not wait:
            threading.Thread(target=self._start_quietly, name="pdf-pool-start",
                             daemon=True).start()
            return self
        self._check_fork()
        with self._start_lock:
            if self.closed:
                raise ComponentMissing(MSG_CLOSED)
            if self._started:
                self._revive_broken(force=True)
                return self
            self._soffice = find_soffice(self.soffice) or ""
            if not self._soffice:
                raise ComponentMissing(MSG_MISSING)
            try:
                self._server_python = resolve_server_python(self.uno_python)
            except ComponentMissing:
                if not self.cold_fallback:
                    raise
                log.warning("no uno/unoserver for LibreOffice: PDF conversions fall back to a "
                            "new soffice process per document (~6× slower)")
                self._cold_slots = threading.BoundedSemaphore(self.size)
                self.mode = "cold"
                self._started = True
                return self
            self._client_class = _unoserver_client_class()
            self.work_dir.mkdir(parents=True, exist_ok=True)
            self._instances = self._claim_slots()
            deadline = time.monotonic() + self.start_timeout
            threads = [threading.Thread(target=self._start_one, args=(inst, deadline),
                                        name=f"pdf-start-{inst.index}", daemon=True)
                       for inst in self._instances]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            with self._cond:
                ready = [i for i in self._instances if i.state == "idle"]
                if not ready:
                    errors = "; ".join(i.last_error for i in self._instances)
                    log.error("no LibreOffice instance started: %s", errors)
                    for inst in self._instances:
                        inst.stop()
                        os.close(inst.lock_fd)
                    self._instances = []
                    raise ComponentMissing(MSG_NO_START)
                self._idle.extend(ready)
                self._started = True
                self.mode = "pool"
                self._cond.notify_all()
            return self

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Start if needed, then wait until no instance is (re)starting; False on timeout."""
        self.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while any(i.state == "starting" for i in self._instances):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def _start_quietly(self) -> None:
        try:
            self.start()
        except FormsError as exc:
            log.error("PDF converter pool: %s", exc.message)

    def _claim_slots(self) -> list[_Instance]:
        instances = []
        n = 0
        while len(instances) < self.size:
            slot = self.work_dir / str(n)
            slot.mkdir(parents=True, exist_ok=True)
            fd = os.open(slot / "lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)  # another live process owns this slot
            else:
                os.set_inheritable(fd, False)
                instances.append(_Instance(self, len(instances), slot, fd))
            n += 1
        return instances

    def _recycle_limit(self, inst: _Instance) -> int | None:
        if not self.recycle_after:
            return None
        if inst.generation <= 1:  # staggered first limits: instances do not recycle together
            return max(1, self.recycle_after * (inst.index + 1) // self.size)
        return self.recycle_after

    def _start_one(self, inst: _Instance, deadline: float, final: bool = True) -> bool:
        """Start ``inst``; on failure it is "broken" if ``final``, else stays "starting"."""
        inst.state = "starting"
        try:
            inst.start(deadline)
        except _Aborted:
            inst.stop()
            inst.state = "stopped"
            return False
        except (_StartFailed, OSError) as exc:
            inst.last_error = f"{type(exc).__name__}: {exc}"
            log.error("LibreOffice instance %d did not start: %s", inst.index, inst.last_error)
            inst.stop()
            shutil.rmtree(inst.dir / "profile", ignore_errors=True)  # maybe the culprit
            if final:
                inst.state = "broken"
                inst.broken_at = time.monotonic()
            return False
        inst.limit = self._recycle_limit(inst)
        inst.last_error = ""
        inst.state = "idle"
        return True

    def _ports_for(self, index: int) -> tuple[int, int]:
        if self.base_port:
            ports = (self.base_port + 2 * index, self.base_port + 2 * index + 1)
            busy = [p for p in ports if not _port_is_free(p)]
            if busy:
                raise _StartFailed(f"port(s) {busy} already in use")
            return ports
        port = _free_port()
        uno_port = _free_port()
        while uno_port == port:
            uno_port = _free_port()
        return port, uno_port

    # -- restarts (background)
    def _restart_async(self, inst: _Instance, reason: str, graceful: bool = False) -> None:
        """Called with ``self._cond`` held; the instance is out of the idle queue."""
        inst.state = "starting"
        self.stats["recycles" if reason == "recycle" else "restarts"] += 1
        t = threading.Thread(target=self._restart, args=(inst, reason, graceful),
                             name=f"pdf-restart-{inst.index}", daemon=True)
        self._threads.add(t)
        t.start()

    def _restart(self, inst: _Instance, reason: str, graceful: bool) -> None:
        try:
            log.info("LibreOffice instance %d: restarting (%s)", inst.index, reason)
            inst.stop(graceful=graceful)
            attempts = 3
            for attempt in range(attempts):
                if self.closed:
                    break
                if self._start_one(inst, time.monotonic() + self.start_timeout,
                                   final=attempt == attempts - 1):
                    break
                if inst.state != "starting":  # aborted (closing) or given up
                    break
                time.sleep(1.0 + attempt)
            with self._cond:
                if self.closed:
                    pass
                elif inst.state == "idle":
                    self._idle.append(inst)
                self._cond.notify_all()
        finally:
            with self._cond:
                self._threads.discard(threading.current_thread())

    def _revive_broken(self, force: bool = False) -> None:
        with self._cond:
            for inst in self._instances:
                if inst.state == "broken" and (
                        force or time.monotonic() - inst.broken_at > 30.0):
                    self._restart_async(inst, "revive")

    # -- conversions
    def _acquire(self, deadline: float) -> _Instance:
        self._revive_broken()
        with self._cond:
            while True:
                if self.closed:
                    raise ComponentMissing(MSG_CLOSED)
                while self._idle:
                    inst = self._idle.popleft()
                    if inst.proc is None or inst.proc.poll() is not None:
                        log.warning("LibreOffice instance %d died while idle", inst.index)
                        self._restart_async(inst, "dead")
                        continue
                    inst.state = "busy"
                    return inst
                if all(i.state == "broken" for i in self._instances):
                    raise ComponentMissing(MSG_NO_START)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ConversionTimeout(
                        "Aucune instance LibreOffice n'est libre : la conversion en PDF "
                        "est abandonnée, réessayez plus tard.")
                self._cond.wait(remaining)

    def _release(self, inst: _Instance) -> None:
        with self._cond:
            if self.closed:
                return
            others_starting = any(o.state == "starting" for o in self._instances if o is not inst)
            if inst.limit and inst.conversions >= inst.limit and not others_starting:
                self._restart_async(inst, "recycle", graceful=True)
            else:
                inst.state = "idle"
                self._idle.append(inst)
                self._cond.notify()

    def _fail(self, inst: _Instance, why: str) -> None:
        """Take a failed instance out: the restart thread kills it and starts it again."""
        log.warning("LibreOffice instance %d failed (%s): restarting it", inst.index, why)
        inst.last_error = why
        with self._cond:
            if not self.closed:
                self._restart_async(inst, "failure")

    def convert(self, docx: bytes, timeout: float | None = DEFAULT_TIMEOUT) -> bytes:
        """Convert a DOCX to PDF on a free instance; return the PDF bytes.

        ``timeout`` bounds one attempt (seconds, None for no limit). A timeout or a dead
        instance: the instance is killed and restarted, and the conversion retried once.
        Raises :class:`ComponentMissing`, :class:`ConversionTimeout`,
        :class:`ConversionFailed`, or :class:`~forms_service.errors.BadDocument`.
        """
        _check_docx(docx)
        self._check_fork()
        if not self._started:
            self.start()
        if self.mode == "cold":
            return self._cold_convert(docx, timeout)
        deadline = time.monotonic() + self.queue_timeout + (timeout or 0)
        failure: _InstanceFailure | None = None
        for attempt in (1, 2):
            inst = self._acquire(deadline)
            try:
                pdf = inst.call(docx, timeout)
            except _InstanceFailure as exc:
                failure = exc
                if exc.timed_out:
                    self._count("timeouts")
                self._fail(inst, str(exc))
            except xmlrpc.client.Fault as fault:
                if not inst.alive() or any(m in fault.faultString for m in _FAULT_OF_INSTANCE):
                    failure = _InstanceFailure(f"fault from a dying instance: {fault.faultString}")
                    self._fail(inst, str(failure))
                else:
                    self._release(inst)
                    self._count("failures")
                    log.error("LibreOffice could not convert a document: %s", fault.faultString)
                    raise ConversionFailed(
                        "LibreOffice n'a pas pu convertir ce document en PDF.") from None
            except BaseException:
                self._fail(inst, "interrupted")
                raise
            else:
                inst.conversions += 1
                inst.total += 1
                self._release(inst)
                self._count("conversions")
                return _check_pdf(pdf)
            if attempt == 1:
                self._count("retries")
                log.info("retrying the conversion once after: %s", failure)
        self._count("failures")
        if failure is not None and failure.timed_out:
            raise ConversionTimeout(
                f"La conversion en PDF a dépassé le délai de {timeout:g} s (deux essais).")
        raise ConversionFailed(
            "La conversion en PDF a échoué : LibreOffice s'est arrêté pendant la conversion "
            "(deux essais).")

    def _cold_convert(self, docx: bytes, timeout: float | None) -> bytes:
        assert self._cold_slots is not None
        if not self._cold_slots.acquire(timeout=self.queue_timeout):
            raise ConversionTimeout("Aucune conversion PDF n'est possible pour l'instant, "
                                    "réessayez plus tard.")
        try:
            pdf = cold_convert(docx, timeout, soffice=self._soffice)
        finally:
            self._cold_slots.release()
        self._count("conversions")
        return pdf

    def _count(self, key: str) -> None:
        with self._cond:
            self.stats[key] += 1

    # -- health and state
    def instances(self) -> list[dict]:
        """State of each instance (pids, ports, counters), for health and tests."""
        return [inst.info() for inst in list(self._instances)]

    def health(self, start: bool = True) -> dict:
        """A real test print: convert a tiny DOCX, check ``%PDF`` and pypdf-readable pages.

        Never raises; ``{"ok": bool, ...}``. ``start=False`` does not start a stopped pool.
        """
        t0 = time.monotonic()
        result: dict = {"component": "libreoffice", "ok": False}
        if not self._started and not start:
            result.update(mode=self.mode, error="pool not started")
            return result
        try:
            pdf = self.convert(test_docx(), timeout=30)
            pages = pdf_page_count(pdf)
            result.update(ok=pdf.startswith(b"%PDF-") and pages >= 1, pages=pages,
                          bytes=len(pdf))
        except FormsError as exc:
            result["error"] = exc.message
        except Exception as exc:  # an unreadable PDF, for instance
            result["error"] = f"{type(exc).__name__}: {exc}"
        result.update(mode=self.mode, elapsed_ms=round((time.monotonic() - t0) * 1000, 1),
                      size=self.size, stats=dict(self.stats), instances=self.instances())
        return result

    # -- stop
    def close(self) -> None:
        """Stop every instance (SIGTERM, then SIGKILL) and release the slots. Idempotent.

        A pool inherited through fork() leaves its parent's instances alone.
        """
        if os.getpid() != self._pid:
            return
        with self._cond:
            if self.closed:
                return
            self.closed = True
            self._cond.notify_all()
            threads = list(self._threads)
        instances = list(self._instances)
        # In parallel; one SIGTERM each (a second one can wedge unoserver's signal handler).
        stoppers = [threading.Thread(target=inst.stop, kwargs={"graceful": True}, daemon=True)
                    for inst in instances]
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join()
        for t in threads:
            t.join(timeout=STOP_GRACE + 10)
        for inst in instances:
            inst.stop()  # whatever a restart thread spawned meanwhile
            inst.state = "stopped"
            try:
                os.close(inst.lock_fd)
            except OSError:
                pass
        self._idle.clear()
        self.mode = "stopped"
        if instances:
            log.info("PDF converter pool stopped (%d instances)", len(instances))


# --------------------------------------------------------------------------- app wiring

_REGISTRY: dict[tuple, ConverterPool] = {}
_REGISTRY_LOCK = threading.Lock()


def pool_options(config: Mapping | None = None) -> dict:
    """ConverterPool keyword arguments from a settings mapping (Flask ``app.config``).

    Keys: ``PDF_POOL_SIZE`` (default: number of cores), ``VAR_DIR`` (profiles in
    ``VAR_DIR/lo``; default ``var``), ``PDF_POOL_RECYCLE_AFTER`` (0: never), ``PDF_SOFFICE``,
    ``PDF_UNO_PYTHON``, ``PDF_POOL_BASE_PORT`` (else free ports are picked).
    """
    config = config or {}
    return {
        "size": int(config.get("PDF_POOL_SIZE") or 0) or None,
        "work_dir": Path(config.get("VAR_DIR") or "var").absolute() / "lo",
        "soffice": config.get("PDF_SOFFICE") or None,
        "uno_python": config.get("PDF_UNO_PYTHON") or None,
        "base_port": int(config.get("PDF_POOL_BASE_PORT") or 0) or None,
        "recycle_after": int(config.get("PDF_POOL_RECYCLE_AFTER", DEFAULT_RECYCLE_AFTER) or 0)
        or None,
    }


def get_pool(config: Mapping | None = None) -> ConverterPool:
    """The process's pool for these settings (created on first call, not started)."""
    opts = pool_options(config)
    key = tuple(sorted((k, str(v)) for k, v in opts.items()))
    with _REGISTRY_LOCK:
        pool = _REGISTRY.get(key)
        if pool is None or pool.closed or pool._pid != os.getpid():
            pool = _REGISTRY[key] = ConverterPool(**opts)
        return pool


def init_app(app) -> ConverterPool:
    """Register the process's pool on a Flask app, without starting LibreOffice.

    ``app.extensions["pdf_pool"]`` is the :class:`ConverterPool` (started at its first
    conversion, or by ``pool.start()`` / ``pool.start(wait=False)``), and
    ``app.extensions["health_checks"]["libreoffice"]`` is its :meth:`~ConverterPool.health`.
    """
    pool = get_pool(app.config)
    app.extensions["pdf_pool"] = pool
    app.extensions.setdefault("health_checks", {})["libreoffice"] = pool.health
    return pool


# --------------------------------------------------------------------------- command line

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m forms_service.render.pdf",
        description="LibreOffice PDF conversion: prepare the server side, check, convert.")
    parser.add_argument("--prepare", action="store_true",
                        help=f"make {DEFAULT_UNO_VENV.name}/ (Debian's python3 + python3-uno "
                             "+ unoserver) for the pool's servers")
    parser.add_argument("--check", action="store_true",
                        help="start a pool, run its health check, print it as JSON")
    parser.add_argument("--size", type=int, default=1, help="instances for --check/--convert")
    parser.add_argument("--work-dir", default="var/lo")
    parser.add_argument("--convert", nargs=2, metavar=("DOCX", "PDF"))
    parser.add_argument("--cold", action="store_true", help="convert with a new soffice process")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.prepare:
            print(prepare_server_env())
        if args.check or (args.convert and not args.cold):
            with ConverterPool(args.size, args.work_dir, cold_fallback=False) as pool:
                if args.check:
                    print(json.dumps(pool.health(), indent=2, ensure_ascii=False))
                if args.convert:
                    src, dst = args.convert
                    Path(dst).write_bytes(pool.convert(Path(src).read_bytes()))
        elif args.convert:
            src, dst = args.convert
            Path(dst).write_bytes(cold_convert(Path(src).read_bytes()))
    except FormsError as exc:
        print(exc.message, file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())

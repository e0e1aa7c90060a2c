"""The Python environment the pool's unoserver servers run in (``.venv-uno``).

The unoserver *server* must run under a Python that has LibreOffice's ``uno`` module:
on Debian, ``/usr/bin/python3`` with ``python3-uno``, not the project's venv.
:func:`prepare_server_env` makes ``.venv-uno/`` (a venv of ``/usr/bin/python3`` with
``--system-site-packages``) and copies into it the unoserver distribution installed in
the project's venv (pure Python, no dependencies): same version as the client, no
network. ``python -m forms_service.render.pdf_cli --prepare`` does it from a setup script.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path

from forms_service.errors import ComponentMissing

from .soffice import MSG_NO_START, MSG_NO_UNO, clean_env

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_UNO_VENV = PROJECT_ROOT / ".venv-uno"
SYSTEM_PYTHON = "/usr/bin/python3"

_CHECK_SERVER = ("import uno, unoserver.server\n"
                 "from importlib.metadata import version\n"
                 "print(version('unoserver'))")


def _server_env_version(python: str | os.PathLike) -> str | None:
    """unoserver version importable by ``python`` next to ``uno``, or None."""
    try:
        out = subprocess.run([os.fspath(python), "-c", _CHECK_SERVER], capture_output=True,
                             text=True, timeout=60, env=clean_env())
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _has_uno(python: str | os.PathLike) -> bool:
    try:
        return subprocess.run([os.fspath(python), "-c", "import uno"], capture_output=True,
                              timeout=60, env=clean_env()).returncode == 0
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
                        str(build)], check=True, capture_output=True, env=clean_env())
        for script in (build / "bin").iterdir():
            if script.name.lower().startswith("activate"):
                script.unlink()  # they would name the build directory; bin/python is all we use
        purelib = subprocess.run(
            [str(build / "bin" / "python"), "-c",
             "import sysconfig; print(sysconfig.get_path('purelib'))"],
            check=True, capture_output=True, text=True, env=clean_env()).stdout.strip()
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



"""The fast path's probes kept on disk, one file per template version and rows printed.

Building a probe (:func:`fastpath.build_probe`) costs four LibreOffice prints and three
PDF reads, ~3–6 s per template version on a busy machine: without this store every new
process (a gunicorn worker, a CLI command, a test session) paid it again. A probe is
saved under ``<VAR_DIR>/cache/fastpath/`` by a name made of what decides its content:

* the form and its **template version** (``pipeline.template_version``: a SHA-256 over the
  DOCX template, the form definition and the print configuration) — a département's DOCX
  edit is a new version, hence a new file and a new probe;
* the list rows printed (the layout map's ``rows``);
* the LibreOffice that printed it (``soffice``'s resolved path, size and modification
  time) and the fast path's own code (a digest of ``fastpath.py`` and this module): an
  upgrade of either makes the old files unused.

Files are written atomically (a temporary file renamed) and read with ``pickle``: they are
the service's own files in its own var directory, like its database. A file that cannot be
read (truncated, an older format) is ignored and the probe built again. Probes that failed
(LibreOffice down, an exception) are never saved; refused ones are (they are a property of
the template, as costly to find again).
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import tempfile
from functools import lru_cache
from pathlib import Path

from ..config import Settings

log = logging.getLogger(__name__)

#: Bumped by hand when the probe's shape changes in a way the code digest would not show.
FORMAT = 1


@lru_cache(maxsize=1)
def _code_digest() -> str:
    h = hashlib.sha256(str(FORMAT).encode())
    here = Path(__file__).resolve().parent
    for name in ("fastpath.py", "fastpath_store.py"):
        h.update((here / name).read_bytes())
    return h.hexdigest()[:12]


def _soffice_id(pool) -> str:
    from .soffice import find_soffice

    path = find_soffice(getattr(pool, "soffice", None))
    if path is None:
        return "none"
    real = os.path.realpath(path)
    try:
        st = os.stat(real)
        return f"{real}:{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        return real


def directory(settings: Settings) -> Path:
    return Path(settings.var_dir) / "cache" / "fastpath"


def path_for(settings: Settings, pool, form_id: str, version: str, rows: tuple) -> Path:
    """The probe file of a (form, template version, rows printed) for this LibreOffice."""
    h = hashlib.sha256(repr((rows, _soffice_id(pool), _code_digest())).encode()).hexdigest()[:16]
    return directory(settings) / f"{form_id}-{version}-{h}.probe"


def load(path: Path):
    """The probe saved at ``path``, or None (absent, unreadable, another format)."""
    try:
        with open(path, "rb") as fh:
            probe = pickle.load(fh)
    except FileNotFoundError:
        return None
    except Exception as exc:   # a truncated or stale file: built again, never a failure
        log.warning("fastpath probe file unreadable", extra={"file": path.name,
                                                             "exc_type": type(exc).__name__})
        return None
    return probe


def save(path: Path, probe) -> None:
    """Write ``probe`` to ``path`` atomically; a failure is logged, never raised."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".probe-")
        try:
            with os.fdopen(fd, "wb") as fh:
                pickle.dump(probe, fh, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as exc:
        log.warning("fastpath probe not saved", extra={"file": path.name,
                                                       "exc_type": type(exc).__name__})

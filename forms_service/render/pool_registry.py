"""One shared :class:`ConverterPool` per set of options in a process.

For callers that want one pool however many times they ask (test sessions, commands);
an app creates and closes its own pool. ``pool_options`` maps the ``PDF_*`` settings of
an app's config to the pool's arguments.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path

from .pool import DEFAULT_RECYCLE_AFTER, ConverterPool

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
    """The process's shared pool for these settings (created on first call, not started).

    For callers that want one pool per options in a process (test sessions, commands);
    an app creates and closes its own :class:`ConverterPool`.
    """
    opts = pool_options(config)
    key = tuple(sorted((k, str(v)) for k, v in opts.items()))
    with _REGISTRY_LOCK:
        pool = _REGISTRY.get(key)
        if pool is None or pool.closed or pool._pid != os.getpid():
            pool = _REGISTRY[key] = ConverterPool(**opts)
        return pool

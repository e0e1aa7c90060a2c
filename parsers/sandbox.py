"""Parse files in worker processes, so that a hostile file cannot take the service down.

A decompression bomb, an endless object loop or a crash inside a native PDF
library stays in its worker: the worker has a memory ceiling and each file a
time limit; a worker that dies or overruns is replaced, and the file gets a
clear error entry while the others are read as usual.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
from concurrent.futures import ProcessPoolExecutor, TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from threading import Lock

from .parse import Limits, parse_files

MEMORY_LIMIT = 2 * 1024 ** 3       # per worker
FILE_TIMEOUT = 120.0               # seconds per file


def _init_worker(memory_limit: int, env: dict[str, str]) -> None:
    os.environ.update(env)   # the parent's settings (database, var dir), read once here too
    try:
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    except (ValueError, OSError):
        pass
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")   # tesseract: 1 thread, processes in parallel


def _parse_one(name: str, data: bytes, limits: Limits) -> list[dict]:
    return parse_files([(name, data)], limits)


class Sandbox:
    def __init__(self, workers: int | None = None, memory_limit: int = MEMORY_LIMIT,
                 timeout: float = FILE_TIMEOUT, settings=None):
        self.workers = workers or max(1, os.cpu_count() or 1)
        self.memory_limit = memory_limit
        self.timeout = timeout
        self._pool: ProcessPoolExecutor | None = None
        self.env: dict[str, str] = {}
        if settings is not None:
            self.env = {"FORMS_SERVICE_VAR_DIR": str(settings.var_dir),
                        "DATABASE_URL": str(settings.database_url),
                        "FORMS_SERVICE_TEMPLATES_DIR": str(settings.templates_dir)}
        self._lock = Lock()

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(self.workers, mp_context=mp.get_context("forkserver"),
                                                 initializer=_init_worker, initargs=(self.memory_limit, self.env))
            return self._pool

    def _reset(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            for proc in list(getattr(pool, "_processes", {}).values()):
                proc.kill()
            pool.shutdown(wait=False, cancel_futures=True)

    def parse(self, files: list[tuple[str, bytes]], limits: Limits | None = None) -> list[dict]:
        limits = limits or Limits()
        futures = [(name, self._executor().submit(_parse_one, name, data, limits)) for name, data in files]
        out: list[dict] = []
        for name, fut in futures:
            try:
                out.extend(fut.result(timeout=self.timeout))
            except FutureTimeout:
                self._reset()
                out.append({"file": name, "error": {"rule": "delai_depasse",
                                                    "message": "Lecture trop longue : fichier abandonné"}})
            except (BrokenProcessPool, MemoryError, OSError):
                self._reset()
                out.append({"file": name, "error": {"rule": "document_hostile",
                                                    "message": "Le fichier a interrompu sa lecture "
                                                               "(trop gros ou malformé)"}})
        return out

    def close(self) -> None:
        self._reset()

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
from pathlib import Path
from concurrent.futures import ProcessPoolExecutor, TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from threading import Lock

from forms_service.config import Settings

from .parse import Limits, parse_files
from .pool_proxy import PoolServer, RemotePool
from .store import Store

MEMORY_LIMIT = 2 * 1024 ** 3       # per worker
FILE_TIMEOUT = 120.0               # seconds per file

#: The worker's store: the sandbox owner's settings, a database of its own, the owner's pool.
_STORE: Store | None = None


def _init_worker(memory_limit: int, settings: Settings, pool_address: str | None,
                 pool_key: bytes | None) -> None:
    global _STORE
    try:
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    except (ValueError, OSError):
        pass   # a ceiling above the hard limit: the hard limit holds
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")   # tesseract: 1 thread, processes in parallel
    pool = RemotePool(pool_address, pool_key) if pool_address else None
    _STORE = Store(settings, pool=pool)


def _ready() -> int:
    return os.getpid()


def _parse_many(files: list[tuple[str, bytes | Path]], limits: Limits) -> list[dict]:
    readable, unread = [], []
    for name, source in files:   # a stored file is read here, in the reader: not sent through a pipe
        try:
            readable.append((name, source.read_bytes() if isinstance(source, Path) else source))
        except OSError:
            unread.append({"file": name, "error": {"rule": "fichier_illisible",
                                                   "message": "Fichier enregistré illisible"}})
    return (parse_files(readable, limits, store=_STORE) if readable else []) + unread


def _head(source: bytes | Path) -> bytes:
    if isinstance(source, Path):
        try:
            with open(source, "rb") as f:
                return f.read(4)
        except OSError:
            return b""
    return source[:4]


def _jobs(files: list[tuple[str, bytes | Path]]) -> list[list[tuple[int, tuple[str, bytes | Path]]]]:
    """Jobs of (index, file): the JPEG and PNG files together, every other file alone."""
    heads = [_head(f[1]) for f in files]
    is_image = [h[:3] == b"\xff\xd8\xff" or h[:4] == b"\x89PNG" for h in heads]
    images = [(i, f) for i, f in enumerate(files) if is_image[i]]
    others = [[(i, f)] for i, f in enumerate(files) if not is_image[i]]
    jobs = ([images] if len(images) > 1 else [[x] for x in images]) + others
    return sorted(jobs, key=lambda job: job[0][0])


class Sandbox:
    """Worker processes reading files for the app or a command, created and closed by it.

    ``settings`` are the owner's (its database, templates, storage), given to every
    worker; ``pool`` is the owner's converter pool (or None), lent to the workers for
    layouts that must be computed. :meth:`close` stops the workers (and the lending);
    the pool stays the owner's to close.
    """

    def __init__(self, settings: Settings, *, pool=None, workers: int | None = None,
                 memory_limit: int = MEMORY_LIMIT, timeout: float = FILE_TIMEOUT):
        self.settings = settings
        self.workers = workers or max(1, os.cpu_count() or 1)
        self.memory_limit = memory_limit
        self.timeout = timeout
        self._pool_server = PoolServer(pool) if pool is not None else None
        self._pool: ProcessPoolExecutor | None = None
        self._lock = Lock()

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                server = self._pool_server
                initargs = (self.memory_limit, self.settings, server.address if server else None,
                            server.authkey if server else None)
                self._pool = ProcessPoolExecutor(self.workers, mp_context=mp.get_context("forkserver"),
                                                 initializer=_init_worker, initargs=initargs)
            return self._pool

    def start(self) -> None:
        """Start the reader processes now (each opens its store), not at the first file:
        a queue worker's first batch does not wait for them."""
        executor = self._executor()
        for fut in [executor.submit(_ready) for _ in range(self.workers)]:
            fut.result(timeout=self.timeout)

    def _reset(self, *, kill: bool) -> None:
        """Drop the executor: its workers killed (one overran or died) or let finish.

        Either way the executor is shut down and waited for, so that its management
        thread is gone before the process exits (else it may write to a closed pipe at
        interpreter exit: « OSError: [Errno 9] Bad file descriptor »).
        """
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is None:
            return
        if kill:   # ProcessPoolExecutor has no public way to stop a busy worker before 3.14
            for proc in list((getattr(pool, "_processes", None) or {}).values()):
                proc.kill()
        pool.shutdown(wait=True, cancel_futures=True)

    def parse(self, files: list[tuple[str, bytes | Path]], limits: Limits | None = None) -> list[dict]:
        """Every file's records or error entry, in file order. A file is its bytes, or the
        path of a stored file, read by the reader process itself (a queue worker's files:
        not copied through the pipe to it).

        Single-page images (JPEG, PNG) are read together in one job, so that one photo per
        page still makes one record per document; every other file is a job of its own,
        the jobs running in parallel. A job that overruns its time or takes its worker
        down is the only one to get an error: the pool is replaced, the jobs it
        interrupted are run again one at a time, and a group of images that fails is
        split into its files.
        """
        limits = limits or Limits()
        jobs = _jobs(files)
        done: dict[int, list[dict]] = {}
        retry = self._run(jobs, list(range(len(jobs))), done, limits, isolated=False)
        while retry:
            j = retry.pop(0)
            if len(jobs[j]) > 1:            # a group of images failed: each image alone
                for item in jobs[j]:
                    jobs.append([item])
                    retry.append(len(jobs) - 1)
                done[j] = []
                continue
            self._run(jobs, [j], done, limits, isolated=True)
        slots: dict[int, list[dict]] = {i: [] for i in range(len(files))}
        for j in sorted(done):
            names = {files[i][0]: i for i, _ in jobs[j]}
            first = min(i for i, _ in jobs[j])
            for item in done[j]:
                if "fields" in item:
                    at = min((names.get(p["file"], first) for p in item["pages"]), default=first)
                else:
                    at = names.get(item.get("file"), first)
                slots[at].append(item)
        return [item for i in range(len(files)) for item in slots[i]]

    def _run(self, jobs: list[list[tuple[int, tuple[str, bytes]]]], ids: list[int],
             done: dict[int, list[dict]], limits: Limits, *, isolated: bool) -> list[int]:
        """Run jobs ``ids``; returns those interrupted by another job's failure (to retry alone)."""
        futures = [(j, self._executor().submit(_parse_many, [f for _, f in jobs[j]], limits)) for j in ids]
        retry: list[int] = []
        broken = False
        for j, fut in futures:
            if broken:
                retry.append(j)
                continue
            name = jobs[j][0][1][0]
            try:
                done[j] = fut.result(timeout=self.timeout * len(jobs[j]))
            except FutureTimeout:
                self._reset(kill=True)
                broken = True
                if len(jobs[j]) > 1 and not isolated:
                    retry.append(j)
                else:
                    done[j] = [{"file": n, "error": {"rule": "delai_depasse",
                                                     "message": "Lecture trop longue : fichier abandonné"}}
                               for _, (n, _) in jobs[j]]
            except (BrokenProcessPool, MemoryError, OSError):
                self._reset(kill=True)
                broken = True
                if isolated and len(jobs[j]) == 1:
                    done[j] = [{"file": name, "error": {"rule": "document_hostile",
                                                        "message": "Le fichier a interrompu sa lecture "
                                                                   "(trop gros ou malformé)"}}]
                else:   # which job took the worker down is not known: each alone
                    retry.append(j)
        return retry

    def close(self) -> None:
        """Stop the workers and the pool lending (idempotent)."""
        self._reset(kill=False)
        if self._pool_server is not None:
            self._pool_server.close()

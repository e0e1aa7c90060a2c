"""The task queue: Huey, on SQLite by default, on Redis with ``QUEUE_URL=redis://…``.

    q = get_queue(settings)          # one per settings (process), producer and consumer alike
    q.enqueue_read(batch_id, [file ids])
    q.consumer(workers=2).run()      # ``forms-service worker`` (``serve`` starts one beside)

Tasks carry ids only; a consumer process builds its reading context once
(:class:`forms_service.desk.reading.Worker`: the settings' database and a parse sandbox).
Jobs are idempotent: a file is claimed (a lease naming the worker), and its records and
pages are written in one transaction only if it is still pending; a worker killed with
``kill -9`` loses its dequeued job, and :func:`sweep` (at every consumer's start, then every
minute) queues again what such a worker left. Periodic tasks run once per period however
many consumers run (a key per period, ``put_if_empty`` in the queue's storage).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from huey import RedisHuey, SqliteHuey, crontab

from forms_service.config import Settings
from forms_service.logging_setup import get_logger

log = get_logger(__name__)

NAME = "forms-service"


#: The work the queue's tasks do, by name: ``handler(queue, *args)``, registered by the
#: modules that do it (``desk.reading``: ``read_files``, ``sweep``, ``worker_start``) so that
#: this module imports none of them. A consumer imports them first (``forms-service worker``).
HANDLERS: dict[str, Callable[..., None]] = {}
#: Handlers run by the periodic task (once a minute, once whatever the number of consumers).
PERIODIC: list[Callable[["DeskQueue"], None]] = []


def handler(name: str):
    def register(fn):
        HANDLERS[name] = fn
        return fn
    return register


def periodic(fn):
    PERIODIC.append(fn)
    return fn


def _once_per(huey, name: str, period: int) -> bool:
    """True for the first caller of this period (across every consumer)."""
    return huey.put_if_empty(f"periodic:{name}:{int(time.time() // period)}", b"1")


class DeskQueue:
    """A Huey instance and the desk's tasks registered on it."""

    def __init__(self, settings: Settings):
        self.settings = settings
        url = settings.queue_url
        if url and url.startswith(("redis://", "rediss://", "unix://")):
            self.huey = RedisHuey(NAME, url=url, results=False)
            self.kind = "redis"
        else:
            path = Path(url[len("sqlite:///"):]) if url and url.startswith("sqlite:///") else \
                Path(settings.var_dir) / "queue.db"
            path.parent.mkdir(parents=True, exist_ok=True)
            self.huey = SqliteHuey(NAME, filename=str(path), results=False, timeout=30)
            self.kind = "sqlite"
        h = self.huey
        self._run = h.task(name="desk.run", retries=2, retry_delay=2)(self._dispatch)
        h.periodic_task(crontab(minute="*"), name="desk.every_minute")(self._every_minute)
        h.on_startup(name="desk.worker_start")(self._on_start)
        from forms_service.circuit import notify   # the circuit's e-mails (issue 12)
        self.send_mail = notify.register_task(h, settings)
        from forms_service.webhooks import delivery   # the circuit's webhooks (issue 13)
        self.deliver_webhook = delivery.register_task(h, settings)
        # the référents' daily e-mail of échéances (issue 14: forms_service/digest.py)
        from forms_service.digest import DIGEST_HOUR
        h.periodic_task(crontab(hour=str(DIGEST_HOUR), minute="0"),
                        name="referent.digest")(self._daily_digest)

    # -- producer side
    def enqueue_read(self, batch_id: int, file_ids: list[int]) -> None:
        self._run("read_files", batch_id, list(file_ids))

    def enqueue_sweep(self) -> None:
        self._run("sweep")

    def pending(self) -> int:
        return self.huey.pending_count()

    # -- consumer side
    def consumer(self, workers: int | None = None):
        import os
        workers = workers or self.settings.worker_threads or max(1, os.cpu_count() or 1)
        return self.huey.create_consumer(workers=workers, worker_type="thread", periodic=True,
                                         initial_delay=0.05, backoff=1.3, max_delay=1.0,
                                         check_worker_health=True)

    def _dispatch(self, name: str, *args) -> None:
        HANDLERS[name](self, *args)

    def _on_start(self) -> None:
        if "worker_start" in HANDLERS:
            HANDLERS["worker_start"](self)

    def _daily_digest(self) -> None:
        if not _once_per(self.huey, "referent.digest", 86400):
            return
        from forms_service.digest import send_digests
        send_digests(self.settings)

    def _every_minute(self) -> None:
        if not _once_per(self.huey, "every_minute", 60):
            return
        for fn in PERIODIC:
            try:
                fn(self)
            except Exception as exc:   # one periodic job's failure does not stop the others
                log.error("periodic_failed", job=getattr(fn, "__name__", "?"), error=type(exc).__name__)


@lru_cache(maxsize=8)
def _queue_for(settings: Settings) -> DeskQueue:
    return DeskQueue(settings)


def get_queue(settings: Settings) -> DeskQueue:
    """The process's queue for these settings."""
    return _queue_for(settings)

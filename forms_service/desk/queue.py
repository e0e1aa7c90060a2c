"""The task queue: Huey, on SQLite by default, on Redis with ``QUEUE_URL=redis://…``.

    q = get_queue(settings)          # one per settings (process), producer and consumer alike
    q.enqueue_read(batch_id, [file ids])
    q.consumer(workers=2).run()      # ``forms-service worker`` (``serve`` starts one beside)
    q.consumer_alive()               # a consumer's heartbeat (every 5 s) seen lately?

Tasks carry ids only; a consumer process builds its reading context once
(:class:`forms_service.desk.reading.Worker`: the settings' database and a parse sandbox).
Jobs are idempotent: a file is claimed (a lease naming the worker), and its records and
pages are written in one transaction only if it is still pending; a worker killed with
``kill -9`` loses its dequeued job, and :func:`sweep` (at every consumer's start, then every
minute) queues again what such a worker left. Periodic tasks run once per period however
many consumers run (a key per period, ``put_if_empty`` in the queue's storage).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from huey import RedisHuey, SqliteHuey, crontab

from forms_service.config import Settings
from forms_service.logging_setup import get_logger

log = get_logger(__name__)

NAME = "forms-service"
#: A consumer beats this often in the queue's storage (``HEARTBEAT_KEY``): producers that
#: wait for their work (``batch submit --wait``) know whether anyone will do it.
HEARTBEAT_SECONDS = 5
HEARTBEAT_KEY = "consumer:heartbeat"
#: The longest an idle consumer thread waits before it looks at the queue again (s).
MAX_POLL_DELAY = 0.25


#: The work the queue's tasks do, by name: ``handler(queue, *args)``, registered by the
#: modules that do it (``desk.reading``: ``read_files``, ``sweep``; ``render.jobs``: ``render_batch``;
#: ``circuit.mailing``: :data:`MAIL_TASK`) so that
#: this module imports none of them. A consumer imports them first (``forms-service worker``).
HANDLERS: dict[str, Callable[..., None]] = {}
#: The circuit's e-mails have a task of their own (their retries); ``circuit.mailing``
#: registers its handler under this name.
MAIL_TASK = "circuit.send_mail"
#: Handlers run by the periodic task (once a minute, once whatever the number of consumers).
PERIODIC: list[Callable[["DeskQueue"], None]] = []
#: Handlers run once a day at :data:`DAILY_HOUR` UTC, once whatever the number of consumers
#: (``digest``: the référents' e-mail of échéances, issue 14).
DAILY: list[Callable[["DeskQueue"], None]] = []
DAILY_HOUR = 6
#: Run once when a consumer process starts (``desk.reading`` and ``render.jobs``: queue a
#: sweep of the work a killed worker left).
AT_START: list[Callable[["DeskQueue"], None]] = []


def handler(name: str):
    def register(fn):
        HANDLERS[name] = fn
        return fn
    return register


def _register_once(jobs: list, fn):
    """Append ``fn`` unless it is there: a module registered twice runs its job once."""
    if fn not in jobs:
        jobs.append(fn)
    return fn


def periodic(fn):
    return _register_once(PERIODIC, fn)


def daily(fn):
    return _register_once(DAILY, fn)


def at_start(fn):
    return _register_once(AT_START, fn)


def _run_each(jobs: list, queue: "DeskQueue", failure_event: str) -> None:
    """Run every job of the list; one job's failure is logged and does not stop the others."""
    for fn in jobs:
        try:
            fn(queue)
        except Exception as exc:
            log.error(failure_event, job=getattr(fn, "__name__", "?"), error=type(exc).__name__)


def _once_per(huey, name: str, period: int) -> bool:
    """True for the first caller of this period (across every consumer)."""
    return huey.put_if_empty(f"periodic:{name}:{int(time.time() // period)}", b"1")


class DeskQueue:
    """A Huey instance and the desk's tasks registered on it."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._started = False
        self._start_lock = threading.Lock()
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
        self.send_mail = h.task(name=MAIL_TASK, retries=notify.QUEUE_RETRIES,
                                retry_delay=notify.QUEUE_RETRY_DELAY)(self._send_mail)
        from forms_service.webhooks import delivery   # the circuit's webhooks (issue 13)
        self.deliver_webhook = delivery.register_task(h, settings)
        h.periodic_task(crontab(hour=str(DAILY_HOUR), minute="0"), name="desk.daily")(self._daily)

    # -- producer side
    def enqueue_read(self, batch_id: int, file_ids: list[int]) -> None:
        self._run("read_files", batch_id, list(file_ids))

    def enqueue_sweep(self) -> None:
        self._run("sweep")

    def enqueue(self, name: str, *args) -> None:
        """Any registered handler's work (``render_batch``: a long render batch)."""
        self._run(name, *args)

    def pending(self) -> int:
        return self.huey.pending_count()

    # -- is anyone consuming? (a heartbeat in the queue's own storage)
    def beat(self, me: str) -> None:
        self.huey.put(HEARTBEAT_KEY, {"at": time.time(), "by": me})

    def consumer_alive(self, within: float | None = None) -> bool:
        """Whether a consumer (``forms-service worker``, or the one ``serve`` starts) beat
        within the last ``within`` seconds (three beats by default)."""
        try:
            last = self.huey.get(HEARTBEAT_KEY, peek=True)
        except Exception as exc:   # the queue's storage cannot be read: nobody is known alive
            log.warning("queue_heartbeat_unreadable", error=type(exc).__name__)
            return False
        limit = 3 * HEARTBEAT_SECONDS if within is None else within
        return bool(last) and time.time() - float(last.get("at", 0)) < limit

    @contextmanager
    def heartbeat(self, me: str):
        """While the block runs (a consumer), beat every :data:`HEARTBEAT_SECONDS`."""
        stop = threading.Event()

        def run():
            while True:
                try:
                    self.beat(me)
                except Exception as exc:   # a missed beat: the next one tries again
                    log.warning("queue_heartbeat_failed", error=type(exc).__name__)
                if stop.wait(HEARTBEAT_SECONDS):
                    return

        self.beat(me)
        thread = threading.Thread(target=run, name="queue-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(HEARTBEAT_SECONDS)
            if self._beat_is(me):   # stopped cleanly and the last to beat: nobody is known alive
                self.huey.delete(HEARTBEAT_KEY)

    def _beat_is(self, me: str) -> bool:
        try:
            last = self.huey.get(HEARTBEAT_KEY, peek=True)
        except Exception:
            return False
        return bool(last) and last.get("by") == me

    # -- consumer side
    def consumer(self, workers: int | None = None):
        """A Huey consumer. An idle thread polls the queue every 0.05 s at first, then less
        often, never less than every :data:`MAX_POLL_DELAY`: a batch's files are queued
        one by one while its upload goes on, and a reader should not wait a second for
        the next one."""
        workers = workers or self.settings.worker_threads or default_threads()
        return self.huey.create_consumer(workers=workers, worker_type="thread", periodic=True,
                                         initial_delay=0.05, backoff=1.3, max_delay=MAX_POLL_DELAY,
                                         check_worker_health=True)

    def _dispatch(self, name: str, *args) -> None:
        HANDLERS[name](self, *args)

    def _send_mail(self, item) -> None:
        """One message of the circuit's outbox (``circuit.mailing`` registers the handler),
        retried by the queue on failure."""
        HANDLERS[MAIL_TASK](self, item)

    def _on_start(self) -> None:
        """Huey calls it in every consumer thread: the :data:`AT_START` work runs once."""
        with self._start_lock:
            first, self._started = not self._started, True
        if first:
            _run_each(AT_START, self, "at_start_failed")

    def _daily(self) -> None:
        if _once_per(self.huey, "daily", 86400):
            _run_each(DAILY, self, "daily_failed")

    def _every_minute(self) -> None:
        if _once_per(self.huey, "every_minute", 60):
            _run_each(PERIODIC, self, "periodic_failed")


def default_threads() -> int:
    """A consumer's threads: two jobs per core. Each thread reads one job at a time in the
    process's sandbox (one reader process per core), so while a job claims its files or
    writes its records, the next job's files wait in the sandbox and no reader idles."""
    import os
    return 2 * max(1, os.cpu_count() or 1)


@lru_cache(maxsize=8)
def _queue_for(settings: Settings) -> DeskQueue:
    return DeskQueue(settings)


def get_queue(settings: Settings) -> DeskQueue:
    """The process's queue for these settings."""
    return _queue_for(settings)

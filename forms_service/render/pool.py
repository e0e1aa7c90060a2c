"""The warm LibreOffice pool: N unoserver + LibreOffice instances converting DOCX to PDF.

A new ``soffice --convert-to pdf`` process costs ~0.8 s per document; a LibreOffice
that is already running converts the same document in ~0.12 s. :class:`ConverterPool`
keeps N instances (:mod:`~forms_service.render.pool_instance`) running:

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
  are not all restarted at once;
* :meth:`ConverterPool.status` is the readiness check (counts, no pids, ports or paths;
  at most one test conversion per ``probe_interval``); :meth:`ConverterPool.close`
  leaves no process behind, from a thread, ``atexit`` or a signal handler.

The app creates its pool and closes it (``docs/pdf-conversion.md``)."""

from __future__ import annotations

import atexit
import fcntl
import logging
import os
import shutil
import threading
import time
import weakref
import xmlrpc.client
from collections import deque
from pathlib import Path

from forms_service.errors import ComponentMissing, FormsError

from .conversion import (ConversionFailed, ConversionTimeout, check_docx, check_pdf,
                         pdf_page_count, test_docx)
from .convert_cold import cold_convert
from .pool_instance import (FAULT_OF_INSTANCE, STOP_GRACE, Aborted, Instance,
                            InstanceFailure, StartFailed, unoserver_client_class)
from .soffice import MSG_MISSING, MSG_NO_START, find_soffice
from .uno_env import resolve_server_python

log = logging.getLogger(__name__)

MSG_CLOSED = "Le service de conversion PDF est arrêté."

DEFAULT_TIMEOUT = 60.0          # seconds for one conversion attempt
DEFAULT_START_TIMEOUT = 90.0    # seconds for one instance to become ready (unoserver 3.7: ~10 s)
DEFAULT_QUEUE_TIMEOUT = 120.0   # seconds a conversion may wait for a free instance
DEFAULT_RECYCLE_AFTER = 300     # conversions per LibreOffice process
DEFAULT_PROBE_INTERVAL = 60.0   # status(): at most one test conversion per this many seconds

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
    Thread-safe. An app creates its own and closes it (``pool_registry.get_pool``: shared).
    """

    def __init__(self, size: int | None = None, work_dir: str | os.PathLike = "var/lo", *,
                 soffice: str | os.PathLike | None = None,
                 uno_python: str | os.PathLike | None = None,
                 base_port: int | None = None,
                 recycle_after: int | None = DEFAULT_RECYCLE_AFTER,
                 start_timeout: float = DEFAULT_START_TIMEOUT,
                 queue_timeout: float = DEFAULT_QUEUE_TIMEOUT,
                 cold_fallback: bool = True,
                 probe_interval: float = DEFAULT_PROBE_INTERVAL):
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
        self.probe_interval = probe_interval
        self.mode = "stopped"           # stopped | pool | cold
        self.stats = {"conversions": 0, "retries": 0, "timeouts": 0, "failures": 0,
                      "restarts": 0, "recycles": 0}
        self._reset_state()
        _POOLS.add(self)

    def _reset_state(self) -> None:
        self._pid = os.getpid()
        self._start_lock = threading.Lock()
        # Reentrant: close() from a signal handler may interrupt this thread holding it.
        self._cond = threading.Condition(threading.RLock())
        self._instances: list[Instance] = []
        self._idle: deque[Instance] = deque()
        self._threads: set[threading.Thread] = set()
        self._cold_slots: threading.BoundedSemaphore | None = None
        self._soffice = ""
        self._server_python = ""
        self._client_class = None
        self._started = False
        self._starting = False
        self._start_error = ""          # why the last start failed (French, for status)
        self._last_success: float | None = None   # monotonic time of the last good PDF
        self._probe_at: float | None = None       # of status()'s last test conversion
        self._probe_error = ""
        self._probing = False
        self._closing_thread: int | None = None
        self._close_done = threading.Event()
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
            self._starting = True
            try:
                self._start_instances()
            except FormsError as exc:
                self._start_error = exc.message
                raise
            finally:
                self._starting = False
            self._start_error = ""
            return self

    def _start_instances(self) -> None:
        """The body of :meth:`start`, called once with ``_start_lock`` held."""
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
            return
        self._client_class = unoserver_client_class()
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

    def _claim_slots(self) -> list[Instance]:
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
                instances.append(Instance(self, len(instances), slot, fd))
            n += 1
        return instances

    def _recycle_limit(self, inst: Instance) -> int | None:
        if not self.recycle_after:
            return None
        if inst.generation <= 1:  # staggered first limits: instances do not recycle together
            return max(1, self.recycle_after * (inst.index + 1) // self.size)
        return self.recycle_after

    def _start_one(self, inst: Instance, deadline: float, final: bool = True) -> bool:
        """Start ``inst``; on failure it is "broken" if ``final``, else stays "starting"."""
        inst.state = "starting"
        try:
            inst.start(deadline)
        except Aborted:
            inst.stop()
            inst.state = "stopped"
            return False
        except (StartFailed, OSError) as exc:
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
        self._last_success = time.monotonic()  # its readiness test was a conversion
        return True

    # -- restarts (background)
    def _restart_async(self, inst: Instance, reason: str, graceful: bool = False) -> None:
        """Called with ``self._cond`` held; the instance is out of the idle queue."""
        inst.state = "starting"
        self.stats["recycles" if reason == "recycle" else "restarts"] += 1
        t = threading.Thread(target=self._restart, args=(inst, reason, graceful),
                             name=f"pdf-restart-{inst.index}", daemon=True)
        self._threads.add(t)
        t.start()

    def _restart(self, inst: Instance, reason: str, graceful: bool) -> None:
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
    def _acquire(self, deadline: float) -> Instance:
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

    def _release(self, inst: Instance) -> None:
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

    def _fail(self, inst: Instance, why: str) -> None:
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
        check_docx(docx)
        self._check_fork()
        if not self._started:
            self.start()
        if self.mode == "cold":
            return self._cold_convert(docx, timeout)
        deadline = time.monotonic() + self.queue_timeout + (timeout or 0)
        failure: InstanceFailure | None = None
        for attempt in (1, 2):
            inst = self._acquire(deadline)
            try:
                pdf = inst.call(docx, timeout)
            except InstanceFailure as exc:
                failure = exc
                if exc.timed_out:
                    self._count("timeouts")
                self._fail(inst, str(exc))
            except xmlrpc.client.Fault as fault:
                if not inst.alive() or any(m in fault.faultString for m in FAULT_OF_INSTANCE):
                    failure = InstanceFailure(f"fault from a dying instance: {fault.faultString}")
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
                pdf = check_pdf(pdf)
                self._succeeded()
                return pdf
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
        self._succeeded()
        return pdf

    def _succeeded(self) -> None:
        self._last_success = time.monotonic()
        self._probe_error = ""

    def _count(self, key: str) -> None:
        with self._cond:
            self.stats[key] += 1

    # -- state
    def instances(self) -> list[dict]:
        """State of each instance with pids, ports and paths: for tests and operators only."""
        return [inst.info() for inst in list(self._instances)]

    def process_ids(self) -> list[int]:
        """Every live process the pool started (servers and LibreOffice)."""
        return sorted({pid for inst in list(self._instances) for pid in inst.process_ids()})

    def test_print(self, timeout: float = 30) -> dict:
        """A real test print now: convert a tiny DOCX, read its pages back with pypdf.

        Starts a stopped pool. Never raises; ``{"ok", "pages", "elapsed_ms"[, "error"]}``.
        """
        t0 = time.monotonic()
        result: dict = {"ok": False}
        try:
            pages = pdf_page_count(self.convert(test_docx(), timeout=timeout))
            result.update(ok=pages >= 1, pages=pages)
        except FormsError as exc:
            result["error"] = exc.message
        except Exception as exc:  # an unreadable PDF, for instance
            log.warning("test print unreadable: %s", type(exc).__name__)
            result["error"] = "Le PDF d'essai est illisible."
        result["elapsed_ms"] = round((time.monotonic() - t0) * 1000, 1)
        return result

    def status(self) -> dict:
        """The pool's state, for the readiness check: counts only, no pids, ports or paths.

        Never starts a stopped pool and never raises. A test print is run at most once
        per ``probe_interval`` seconds, and only when no conversion succeeded within it
        and an instance is idle (a busy pool proves itself with real documents).
        ``{"ok", "mode", "instances": {"configured", "ready", "busy", "starting",
        "broken"}, "conversions", "failures", "restarts", "recycles",
        "last_success_age_s"[, "detail"][, "error"]}``.
        """
        self._probe_if_due()
        with self._cond:
            states = [inst.state for inst in self._instances]
            last = self._last_success
            result: dict = {
                "ok": False, "mode": self.mode,
                "instances": {"configured": self.size, "ready": states.count("idle"),
                              "busy": states.count("busy"),
                              "starting": states.count("starting"),
                              "broken": states.count("broken")},
                **{k: self.stats[k] for k in ("conversions", "failures", "restarts", "recycles")},
                "last_success_age_s": None if last is None else round(time.monotonic() - last, 1),
            }
        if self.closed:
            result["error"] = MSG_CLOSED
        elif self._starting:
            result["detail"] = "démarrage en cours"
        elif self.mode == "stopped":
            if self._start_error:
                result["error"] = self._start_error
            elif find_soffice(self.soffice) is None:
                result["error"] = MSG_MISSING
            else:
                result.update(ok=True, detail="démarrage à la première conversion")
        elif self._probe_error:
            result["error"] = self._probe_error
        elif self.mode == "cold":
            result["ok"] = True
        else:
            working = result["instances"]["ready"] + result["instances"]["busy"]
            result["ok"] = working > 0
            if not working:
                result["error"] = MSG_NO_START
        return result

    def _probe_if_due(self) -> None:
        now = time.monotonic()
        with self._cond:
            if self.closed or self.mode == "stopped" or self._probing or (
                    self.mode == "pool" and not self._idle):
                return
            for t in (self._last_success, self._probe_at):
                if t is not None and now - t < self.probe_interval:
                    return
            self._probing, self._probe_at = True, now
        try:
            result = self.test_print()
        finally:
            with self._cond:
                self._probing = False
        if not result["ok"]:
            self._probe_error = result.get("error") or "Le PDF d'essai n'a pas de page."
            log.warning("LibreOffice test print failed")

    # -- stop
    def close(self) -> None:
        """Stop every instance and release the slots; no unoserver or LibreOffice is left.

        Each instance's server gets a SIGTERM (then SIGKILL after ``STOP_GRACE``), and every
        process of its group and tree, and every LibreOffice pid it was seen with, is
        killed. Idempotent; a second caller waits for the first one to finish. Safe from
        ``atexit`` and from a signal handler: one interrupting a close() under way in the
        same thread kills everything at once. A pool inherited through fork() leaves its
        parent's instances alone.
        """
        if os.getpid() != self._pid:
            return
        with self._cond:
            first = not self.closed
            self.closed = True
            self._cond.notify_all()
            threads = list(self._threads)
        if not first:
            if self._closing_thread == threading.get_ident() and not self._close_done.is_set():
                for inst in list(self._instances):
                    inst.kill_now()
            else:
                self._close_done.wait(2 * STOP_GRACE + 30)
            return
        self._closing_thread = threading.get_ident()
        try:
            self._stop_instances(threads)
        finally:
            self._close_done.set()

    def _stop_instances(self, threads: list[threading.Thread]) -> None:
        instances = list(self._instances)
        # In parallel; one SIGTERM each (a second one can wedge unoserver's signal handler).
        stoppers = [threading.Thread(target=inst.stop, kwargs={"graceful": True}, daemon=True)
                    for inst in instances]
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join(timeout=STOP_GRACE + 15)
        for t in threads:
            t.join(timeout=STOP_GRACE + 10)
        for inst in instances:
            # Whatever a restart thread spawned meanwhile; without waiting for a lock that
            # the thread a signal interrupted may hold.
            inst.stop(lock_timeout=STOP_GRACE)
            inst.state = "stopped"
            try:
                os.close(inst.lock_fd)
            except OSError:
                pass
        self._idle.clear()
        self.mode = "stopped"
        if instances:
            log.info("PDF converter pool stopped (%d instances)", len(instances))

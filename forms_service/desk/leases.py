"""Leases naming a queue worker: who holds a job's work, and whether they still run.

    holder = me()                 # "host:pid:start" of this process
    alive(holder)                 # False once that process is gone (kill -9) on this host
    aware(row.claimed_until)      # a database time, with its time zone (SQLite drops it)

Reading jobs (``desk.reading``: a batch's files) and render jobs (``render.jobs``) write
their holder and a time limit on the row they work on; a sweep (at every consumer's start,
then every minute) queues again the work whose holder is gone or whose lease expired.
"""

from __future__ import annotations

import socket
from datetime import datetime, timezone

import psutil


def me() -> str:
    p = psutil.Process()
    return f"{socket.gethostname()}:{p.pid}:{int(p.create_time())}"


def alive(holder: str | None) -> bool:
    """Whether the worker named by a lease still runs (only known for this host)."""
    if not holder:
        return False
    try:
        host, pid, started = holder.rsplit(":", 2)
    except ValueError:
        return False
    if host != socket.gethostname():
        return True   # another machine's: its lease expires on its own
    try:
        proc = psutil.Process(int(pid))
        return proc.is_running() and int(proc.create_time()) == int(started) and \
            proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, ValueError):
        return False


def aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def held(holder: str | None, until: datetime | None, now: datetime, *, by: str) -> bool:
    """Whether another live worker than ``by`` holds this lease, still valid at ``now``."""
    return bool(holder) and holder != by and alive(holder) and until is not None and aware(until) > now


def lost(holder: str | None, until: datetime | None, now: datetime) -> bool:
    """Whether claimed work is lost: its holder is gone, or its lease expired."""
    return not alive(holder) or (until is not None and aware(until) < now)

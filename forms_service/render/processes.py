"""The processes a conversion runs: LibreOffice under unoserver or ``soffice``, found and
stopped with psutil.

Each unoserver (or cold ``soffice``) is started in a new session, so it leads its own
process group and LibreOffice (``oosplash``, ``soffice.bin``) joins it. A member is
found by its group *or* as a descendant of the leader: a LibreOffice whose parent died
may have been reparented away from the tree, one that called ``setsid`` leaves the
group, and neither escapes both.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import psutil


def _live(proc: psutil.Process) -> bool:
    try:
        return proc.status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.Error:
        return False


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group ``pgid``."""
    members = []
    for pid in psutil.pids():
        try:
            if os.getpgid(pid) == pgid and _live(psutil.Process(pid)):
                members.append(pid)
        except (OSError, psutil.Error):
            continue
    return members


def descendants(pid: int) -> list[int]:
    """Live descendants of ``pid`` (children, recursively); [] when ``pid`` is gone."""
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []
    return [c.pid for c in children if _live(c)]


def members(leader: int) -> list[int]:
    """Live processes of ``leader``'s group and tree, the leader included while it lives."""
    found = set(group_members(leader)) | set(descendants(leader))
    try:
        if _live(psutil.Process(leader)):
            found.add(leader)
    except psutil.Error:
        pass
    return sorted(found)


def name_of(pid: int) -> str:
    """The process's name (``soffice.bin``, ``oosplash``, ``python3``...), "" when gone."""
    try:
        return psutil.Process(pid).name()
    except psutil.Error:
        return ""


def cmdline_of(pid: int) -> str:
    try:
        return " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:
        return ""


def alive(pids) -> list[int]:
    """Those of ``pids`` that still run (zombies are not running)."""
    out = []
    for pid in pids:
        try:
            if _live(psutil.Process(pid)):
                out.append(pid)
        except psutil.Error:
            continue
    return out


def _signal(pids, sig) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def kill_group(leader: int, *, grace: float = 0.0, proc: subprocess.Popen | None = None,
               known: tuple[int, ...] = ()) -> bool:
    """Stop ``leader`` (an unoserver or a ``soffice``), its group and its tree.

    In an order that lets each parent reap its child (no zombies left to an init that
    may not reap them): with ``grace``, SIGTERM to the leader only (unoserver forwards
    it to LibreOffice and exits; a SIGTERM to the whole group can leave ``oosplash``
    hanging), then SIGKILL to ``soffice.bin`` (``oosplash`` and unoserver then exit by
    themselves), and last SIGKILL to every member left. ``known`` adds pids seen earlier
    (LibreOffice recorded while it ran). Reaps ``proc`` (our direct child). Returns
    True when none is left. Takes no lock: callable from a signal handler.
    """
    seen = set(known)

    def left() -> list[int]:
        if proc is not None:
            proc.poll()  # reap our child, or it stays a zombie member
        now = members(leader)
        seen.update(now)
        return alive(seen)

    def gone_within(seconds: float) -> bool:
        end = time.monotonic() + seconds
        while True:
            if not left():
                return True
            if time.monotonic() >= end:
                return False
            time.sleep(0.05)

    if not left():
        return True
    if grace > 0:
        _signal([leader], signal.SIGTERM)
        if gone_within(grace):
            return True
    lo = [pid for pid in left() if name_of(pid) == "soffice.bin"]
    if lo:
        _signal(lo, signal.SIGKILL)
        if gone_within(3.0):
            return True
    try:
        os.killpg(leader, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    _signal(left(), signal.SIGKILL)
    ok = gone_within(5.0)
    if proc is not None:
        try:
            proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            pass
    return ok

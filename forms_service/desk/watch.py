"""Watched folders: a scanner writes into ``<FORMS_SERVICE_WATCH_DIR>/<territory code>/``.

:func:`poll` (the queue's periodic task, once a minute whatever the number of workers,
or ``forms-service batch watch``) takes each file once it is complete: its modification
time at least ``FORMS_SERVICE_WATCH_SETTLE_SECONDS`` old and its size the same as at the
previous poll when it was seen before — a file still being written keeps changing; a
file renamed into place (written as ``.part``/``.tmp`` or a dot-file first, ignored until
renamed) is complete at once. A taken file goes through the one code path
(:func:`forms_service.desk.batches.receive`, source ``folder``), then is moved to
``<territory>/.traites/<batch>-<name>``; a crash between the two only makes it taken
again, recognised then as a file already received (no second record).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from forms_service.config import Settings
from forms_service.desk.queue import periodic
from forms_service.directory.models import TERRITORY_CODES
from forms_service.logging_setup import get_logger
from forms_service.principal import Principal

log = get_logger(__name__)

DONE_DIR = ".traites"
IGNORED_SUFFIXES = (".part", ".tmp", ".crdownload")

#: (path) → (size, mtime_ns) at the previous poll, in this process.
_seen: dict[str, tuple[int, int]] = {}


def folder_principal(territoire: str) -> Principal:
    """Who submits a watched folder's files: the département's scanner for that territory."""
    return Principal(actor=f"dossier:{territoire}", scopes=frozenset({"parse"}), territoire=territoire)


def ready(path: Path, settle: float, now: float | None = None) -> bool:
    """Whether a watched file is complete (see the module's docstring)."""
    st = path.stat()
    now = time.time() if now is None else now
    key, current = str(path), (st.st_size, st.st_mtime_ns)
    previous = _seen.get(key)
    _seen[key] = current
    if now - st.st_mtime < settle:
        return False
    return previous is None or previous == current


def candidates(settings: Settings) -> list[tuple[str, Path]]:
    root = Path(settings.watch_dir) if settings.watch_dir else None
    if root is None or not root.is_dir():
        return []
    out = []
    for territory in sorted(TERRITORY_CODES):
        folder = root / territory
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.is_file() and not path.name.startswith(".") and not path.name.endswith(IGNORED_SUFFIXES):
                out.append((territory, path))
    return out


def poll(settings: Settings, *, queue=None, database=None) -> list[int]:
    """Take every complete file of the watched folders; returns the batches made."""
    from forms_service.desk.batches import Upload, receive

    made = []
    for territory, path in candidates(settings):
        try:
            if not ready(path, settings.watch_settle_seconds):
                continue
        except FileNotFoundError:   # moved away meanwhile
            continue
        try:   # stored by chunks from the file itself
            batch = receive(settings, folder_principal(territory), [Upload(path.name, path)], territory,
                            source="folder", database=database, queue=queue)
        except FileNotFoundError:
            continue
        done = path.parent / DONE_DIR
        done.mkdir(exist_ok=True)
        os.replace(path, done / f"{batch.id}-{path.name}")
        _seen.pop(str(path), None)
        made.append(batch.id)
        log.info("watched_file_taken", batch=batch.id, territoire=territory)
    return made


@periodic
def _watch_task(queue) -> None:
    if queue.settings.watch_dir:
        poll(queue.settings, queue=queue)

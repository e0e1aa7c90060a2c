"""Received files, stored before any reading, by their content (SHA-256).

    sha, rel, size = put_upload(settings, Upload(name, fh))   # by chunks, hashed on the way
    spool = Spool(settings); spool.write(chunk); spool.keep()  # the same, as an HTTP part arrives
    sha, rel = put(settings, data)       # <storage>/desk/ab/abcdef…  (written once, atomically)
    data = get(settings, rel)

The same bytes received twice are one stored file; the rows that name it
(:class:`~forms_service.desk.models.BatchFile`) say which batch received which copy.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from forms_service.config import Settings
from forms_service.errors import PayloadTooLarge

ROOT = "desk"


#: Bytes copied at a time: a received file is never held whole in memory.
CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Upload:
    """A file as received: the name it was sent under, and its content — bytes, a path
    (the command line, a watched folder) or an open binary file (an HTTP upload, which
    Werkzeug spools to disk), read by chunks when stored."""

    name: str
    source: bytes | Path | BinaryIO

    @property
    def data(self) -> bytes:
        """The whole content (for readers that need it: ``POST /parse``)."""
        if isinstance(self.source, bytes):
            return self.source
        with self.open() as fh:
            return fh.read()

    def size(self) -> int:
        """The content's length, without reading it."""
        if isinstance(self.source, bytes):
            return len(self.source)
        if isinstance(self.source, Path):
            return self.source.stat().st_size
        fh = self.source
        at = fh.tell()
        fh.seek(0, os.SEEK_END)
        end = fh.tell()
        fh.seek(at)
        return end

    @contextmanager
    def open(self) -> Iterator[BinaryIO]:
        if isinstance(self.source, bytes):
            yield io.BytesIO(self.source)
        elif isinstance(self.source, Path):
            with open(self.source, "rb") as fh:
                yield fh
        else:
            self.source.seek(0)
            yield self.source


def page_count(source: bytes | Path, kind: str) -> int:
    """How many pages a file (bytes or a stored path) holds, without reading them; raises
    on an unreadable file."""
    if kind in ("jpeg", "png"):
        return 1
    if kind == "tiff":
        from PIL import Image
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
            return int(getattr(im, "n_frames", 1))
    from forms_service.pdfpages import open_pdf
    with open_pdf(source) as pdf:
        return len(pdf)


def head(settings: Settings, rel: str, n: int = 1024) -> bytes:
    """The first ``n`` bytes of a stored file (what says its kind)."""
    with open(path(settings, rel), "rb") as fh:
        return fh.read(n)


class Spool:
    """One file being received, written straight under the storage root while hashed:

        spool = Spool(settings, limit=...)
        spool.write(chunk)            # as the bytes arrive (an HTTP part, a file read by chunks)
        sha, rel, size = spool.keep() # fsync once, renamed to its content's name
        spool.discard()               # or: nothing kept (an upload that broke, a limit passed)

    A ``.part`` file until kept: never a half-written file under its final name, and no
    second copy. More than ``limit`` bytes: discarded, :class:`PayloadTooLarge`."""

    def __init__(self, settings: Settings, *, limit: int | None = None):
        self.settings, self.limit = settings, limit
        root = Path(settings.storage_dir) / ROOT
        root.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".upload.", suffix=".part", dir=root)
        self._tmp = Path(tmp_name)
        self._out = os.fdopen(fd, "wb")
        self._digest = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.limit is not None and self.size > self.limit:
            self.discard()
            raise PayloadTooLarge(too_large_message(self.size, self.limit), path="files")
        self._digest.update(chunk)
        self._out.write(chunk)

    def keep(self) -> tuple[str, str, int]:
        """fsync, then under ``desk/<sha[:2]>/<sha>`` (once: the same bytes kept before
        stay); returns (sha256, path relative to the storage root, size)."""
        try:
            self._out.flush()
            os.fsync(self._out.fileno())
            self._out.close()
            sha = self._digest.hexdigest()
            rel = f"{ROOT}/{sha[:2]}/{sha}"
            target = Path(self.settings.storage_dir) / rel
            if target.is_file():
                self._tmp.unlink()
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(self._tmp, target)   # never a half-written file under its final name
            return sha, rel, self.size
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        if not self._out.closed:
            self._out.close()
        self._tmp.unlink(missing_ok=True)


def put_upload(settings: Settings, upload: Upload, *, limit: int | None = None) -> tuple[str, str, int]:
    """Store an upload by chunks while hashing it; returns (sha256, relative path, size).
    More than ``limit`` bytes: nothing kept, :class:`PayloadTooLarge`."""
    spool = Spool(settings, limit=limit)
    try:
        with upload.open() as src:
            while chunk := src.read(CHUNK):
                spool.write(chunk)
    except BaseException:
        spool.discard()
        raise
    return spool.keep()


def too_large_message(size: int, limit: int) -> str:
    return f"Lot trop volumineux ({size // 1024 ** 2} Mio ; {limit // 1024 ** 2} Mio au plus)"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def put(settings: Settings, data: bytes, *, digest: str | None = None) -> tuple[str, str]:
    """Store ``data`` (once) and return (sha256, path relative to the storage root)."""
    digest = digest or sha256(data)
    rel = f"{ROOT}/{digest[:2]}/{digest}"
    target = Path(settings.storage_dir) / rel
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{digest}.{os.getpid()}.part")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)   # never a half-written file under its final name
    return digest, rel


def path(settings: Settings, rel: str) -> Path:
    return Path(settings.storage_dir) / rel


def get(settings: Settings, rel: str) -> bytes:
    return path(settings, rel).read_bytes()

"""Received files, stored before any reading, by their content (SHA-256).

    sha, rel = put(settings, data)       # <storage>/desk/ab/abcdef…  (written once, atomically)
    data = get(settings, rel)

The same bytes received twice are one stored file; the rows that name it
(:class:`~forms_service.desk.models.BatchFile`) say which batch received which copy.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

from forms_service.config import Settings

ROOT = "desk"


@dataclass(frozen=True)
class Upload:
    """A file as received: the name it was sent under, its bytes."""

    name: str
    data: bytes



def page_count(data: bytes, kind: str) -> int:
    """How many pages a file holds (without reading them); raises on an unreadable file."""
    if kind in ("jpeg", "png"):
        return 1
    if kind == "tiff":
        from PIL import Image
        with Image.open(io.BytesIO(data)) as im:
            return int(getattr(im, "n_frames", 1))
    from forms_service.pdfpages import open_pdf
    with open_pdf(data) as pdf:
        return len(pdf)


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

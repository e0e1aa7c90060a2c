"""Turn returned files into records: the one entry point of the parsers.

A file is read by the first reader that applies: an AcroForm PDF by its
fields, a digital PDF by its text, anything else (image PDFs, TIFF, JPEG, PNG)
by the scan pipeline. Each reader yields readings by path; reconciliation with
the issued document adds what was printed but cannot be read back (pre-filled
text on a scan), and :func:`parsers.record.make_record` validates the result.

A file that cannot be read gets an error entry, never an exception out of
:func:`parse_files`: one bad file in a batch of a hundred does not lose the others.
The one exception is a database that cannot be read (:class:`DatabaseUnavailable`,
503): then no file can be reconciled, and the call fails.
"""

from __future__ import annotations

from dataclasses import dataclass

from forms_service.errors import BadDocument, DatabaseUnavailable, FormsError

from . import reconcile
from .acroform import parse_acroform
from .failures import error_of, log_failure
from .pdf_text import parse_pdf_text
from .record import make_record
from .scan.batch import ScanBatch
from .store import Store

MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_PAGES = 200

MAGIC = {
    b"%PDF": "pdf",
    b"II*\x00": "tiff",
    b"MM\x00*": "tiff",
    b"\xff\xd8\xff": "jpeg",
    b"\x89PNG": "png",
}


def kind_of(data: bytes) -> str:
    head = data[:1024]
    if b"%PDF" in head:
        return "pdf"
    for magic, kind in MAGIC.items():
        if data.startswith(magic):
            return kind
    raise BadDocument("Format de fichier non pris en charge (PDF, TIFF, JPEG ou PNG attendu)",
                      rule="format_non_pris_en_charge")


@dataclass
class Limits:
    max_bytes: int = MAX_FILE_BYTES
    max_pages: int = MAX_PAGES
    #: Who the reading is for (``forms_service.principal.Principal``): reconciliation only
    #: uses the issued documents it may see (``Store.for_principal``). ``None``: every document.
    principal: object = None
    #: Also hand back each scanned file's page image digests: one entry
    #: ``{"file", "page_digests": {file page: sha256 of its grey pixels}}`` per file (the
    #: desk keeps them for twin pages across files, :mod:`forms_service.desk.twins`).
    page_digests: bool = False


def _check(data: bytes, limits: Limits) -> str:
    """The file's kind, once its size is acceptable (raises BadDocument)."""
    if len(data) > limits.max_bytes:
        raise BadDocument(f"Fichier trop volumineux ({len(data) // 1024} Kio ; "
                          f"{limits.max_bytes // 1024} Kio au plus)", rule="taille_maximale")
    if not data:
        raise BadDocument("Fichier vide", rule="fichier_vide")
    return kind_of(data)


def _digital(name: str, data: bytes, kind: str, store: Store) -> list[dict] | None:
    """The record of a PDF with form fields or a text layer, or None (then it is a scan)."""
    if kind != "pdf":
        return None
    found = parse_acroform(data)
    if found is not None:
        return [_record(found, "acroform", name, "metadata", store)]
    found = parse_pdf_text(data, store)
    if found is not None and found["readings"]:
        return [_record(found, "pdf-text", name, found.get("identified_by", "text"), store)]
    return None


def _record(found: dict, source: str, name: str, identified_by: str, store: Store) -> dict:
    fd = found["form"]
    issued = store.issued_data(found.get("document_id"))
    readings = reconcile.reconcile(fd, found["readings"], issued)
    pages = [{"number": i + 1, "file": name, "file_page": i + 1, "rotation": 0,
              "identified_by": identified_by} for i in range(found.get("page_count", 0))]
    return make_record(fd, source=source, readings=readings, pages=pages,
                       document_id=found.get("document_id"),
                       template_version=found.get("template_version"), rows=found.get("rows"))


def _error(name: str, index: int, exc: BaseException) -> dict:
    if not isinstance(exc, (FormsError, MemoryError)):   # a reader's bug or a hostile file
        log_failure("parse_file_failed", exc, file_index=index)
    return {"file": name, "error": error_of(exc)}


def parse_files(files: list[tuple[str, bytes]], limits: Limits | None = None, *, store: Store) -> list[dict]:
    """Records of every file, and ``{"file", "error": {"rule", "message"}}`` for each unreadable one.

    ``store`` is the caller's (its settings, database and converter pool). A database
    that cannot be read fails the call (:class:`DatabaseUnavailable`): reading on without
    the issued documents would give their pre-filled values as confident blanks.

    Scanned pages are grouped by document across the files (one JPEG per page makes
    one record); a record comes at the place of its first file. At most
    ``limits.max_pages`` scanned pages are held at once: beyond, the documents read so
    far are finished and a new group starts.
    """
    limits = limits or Limits()
    if limits.principal is not None:
        store = store.for_principal(limits.principal)
    return store.withhold(_parse_files(files, limits, store))


def _parse_files(files: list[tuple[str, bytes]], limits: Limits, store: Store) -> list[dict]:
    slots: list[list[dict]] = [[] for _ in files]
    index = {name: i for i, (name, _) in reversed(list(enumerate(files)))}
    batch = ScanBatch(store)

    def flush(b: ScanBatch) -> None:
        try:
            results = b.results()
        except DatabaseUnavailable:
            raise
        except Exception as exc:   # never lose the other files (MemoryError included)
            for name in b.files():
                slots[index[name]].append(_error(name, index[name], exc))
            return
        for item in results:
            if "fields" in item:   # a record: at the place of its first file
                first = min((p["file"] for p in item["pages"]), key=lambda n: index.get(n, 0))
            else:
                first = item["file"]
            slots[index.get(first, 0)].append(item)

    for i, (name, data) in enumerate(files):
        try:
            kind = _check(data, limits)
            found = _digital(name, data, kind, store)
            if found is not None:
                slots[i].extend(found)
                continue
            if batch.pages >= limits.max_pages:
                flush(batch)
                batch = ScanBatch(store)
            batch.add_file(name, data, kind, max_pages=limits.max_pages)
            if limits.page_digests and name in batch.page_digests:
                slots[i].append({"file": name, "page_digests": batch.page_digests[name]})
        except DatabaseUnavailable:
            raise
        except Exception as exc:   # MemoryError included
            slots[i].append(_error(name, i, exc))
    flush(batch)
    return [item for slot in slots for item in slot]

"""Turn returned files into records: the one entry point of the parsers.

A file is read by the first reader that applies: an AcroForm PDF by its
fields, a digital PDF by its text, anything else (image PDFs, TIFF, JPEG, PNG)
by the scan pipeline. Each reader yields readings by path; reconciliation with
the issued document adds what was printed but cannot be read back (pre-filled
text on a scan), and :func:`parsers.record.make_record` validates the result.

A file that cannot be read gets an error entry, never an exception out of
:func:`parse_files`: one bad file in a batch of a hundred does not lose the others.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from forms_service.catalogue import FormDefinition
from forms_service.errors import BadDocument, FormsError

from . import store
from .acroform import field_of
from .record import Reading, flatten, make_record

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
    #: uses the issued documents it may see (``store.CALLER``). ``None``: every document.
    principal: object = None


def reconcile(fd: FormDefinition, readings: dict[str, Reading], document_id: str | None,
              source: str) -> dict[str, Reading]:
    """Pre-filled values from the issued document where the returned form says nothing.

    What was ticked, signed or written on the returned form wins; facts a form
    cannot show (attachments, ``tri`` fields) stay as read: unknown until a
    person confirms them.
    """
    doc = store.issued_data(document_id)
    if not doc or doc.get("form") != fd.id:
        return readings
    printed = flatten(fd.model.model_validate(doc["data"] or {}).model_dump(mode="json"))
    out = dict(readings)
    for path, value in printed.items():
        f = field_of(fd, path)
        if f is None or f.type == "tri" or path.endswith(".signee"):
            continue
        if value is None or value is False or value == "" or value == []:
            continue   # (0 is a value: ``0 in (False,)`` is true in Python)
        r = out.get(path)
        if r is None or (r.value in (None, "", []) and not r.needs_review and f.type not in ("bool", "choice", "multi")):
            out[path] = Reading(_typed(f, value), 1.0, evidence=r.evidence if r else [],
                                reason=None)
    return out


def _typed(f, value):
    if f.type == "date" and isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            return value
    return value


def _check(data: bytes, limits: Limits) -> str:
    """The file's kind, once its size is acceptable (raises BadDocument)."""
    if len(data) > limits.max_bytes:
        raise BadDocument(f"Fichier trop volumineux ({len(data) // 1024} Kio ; "
                          f"{limits.max_bytes // 1024} Kio au plus)", rule="taille_maximale")
    if not data:
        raise BadDocument("Fichier vide", rule="fichier_vide")
    return kind_of(data)


def _digital(name: str, data: bytes, kind: str) -> list[dict] | None:
    """The record of a PDF with form fields or a text layer, or None (then it is a scan)."""
    if kind != "pdf":
        return None
    from .acroform import parse_acroform
    found = parse_acroform(data)
    if found is not None:
        return [_record(found, "acroform", name, "metadata")]
    from .pdf_text import parse_pdf_text
    found = parse_pdf_text(data, layout_lookup=store.layout_for)
    if found is not None and found["readings"]:
        return [_record(found, "pdf-text", name, found.get("identified_by", "text"))]
    return None


def parse_bytes(name: str, data: bytes, limits: Limits | None = None) -> list[dict]:
    """The records in one file (a scan may hold several forms). Raises BadDocument."""
    limits = limits or Limits()
    token = store.CALLER.set(limits.principal)
    try:
        kind = _check(data, limits)
        found = _digital(name, data, kind)
        if found is None:
            from .scan.pipeline import parse_scan
            found = parse_scan(name, data, kind, max_pages=limits.max_pages)
        return store.withhold(found)
    finally:
        store.CALLER.reset(token)


def _record(found: dict, source: str, name: str, identified_by: str) -> dict:
    fd = found["form"]
    readings = reconcile(fd, found["readings"], found.get("document_id"), source)
    pages = [{"number": i + 1, "file": name, "file_page": i + 1, "rotation": 0,
              "identified_by": identified_by} for i in range(found.get("page_count", 0))]
    return make_record(fd, source=source, readings=readings, pages=pages,
                       document_id=found.get("document_id"),
                       template_version=found.get("template_version"), rows=found.get("rows"))


def _error(name: str, exc: BaseException) -> dict:
    if isinstance(exc, FormsError):
        return {"file": name, "error": {"rule": exc.problems[0].rule, "message": exc.message}}
    if isinstance(exc, MemoryError):
        return {"file": name, "error": {"rule": "document_trop_gros",
                                        "message": "Document trop gros pour être lu"}}
    # a reader's bug or a hostile file: report it, keep the batch
    return {"file": name, "error": {"rule": "document_illisible",
                                    "message": f"Document illisible ({exc.__class__.__name__})"}}


def parse_files(files: list[tuple[str, bytes]], limits: Limits | None = None) -> list[dict]:
    """Records of every file, and ``{"file", "error": {"rule", "message"}}`` for each unreadable one.

    Scanned pages are grouped by document across the files (one JPEG per page makes
    one record); a record comes at the place of its first file. At most
    ``limits.max_pages`` scanned pages are held at once: beyond, the documents read so
    far are finished and a new group starts.
    """
    limits = limits or Limits()
    token = store.CALLER.set(limits.principal)
    try:
        return store.withhold(_parse_files(files, limits))
    finally:
        store.CALLER.reset(token)


def _parse_files(files: list[tuple[str, bytes]], limits: Limits) -> list[dict]:
    from .scan.pipeline import ScanBatch

    slots: list[list[dict]] = [[] for _ in files]
    index = {name: i for i, (name, _) in reversed(list(enumerate(files)))}
    batch = ScanBatch()

    def flush(b: ScanBatch) -> None:
        try:
            results = b.results()
        except BaseException as exc:  # noqa: BLE001 — never lose the other files
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            names = sorted({pr.image.file for d in b.docs.values() for pr in d.pages.values()})
            for name in names:
                slots[index[name]].append(_error(name, exc))
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
            found = _digital(name, data, kind)
            if found is not None:
                slots[i].extend(found)
                continue
            if batch.pages >= limits.max_pages:
                flush(batch)
                batch = ScanBatch()
            batch.add_file(name, data, kind, max_pages=limits.max_pages)
        except Exception as exc:   # MemoryError included
            slots[i].append(_error(name, exc))
    flush(batch)
    return [item for slot in slots for item in slot]

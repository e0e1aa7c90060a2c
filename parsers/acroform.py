"""Read a filled AcroForm PDF (our fillable PDFs, filled in any PDF reader).

Field names are the contract of the fillable PDFs: the fully qualified name is
the path, then the option code for a choice (``suspension.motifs.refus_controle``,
``pap.0.resultat.atteint``); a box alone and a text field are named by their
path. A checkbox counts as ticked whatever its export value (``/Yes``, ``/On``,
``/1``…): anything but ``/Off``. Readers that do not regenerate appearance
streams still set ``/V``, which is read first; ``/AS`` is the fallback.

pikepdf reads only the field dictionaries, which keeps a document well under
the 25 ms budget (pypdf's ``get_fields()`` alone takes ~19 ms).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import lru_cache

import pikepdf

from forms_service.catalogue import FormDefinition, catalogue
from forms_service.errors import BadDocument, UnknownForm

from .record import Reading

META_KEYS = {"form": "/RsaForm", "version": "/RsaTemplateVersion", "document_id": "/RsaDocumentId"}
_DATE_FR = re.compile(r"^\s*(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})\s*$")
_DATE_ISO = re.compile(r"^\s*(\d{4})-(\d{2})-(\d{2})\s*$")


@dataclass
class RawField:
    name: str
    kind: str            # "btn" | "text" | "other"
    value: object        # bool for a box, str for text
    page: int | None
    rect: list[float] | None


def _name_value(obj) -> str | None:
    # a value that cannot be read as text is a damaged field: read_fields says so
    return None if obj is None else str(obj)


def _ticked(value: str | None) -> bool:
    return bool(value) and value not in ("/Off", "Off", "/off", "")


def _get(d, key: str, default=None):
    """``d.get(key)`` without pikepdf's cost for a missing key (~25 µs: an exception inside)."""
    return d[key] if key in d else default


def _walk(field, prefix: str, inherited_ft, page_of, out: list[RawField], depth: int = 0) -> None:
    if depth > 20:  # a field tree that loops on itself
        raise BadDocument("Arborescence de champs du formulaire invalide (boucle)", rule="pdf_boucle")
    name_part = _get(field, "/T")
    name = prefix
    if name_part is not None:
        name = f"{prefix}.{name_part}" if prefix else str(name_part)
    ft = _get(field, "/FT", inherited_ft)
    kids = _get(field, "/Kids")
    # Terminal field: no kids, or kids that are only widgets (no /T of their own).
    is_terminal = kids is None or all("/T" not in k for k in kids)
    if not is_terminal:
        for kid in kids:
            _walk(kid, name, ft, page_of, out, depth + 1)
        return
    widgets = list(kids) if kids is not None else [field]
    page, rect = None, None
    for w in widgets:
        if page is None and "/P" in w:
            page = page_of.get(w.P.objgen)
        if rect is None and "/Rect" in w:
            rect = [float(x) for x in w.Rect]
    if ft == "/Btn":
        v = _name_value(_get(field, "/V"))
        if v is None:
            v = next((_name_value(w.AS) for w in widgets if "/AS" in w), None)
        out.append(RawField(name, "btn", _ticked(v), page, rect))
    elif ft == "/Tx":
        v = _get(field, "/V")
        out.append(RawField(name, "text", "" if v is None else str(v), page, rect))
    else:
        out.append(RawField(name, "other", _name_value(_get(field, "/V")), page, rect))


def read_fields(pdf: pikepdf.Pdf) -> list[RawField]:
    root = pdf.Root
    if "/AcroForm" not in root or "/Fields" not in root.AcroForm:
        return []
    page_of = {p.obj.objgen: i + 1 for i, p in enumerate(pdf.pages)}
    out: list[RawField] = []
    try:
        for f in root.AcroForm.Fields:
            _walk(f, "", None, page_of, out)
    except (TypeError, ValueError, AttributeError, KeyError, pikepdf.PdfError):
        # a field that is not a dictionary, /Fields or /Kids that are not arrays...
        raise BadDocument("PDF endommagé : ses champs de formulaire sont malformés", rule="pdf_corrompu") from None
    return out


def metadata(pdf: pikepdf.Pdf) -> dict:
    info = pdf.docinfo if pdf.trailer.get("/Info") is not None else {}
    return {k: (str(info[v]) if v in info else None) for k, v in META_KEYS.items()}


def guess_form(names: list[str]) -> FormDefinition | None:
    """The form whose paths the field names match best (a PDF that lost its metadata)."""
    best, best_score = None, 0
    for fd in catalogue.forms():
        if fd.kind != "form":
            continue
        score = sum(1 for n in names if _resolve(fd, n) is not None)
        if score > best_score:
            best, best_score = fd, score
    return best if best_score >= max(3, len(names) // 2) else None


@lru_cache(maxsize=64)
def _field_index(fd: FormDefinition) -> tuple[dict, dict]:
    """(path → field, list path → {column path → field}) of a form, for :func:`_field`."""
    plain = {f.path: f for f in fd.fields}
    lists = {f.path: {c.path: c for c in f.item_fields} for f in fd.fields if f.type == "list"}
    return plain, lists


def field_of(fd: FormDefinition, path: str):
    """``fd.field(path)`` by dictionary (the catalogue's scans every field: ~60 µs a call)."""
    plain, lists = _field_index(fd)
    f = plain.get(path)
    if f is not None:
        return f
    parts = path.split(".")
    for i in range(1, len(parts) - 1):
        cols = lists.get(".".join(parts[:i]))
        if cols is not None and parts[i].isdigit():
            return cols.get(".".join(parts[i + 1:]))
    return None


def _resolve(fd: FormDefinition, name: str, kind: str | None = None):
    """(path, field, code) for a field name, or None when the form has no such field.

    A choice among many options may be printed as a text field where the code is
    written (``pap.0.theme``): a text field named by a choice's path is that choice.
    """
    f = field_of(fd, name)
    if f is not None and (f.type not in ("choice", "multi") or kind == "text"):
        return name, f, None
    path, _, code = name.rpartition(".")
    f = field_of(fd, path) if path else None
    if f is not None and f.type in ("choice", "multi") and code in f.codes:
        return path, f, code
    return None


def parse_date(text: str) -> dt.date | None:
    m = _DATE_FR.match(text)
    try:
        if m:
            return dt.date(int(m.group(3)), int(m.group(2)), int(m.group(1)))
        m = _DATE_ISO.match(text)
        if m:
            return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return None
    return None


def written_choice(f, text: str, evidence: list[dict]) -> Reading:
    """A choice written as text (its code, or its label): the code, or review when unknown.

    A multi takes codes separated by commas, semicolons or spaces.
    """
    text = text.strip()
    empty = [] if f.type == "multi" else None
    if not text:
        return Reading(empty, 1.0, evidence=evidence)
    by_key = {}
    for o in f.options:
        by_key[o.code.casefold()] = o.code
        by_key[" ".join(str(o.label).split()).casefold()] = o.code
    if f.type == "multi":
        parts = [p for p in re.split(r"[,;\s]+", text) if p]
        codes = [by_key.get(p.casefold()) for p in parts]
        if parts and all(codes):
            order = {c: i for i, c in enumerate(f.codes)}
            return Reading(sorted(set(codes), key=order.get), 1.0, evidence=evidence)
    else:
        code = by_key.get(" ".join(text.split()).casefold())
        if code is not None:
            return Reading(code, 1.0, evidence=evidence)
    return Reading(empty, 0.0, True, evidence, f"Code inconnu « {text[:30]} »")


def readings_from(fd: FormDefinition, raw: list[RawField], page_height: dict[int, float]) -> dict[str, Reading]:
    """Turn raw fields into readings by path; exclusivity of one-choice groups is checked here."""
    ticks: dict[str, list[tuple[str, RawField]]] = {}
    readings: dict[str, Reading] = {}

    def evidence(rf: RawField) -> list[dict]:
        if rf.page is None or rf.rect is None:
            return []
        h = page_height.get(rf.page, 841.89)
        x0, y0, x1, y1 = rf.rect
        return [{"page": rf.page, "bbox": [round(min(x0, x1), 1), round(h - max(y0, y1), 1),
                                           round(max(x0, x1), 1), round(h - min(y0, y1), 1)]}]

    for rf in raw:
        hit = _resolve(fd, rf.name, rf.kind)
        if hit is None:
            continue
        path, f, code = hit
        if code is not None:
            ticks.setdefault(path, [])
            if rf.value is True:
                ticks[path].append((code, rf))
            elif path not in readings:
                readings[path] = Reading([] if f.type == "multi" else None, 1.0, evidence=[])
            continue
        if f.type == "bool":
            readings[path] = Reading(bool(rf.value), 1.0, evidence=evidence(rf))
        elif f.type == "date":
            text = str(rf.value or "").strip()
            if not text:
                readings[path] = Reading(None)
            else:
                d = parse_date(text)
                readings[path] = (Reading(d, 1.0, evidence=evidence(rf)) if d else
                                  Reading(None, 0.0, True, evidence(rf),
                                          f"Date illisible « {text[:20]} » : attendue JJ/MM/AAAA"))
        elif f.type in ("choice", "multi"):
            readings[path] = written_choice(f, str(rf.value or ""), evidence(rf))
        elif f.type == "integer":
            text = str(rf.value or "").strip()
            readings[path] = Reading(int(text) if text.isdigit() else None, 1.0 if (not text or text.isdigit()) else 0.0,
                                     bool(text) and not text.isdigit(), evidence(rf))
        else:
            text = str(rf.value or "").strip()
            readings[path] = Reading(text or None, 1.0, evidence=evidence(rf))
    for path, ticked in ticks.items():
        f = field_of(fd, path)
        codes = [c for c, _ in ticked]
        ev = [e for _, rf in ticked for e in evidence(rf)]
        if f.type == "multi":
            order = {c: i for i, c in enumerate(f.codes)}
            readings[path] = Reading(sorted(set(codes), key=order.get), 1.0, evidence=ev)
        elif len(codes) <= 1:
            readings[path] = Reading(codes[0] if codes else None, 1.0, evidence=ev)
        else:
            readings[path] = Reading(None, 0.0, True, ev,
                                     "Plusieurs cases cochées pour un choix unique : " + ", ".join(codes))
    return readings


def parse_acroform(data: bytes) -> dict | None:
    """``{"form", "template_version", "document_id", "readings", "pages"}``, or None when the
    PDF has no form fields (then it is a digital PDF or a scan)."""
    try:
        pdf = pikepdf.open(__import__("io").BytesIO(data))
    except pikepdf.PasswordError:
        raise BadDocument("PDF chiffré : impossible de le lire sans mot de passe", rule="pdf_chiffre") from None
    except pikepdf.PdfError:
        raise BadDocument("PDF illisible ou corrompu", rule="pdf_corrompu") from None
    with pdf:
        raw = read_fields(pdf)
        if not raw:
            return None
        meta = metadata(pdf)
        fd = None
        if meta["form"]:
            try:
                fd = catalogue.get(meta["form"])
            except UnknownForm:
                fd = None
        if fd is None:
            fd = guess_form([r.name for r in raw])
        if fd is None:
            raise BadDocument("Formulaire PDF non reconnu : ses champs ne correspondent à aucun formulaire",
                              rule="formulaire_non_reconnu")
        heights = {i + 1: float(p.mediabox[3]) - float(p.mediabox[1]) for i, p in enumerate(pdf.pages)}
        readings = readings_from(fd, raw, heights)
        rows = _rows(fd, readings)
        return {"form": fd, "template_version": meta["version"], "document_id": meta["document_id"],
                "readings": readings, "rows": rows, "page_count": len(pdf.pages)}


def _rows(fd: FormDefinition, readings: dict[str, Reading]) -> dict[str, int]:
    rows: dict[str, int] = {}
    for f in fd.fields:
        if f.type == "list":
            idx = [int(p[len(f.path) + 1:].split(".")[0]) for p in readings
                   if p.startswith(f.path + ".") and p[len(f.path) + 1:].split(".")[0].isdigit()]
            if idx:
                rows[f.path] = max(idx) + 1
    return rows

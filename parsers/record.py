"""The record: what a returned form says, one entry per path of the form's model.

Every reader (AcroForm, PDF text, scan) produces :class:`Reading` objects by
path; :func:`make_record` turns them into the record contract, validates the
data with the same rules as an API call, and sets the status:
``needs_review`` wins over ``invalid``, which wins over ``valid``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field as PField

from forms_service.catalogue import FormDefinition
from forms_service.catalogue import paths
from forms_service.validation import validate

Source = Literal["acroform", "pdf-text", "scan"]


@dataclass
class Reading:
    """What a reader found for one path, and how sure it is."""

    value: Any
    confidence: float = 1.0
    needs_review: bool = False
    evidence: list[dict] = field(default_factory=list)   # [{"page": n, "bbox": [...], "crop": "…"}]
    reason: str | None = None                              # why a person should look (French)


# -- the contract, as pydantic models (its JSON Schema goes in the OpenAPI document) --

class Evidence(BaseModel):
    model_config = ConfigDict(extra="allow")
    page: int
    bbox: list[float]


class RecordField(BaseModel):
    value: Any = None
    confidence: float
    needs_review: bool
    evidence: list[Evidence] = []
    reason: Optional[str] = None


class RecordPage(BaseModel):
    number: Optional[int]
    file: str
    file_page: int
    rotation: int = 0
    identified_by: Literal["qr", "content", "metadata", "text"]


class RecordProblem(BaseModel):
    path: str
    rule: str
    severity: Literal["error", "warning"]
    message: str


class RecordValidation(BaseModel):
    valid: bool
    errors: list[RecordProblem]


class RecordCopy(BaseModel):
    """Which copy this is, when one file (or upload) held several copies of one issued document."""

    number: int
    of: int


class Record(BaseModel):
    """A form read back (the record contract)."""

    form: str
    document_id: Optional[str]
    template_version: Optional[str]
    source: Source
    pages: list[RecordPage]
    fields: dict[str, RecordField]
    validation: RecordValidation
    status: Literal["valid", "needs_review", "invalid"]
    #: present only for a copy among several of one issued document (in page order)
    copies: Optional[RecordCopy] = None


class FileError(BaseModel):
    """A file that could not be read at all."""

    file: str
    error: dict = PField(description='{"rule": …, "message": …}')


class PageStatus(BaseModel):
    """A page that is no form to read: blank, unknown, or a second scan of a page."""

    file: str
    file_page: int
    page_status: Literal["blank", "unknown", "duplicate"]
    message: Optional[str] = None


def record_schema(form: FormDefinition | None = None) -> dict:
    schema = Record.model_json_schema()
    if form is not None:
        schema["title"] = f"Enregistrement lu : {form.title}"
        schema["properties"]["form"] = {"const": form.id, "type": "string"}
    return schema


# -- paths ------------------------------------------------------------------------

def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Leaf paths of a model dump: groups recurse, list rows get indices, a list of codes is a leaf."""
    out: dict[str, Any] = {}
    if isinstance(data, dict):
        for k, v in data.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else k))
    elif isinstance(data, list) and data and isinstance(data[0], dict):
        for i, row in enumerate(data):
            out.update(flatten(row, f"{prefix}.{i}"))
    else:
        out[prefix] = data
    return out


unflatten = paths.unflatten   # the nested data of leaf paths (``pap.0.code`` → {"pap": [{"code": …}]})


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def blank_flat(form: FormDefinition, rows: dict[str, int] | None = None) -> dict[str, Any]:
    """Every leaf path of the form's model with its empty value; lists get ``rows[path]`` rows."""
    dump = form.model().model_dump(mode="json")
    for f in form.fields:
        if f.type == "list" and rows and rows.get(f.path):
            item_model = form.model.model_validate(
                paths.nest(f.path, [{}] * rows[f.path])).model_dump(mode="json")
            paths.set_path(dump, f.path, paths.get_path(item_model, f.path))
    return flatten(dump)


def _filled(value: Any) -> bool:
    return value not in (None, "", [], False)


def _row_counts(form: FormDefinition, readings: dict[str, Reading]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for f in form.fields:
        if f.type != "list":
            continue
        idx = [int(p[len(f.path) + 1:].split(".")[0]) for p in readings
               if p.startswith(f.path + ".") and p[len(f.path) + 1:].split(".")[0].isdigit()]
        counts[f.path] = max(idx) + 1 if idx else 0
    return counts


def _list_row(list_paths: list[str], path: str) -> tuple[str, int] | None:
    """(list path, row) of a path inside a list row (``pap.3.code`` → ("pap", 3)), else None."""
    for lp in list_paths:
        if path.startswith(lp + "."):
            head = path[len(lp) + 1:].split(".", 1)[0]
            if head.isdigit():
                return lp, int(head)
    return None


def _trim_blank_rows(form: FormDefinition, readings: dict[str, Reading]) -> dict[str, Reading]:
    """Drop list rows printed blank for handwriting and left blank (nothing read, nothing to review)."""
    list_paths = [f.path for f in form.fields if f.type == "list"]
    if not list_paths:
        return readings
    rows = {p: _list_row(list_paths, p) for p in readings}
    keep_upto = dict.fromkeys(list_paths, -1)
    for p, r in readings.items():
        row = rows[p]
        if row is not None and (_filled(r.value) or r.needs_review):
            keep_upto[row[0]] = max(keep_upto[row[0]], row[1])
    return {p: r for p, r in readings.items() if rows[p] is None or rows[p][1] <= keep_upto[rows[p][0]]}


def make_record(form: FormDefinition, *, source: Source, readings: dict[str, Reading],
                pages: list[dict], document_id: str | None = None,
                template_version: str | None = None, rows: dict[str, int] | None = None,
                today: dt.date | None = None) -> dict:
    """The record of a form read back, validated, with its status."""
    readings = _trim_blank_rows(form, readings)
    rows = {**(rows or {}), **_row_counts(form, readings)}
    flat = blank_flat(form, rows)
    for path in readings:
        if path not in flat:
            flat[path] = None
    fields: dict[str, dict] = {}
    for path, empty in flat.items():
        r = readings.get(path)
        if r is None:
            fields[path] = {"value": empty, "confidence": 1.0, "needs_review": False, "evidence": []}
        else:
            fields[path] = {"value": _jsonable(r.value), "confidence": round(float(r.confidence), 3),
                            "needs_review": bool(r.needs_review), "evidence": r.evidence}
            if r.reason:
                fields[path]["reason"] = r.reason
    data = unflatten({p: f["value"] for p, f in fields.items()})
    report = validate(form, data, today=today)
    review = any(f["needs_review"] for f in fields.values())
    status = "needs_review" if review else ("invalid" if not report.valid else "valid")
    return {
        "form": form.id, "document_id": document_id, "template_version": template_version,
        "source": source, "pages": pages, "fields": fields,
        "validation": {"valid": report.valid,
                       "errors": [p.as_dict() for p in report.problems]},
        "status": status,
    }


def record_data(record: dict) -> dict:
    """The form data a record holds (nested, as the API takes it)."""
    return unflatten({p: f["value"] for p, f in record["fields"].items()})

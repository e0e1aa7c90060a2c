"""Reconciliation: what the returned form cannot show, taken from the issued document.

A scan shows ticks, signatures and handwriting, not the text the service printed
(pre-filled names, dates, codes in cells). With the document id, those values come
from the issued document; what was ticked, signed or written on the returned form wins.
"""

from __future__ import annotations

import datetime as dt

from forms_service.catalogue import FormDefinition

from .acroform import field_of
from .record import Reading, flatten


def reconcile(fd: FormDefinition, readings: dict[str, Reading], issued: dict | None) -> dict[str, Reading]:
    """Pre-filled values from ``issued`` (``{"form", "data"}``) where the readings say nothing.

    Facts a form cannot show (attachments, ``tri`` fields) stay as read: unknown until a
    person confirms them. Without the issued document (or of another form) the readings
    are returned as they are.
    """
    if not issued or issued.get("form") != fd.id:
        return readings
    printed = flatten(fd.model.model_validate(issued["data"] or {}).model_dump(mode="json"))
    out = dict(readings)
    for path, value in printed.items():
        f = field_of(fd, path)
        if f is None or f.type == "tri" or path.endswith(".signee"):
            continue
        if value is None or value is False or value == "" or value == []:
            continue   # (0 is a value: ``0 in (False,)`` is true in Python)
        r = out.get(path)
        if r is None or (r.value in (None, "", []) and not r.needs_review and f.type not in ("bool", "choice", "multi")):
            out[path] = Reading(_typed(f, value), 1.0, evidence=r.evidence if r else [], reason=None)
    return out


def _typed(f, value):
    if f.type == "date" and isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            return value
    return value

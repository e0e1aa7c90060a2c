"""What a form *is*: the typed, in-memory form of a definition file.

A definition file (``catalogue/forms/<id>.yaml``) is the single source of truth
for a form: its sections in printed order, its fields (type, French label,
printed length, option codes), its rules and its template. Everything else —
the pydantic model, the JSON Schema, the renderer's context, the web form, the
layout map's labels, the parsers' field list — is derived from the objects
below, so that nobody keeps a second copy of a field list.

Paths follow the project convention: dotted, 0-based list indices
(``pap.0.code``). In a definition, a field inside a list is declared once, with
its path relative to the list item (``code``), and its full path is ``pap.<n>.code``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Field types a definition may use, and what each means on paper.
FIELD_TYPES = {
    "text": "free text; printed on dotted lines or in a box",
    "date": "ISO 8601 in JSON, printed dd/mm/yyyy",
    "integer": "whole number",
    "bool": "a box alone: true when ticked",
    "choice": "one code of an option list; printed as one box per option",
    "multi": "several codes of an option list; one box per option",
    "code": "one code of a long reference list (ROME, codification); written, not ticked",
    "tri": "true / false / unknown (null): a fact paper cannot show, e.g. an attachment",
    "signature": "a signature zone; the model holds whether it is signed (true/false/unknown)",
    "list": "a table whose rows repeat (PAP, offres d'emploi)",
}

#: Types that print one checkbox per option (or one box for ``bool``).
BOX_TYPES = {"bool", "choice", "multi"}


@dataclass(frozen=True)
class Option:
    code: str
    label: str
    group: str | None = None          # printed heading the option sits under
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. points/colour of an EDE cell

    def as_dict(self) -> dict:
        d = {"code": self.code, "label": self.label}
        if self.group:
            d["group"] = self.group
        d.update(self.extra)
        return d


@dataclass(frozen=True)
class Field:
    """One field. ``path`` is full for top-level fields, relative inside a list."""

    path: str
    type: str
    label: str
    required: bool = False
    max_length: int | None = None      # printed length: longer text does not fit the box
    lines: int = 1                     # handwriting lines printed for a text field
    options: tuple[Option, ...] = ()
    options_from: str | None = None    # name of a reference list (annexe-1, annexe-4, annexe-6)
    #: the codes a value may take: the options', or the reference list's selectable entries
    allowed_codes: frozenset[str] = frozenset()
    printed: bool = True               # False: in the model only (attachments, computed facts)
    provenance: str = "confirmed"      # "confirmed" by the seed, or "inferred" (our design)
    help: str | None = None
    minimum: int | None = None
    maximum: int | None = None
    # list only
    item_fields: tuple["Field", ...] = ()
    rows_per_page: int | None = None
    max_items: int | None = None
    min_rows: int = 0                  # blank rows printed when the list is short

    @property
    def name(self) -> str:
        return self.path.rsplit(".", 1)[-1]

    def option(self, code: str) -> Option | None:
        return next((o for o in self.options if o.code == code), None)

    @property
    def codes(self) -> list[str]:
        return [o.code for o in self.options]

    def column(self, path: str) -> "Field | None":
        """A list's column by its path in the row (``code``)."""
        return next((c for c in self.item_fields if c.path == path), None)

    def describe(self) -> dict:
        """A plain description used by the web forms, the API and the docs."""
        d: dict[str, Any] = {"path": self.path, "type": self.type, "label": self.label,
                             "required": self.required, "printed": self.printed,
                             "provenance": self.provenance}
        if self.max_length:
            d["max_length"] = self.max_length
        if self.options:
            d["options"] = [o.as_dict() for o in self.options]
        if self.options_from:
            d["options_from"] = self.options_from
        if self.type == "list":
            d["item_fields"] = [f.describe() for f in self.item_fields]
            d["rows_per_page"] = self.rows_per_page
        return d


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    page: int | None
    fields: tuple[Field, ...]
    note: str | None = None            # printed text under the heading (footnotes, legal text)
    reserved: bool = False             # filled by the SLAI/EP/Président, printed blank
    banner: str | None = None          # a heading printed above the section (shared by a pair)
    fields_from: str | None = None     # the data its fields come from (``ede_grid``)
    #: a condition (the rules' ``when`` syntax) on the form's data: the section is needed only
    #: when it holds (the référent's page hides it otherwise; paper prints it always)
    needed_when: dict[str, Any] | None = None


@dataclass(frozen=True)
class RuleSpec:
    """A rule as declared: a named check with parameters, applied when a condition holds."""

    code: str
    severity: str
    message: str
    check: str
    params: dict[str, Any]
    when: dict[str, Any] | None
    form: str
    source: str | None = None          # where the rule comes from (seed, spec, inferred)

    def as_dict(self) -> dict:
        return {"code": self.code, "form": self.form, "severity": self.severity,
                "message": self.message}


@dataclass(frozen=True)
class ReferenceEntry:
    code: str
    label: str
    extra: dict[str, Any] = field(default_factory=dict)
    selectable: bool = True            # False: a heading (an Annexe 6 theme) no value may name

    def as_dict(self) -> dict:
        return {"code": self.code, "label": self.label, **self.extra}

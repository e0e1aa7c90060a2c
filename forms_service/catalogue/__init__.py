"""The form catalogue: every form and reference list the service knows.

Each form is one YAML definition in ``catalogue/forms/``; this package turns
those files into :class:`FormDefinition` objects. Rendering, the web pages, the
JSON API and the parsers all ask ``catalogue.get(form_id)`` and read from what
it returns: that is the only field list there is.
"""

from __future__ import annotations

from functools import cached_property, lru_cache
from pathlib import Path
from typing import Callable, Iterator

from ..errors import NotAForm, UnknownForm
from . import references
from .definition import BOX_TYPES, FIELD_TYPES, Field, Option, ReferenceEntry, RuleSpec, Section
from .ede_grid import grid_fields, load_grid
from .model import build_model
from .print_layout import PrintLayout, parse_layout
from .yaml_data import load_yaml, parse_yaml

__all__ = ["catalogue", "catalogue_for", "Catalogue", "FormDefinition", "Field", "Option", "Section",
           "RuleSpec", "PrintLayout", "load_yaml", "parse_yaml"]

#: How a section's ``fields_from`` produces fields from data, by name: a function of
#: the catalogue (which holds the data files in force, e.g. its EDE grid).
FIELD_SOURCES: dict[str, Callable[["Catalogue"], list[dict]]] = {
    "ede_grid": lambda cat: grid_fields(cat.ede_grid()),
}


def _options(raw: dict) -> tuple[Option, ...]:
    opts = []
    for o in raw.get("options") or ():
        extra = {k: v for k, v in o.items() if k not in ("code", "label", "group")}
        opts.append(Option(str(o["code"]), o["label"], o.get("group"), extra))
    if raw.get("options_from") and raw.get("type") in BOX_TYPES:
        opts = [Option(e.code, e.label) for e in references.entries(raw["options_from"])]
    return tuple(opts)


def _allowed_codes(raw: dict, options: tuple[Option, ...]) -> frozenset[str]:
    """The codes a value may take: a reference list's selectable entries (not the theme
    headings of Annexe 6), or the field's own options."""
    if raw.get("options_from"):
        return references.selectable_codes(raw["options_from"])
    return frozenset(o.code for o in options)


def _field(raw: dict) -> Field:
    ftype = raw["type"]
    if ftype not in FIELD_TYPES:
        raise ValueError(f"{raw.get('path')}: unknown type {ftype}")
    known = {"path", "type", "label", "required", "max_length", "lines", "options", "options_from",
             "printed", "provenance", "help", "minimum", "maximum", "item_fields", "rows_per_page",
             "max_items", "min_rows"}
    unknown = set(raw) - known
    if unknown:
        raise ValueError(f"{raw['path']}: unknown keys {sorted(unknown)}")
    options = _options(raw)
    return Field(
        path=raw["path"], type=ftype, label=raw["label"], required=raw.get("required", False),
        max_length=raw.get("max_length"), lines=raw.get("lines", 1), options=options,
        allowed_codes=_allowed_codes(raw, options),
        options_from=raw.get("options_from"), printed=raw.get("printed", ftype != "tri"),
        provenance=raw.get("provenance", "confirmed"), help=raw.get("help"),
        minimum=raw.get("minimum"), maximum=raw.get("maximum"),
        item_fields=tuple(_field(f) for f in raw.get("item_fields") or ()),
        rows_per_page=raw.get("rows_per_page"), max_items=raw.get("max_items"),
        min_rows=raw.get("min_rows", 0),
    )


def _rules(raw_rules: list[dict], form_id: str) -> tuple[RuleSpec, ...]:
    out = []
    for r in raw_rules or ():
        when, source = r.get("when"), r.get("source")
        if "fact" in r:
            # A true/false/unknown fact the paper cannot show (an attachment, a signature):
            # false is an error, unknown a warning asking a person to check.
            out.append(RuleSpec(r["code"], "error", r["message"], "tri_is",
                                {"path": r["fact"], "state": False}, when, form_id, source))
            out.append(RuleSpec(f"{r['code']}_a_verifier", "warning",
                                r.get("message_unknown", r["message"] + " (à vérifier)"),
                                "tri_is", {"path": r["fact"], "state": None}, when, form_id, source))
            continue
        out.append(RuleSpec(r["code"], r.get("severity", "error"), r["message"], r["check"],
                            r.get("params") or {}, when, form_id, source))
    return tuple(out)


class FormDefinition:
    """One form or reference list, as its definition file declares it."""

    def __init__(self, raw: dict, catalogue: "Catalogue | None" = None):
        self.raw = raw
        self._catalogue = catalogue
        self.id: str = raw["id"]
        self.kind: str = raw.get("kind", "form")
        self.title: str = raw["title"]
        self.short_title: str = raw.get("short_title", self.title)
        self.annexe: str | None = raw.get("annexe")
        self.aliases: tuple[str, ...] = tuple(raw.get("aliases") or ())
        self.pages: int | None = raw.get("pages")
        self.fixed_layout: bool = raw.get("fixed_layout", False)
        self.provenance: str = raw.get("provenance", "confirmed")
        self.template: str | None = raw.get("template")
        self.intro: str | None = raw.get("intro")
        self.reference_list: str | None = raw.get("reference_list")
        self.printed_note: str | None = raw.get("printed_note")
        self.sections: tuple[Section, ...] = tuple(self._section(s) for s in raw.get("sections") or ())
        self._rule_specs = _rules(raw.get("rules"), self.id)
        self._by_path = self._index_paths()
        self.layout: PrintLayout = parse_layout(self.id, raw.get("layout"),
                                                (s.id for s in self.sections), self._by_path)

    def _section(self, s: dict) -> Section:
        raw_fields = list(s.get("fields") or ())
        source = s.get("fields_from")
        if source:
            if source not in FIELD_SOURCES:
                raise ValueError(f"{self.id}: section {s['id']}: unknown fields_from {source}")
            raw_fields = FIELD_SOURCES[source](self._catalogue or catalogue) + raw_fields
        return Section(id=s["id"], title=s["title"], page=s.get("page"),
                       fields=tuple(_field(f) for f in raw_fields), note=s.get("note"),
                       reserved=s.get("reserved", False), banner=s.get("banner"),
                       fields_from=source, needed_when=s.get("needed_when"))

    def _index_paths(self) -> dict[str, Field]:
        by_path: dict[str, Field] = {}
        for f in self.fields:
            if f.path in by_path:
                raise ValueError(f"{self.id}: field {f.path} declared twice")
            by_path[f.path] = f
        return by_path

    # -- what the definition says about itself (no form is named in code) -----
    @property
    def field_sources(self) -> frozenset[str]:
        """The ``fields_from`` sources of its sections (``{"ede_grid"}`` for the Annexe 3)."""
        return frozenset(s.fields_from for s in self.sections if s.fields_from)

    @property
    def uses_ede_grid(self) -> bool:
        """Its fields are the EDE grid's items: its print and its reading depend on the grid."""
        return "ede_grid" in self.field_sources

    # -- fields ---------------------------------------------------------------
    @property
    def fields(self) -> list[Field]:
        """Top-level fields in printed order (a list's columns are in ``item_fields``)."""
        return [f for s in self.sections for f in s.fields]

    def field(self, path: str) -> Field | None:
        """The field at a full path; list rows resolve to their column (``pap.3.code``)."""
        f = self._by_path.get(path)
        if f is not None:
            return f
        # a list row: « <list path>.<index>.<column> »
        head, sep, rest = path.partition(".")
        while sep:
            index, sep2, column = rest.partition(".")
            lst = self._by_path.get(head)
            if lst is not None and lst.type == "list" and index.isdigit() and sep2:
                return lst.column(column)
            step, sep, rest = rest.partition(".")
            head = f"{head}.{step}"
        return None

    def page_of(self, path: str) -> int | None:
        for s in self.sections:
            if any(f.path == path or path.startswith(f.path + ".") for f in s.fields):
                return s.page
        return None

    # -- model and schema -----------------------------------------------------
    @cached_property
    def model(self):
        if self.kind != "form":
            return None
        name = "".join(p.capitalize() for p in self.id.replace("-", " ").split())
        return build_model(tuple(self.fields), name)

    def json_schema(self) -> dict:
        if self.kind != "form":
            raise NotAForm(self.id, "décrire par un schéma")
        schema = self.model.model_json_schema()
        schema["title"] = self.title
        schema["$id"] = f"urn:rsa-forms:{self.id}"
        return schema

    def rules(self) -> list[RuleSpec]:
        return list(self._rule_specs)

    def entries(self) -> tuple[ReferenceEntry, ...]:
        """A reference list's rows (Annexes 1, 4, 6)."""
        if self.kind != "reference":
            return ()
        return references.entries(self.reference_list)

    def summary(self) -> dict:
        return {"id": self.id, "title": self.title, "kind": self.kind, "pages": self.pages}

    def __repr__(self) -> str:
        return f"<FormDefinition {self.id}>"


class Catalogue:
    """All definitions, loaded once from package data.

    ``ede_grid``: the département's EDE grid file (``settings.ede_grid``), whose items
    are the Annexe 3's fields; ``None``: the indicative grid shipped in ``data/``.
    """

    def __init__(self, package: str = "forms_service.catalogue.forms", *,
                 ede_grid: str | Path | None = None):
        self.package = package
        self.ede_grid_path = Path(ede_grid) if ede_grid else None
        self._forms: dict[str, FormDefinition] | None = None
        self._aliases: dict[str, str] = {}

    def ede_grid(self) -> dict:
        return load_grid(self.ede_grid_path)

    def _load(self) -> dict[str, FormDefinition]:
        if self._forms is None:
            index = load_yaml(self.package, "index.yaml")
            forms = {}
            for name in index["forms"]:
                fd = FormDefinition(load_yaml(self.package, f"{name}.yaml"), self)
                forms[fd.id] = fd
                for alias in fd.aliases:
                    self._aliases[alias] = fd.id
            self._forms = forms
        return self._forms

    def get(self, form_id: str) -> FormDefinition:
        forms = self._load()
        key = self._aliases.get(form_id, form_id)
        if key not in forms:
            raise UnknownForm(form_id)
        return forms[key]

    def forms(self) -> list[FormDefinition]:
        return list(self._load().values())

    def __iter__(self) -> Iterator[FormDefinition]:
        return iter(self.forms())


catalogue = Catalogue()
"""The catalogue with the indicative EDE grid (no settings read)."""


@lru_cache(maxsize=8)
def _catalogue_with_grid(path: Path) -> Catalogue:
    return Catalogue(ede_grid=path)


def catalogue_for(ede_grid: str | Path | None) -> Catalogue:
    """The catalogue of an app whose settings name ``ede_grid`` (one per grid file)."""
    if not ede_grid:
        return catalogue
    return _catalogue_with_grid(Path(ede_grid).expanduser().resolve())

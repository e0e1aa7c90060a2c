"""The form catalogue: every form and reference list the service knows.

Each form is one YAML definition in ``catalogue/forms/``; this package turns
those files into :class:`FormDefinition` objects. Rendering, the web pages, the
JSON API and the parsers all ask ``catalogue.get(form_id)`` and read from what
it returns: that is the only field list there is.
"""

from __future__ import annotations

from functools import cached_property
from importlib import resources
from typing import Any, Callable, Iterator

import yaml

from ..errors import NotAForm, UnknownForm
from . import references
from .definition import BOX_TYPES, FIELD_TYPES, Field, Option, ReferenceEntry, RuleSpec, Section
from .model import build_model

__all__ = ["catalogue", "Catalogue", "FormDefinition", "Field", "Option", "Section", "RuleSpec"]

#: Functions that produce a section's fields from data (the EDE grid), by name.
FIELD_GENERATORS: dict[str, Callable[[dict], list[dict]]] = {}


def field_generator(name: str):
    def register(fn):
        FIELD_GENERATORS[name] = fn
        return fn
    return register


class _DataLoader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false. In YAML 1.1 « on », « off », « yes », « no »
    are booleans, which would turn a key like ``on:`` or a code like ``no`` into True/False."""


_DataLoader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_DataLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", __import__("re").compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"))


def parse_yaml(text) -> Any:
    return yaml.load(text, Loader=_DataLoader)  # noqa: S506 (a SafeLoader subclass)


def load_yaml(package: str, name: str) -> Any:
    with resources.files(package).joinpath(name).open(encoding="utf-8") as fh:
        return parse_yaml(fh)


def _options(raw: dict) -> tuple[Option, ...]:
    opts = []
    for o in raw.get("options") or ():
        extra = {k: v for k, v in o.items() if k not in ("code", "label", "group")}
        opts.append(Option(str(o["code"]), o["label"], o.get("group"), extra))
    if raw.get("options_from") and raw.get("type") in BOX_TYPES:
        opts = [Option(e.code, e.label) for e in references.entries(raw["options_from"])]
    return tuple(opts)


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
    return Field(
        path=raw["path"], type=ftype, label=raw["label"], required=raw.get("required", False),
        max_length=raw.get("max_length"), lines=raw.get("lines", 1), options=_options(raw),
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

    def __init__(self, raw: dict):
        self.raw = raw
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
        self._check_paths()

    def _section(self, s: dict) -> Section:
        raw_fields = list(s.get("fields") or ())
        if s.get("fields_from"):
            raw_fields = FIELD_GENERATORS[s["fields_from"]](s) + raw_fields
        return Section(id=s["id"], title=s["title"], page=s.get("page"),
                       fields=tuple(_field(f) for f in raw_fields), note=s.get("note"),
                       reserved=s.get("reserved", False), banner=s.get("banner"))

    def _check_paths(self) -> None:
        seen: set[str] = set()
        for f in self.fields:
            if f.path in seen:
                raise ValueError(f"{self.id}: field {f.path} declared twice")
            seen.add(f.path)

    # -- fields ---------------------------------------------------------------
    @property
    def fields(self) -> list[Field]:
        """Top-level fields in printed order (a list's columns are in ``item_fields``)."""
        return [f for s in self.sections for f in s.fields]

    def field(self, path: str) -> Field | None:
        """The field at a full path; list rows resolve to their column (``pap.3.code``)."""
        parts = path.split(".")
        for f in self.fields:
            fparts = f.path.split(".")
            if parts == fparts:
                return f
            if f.type == "list" and parts[:len(fparts)] == fparts and len(parts) > len(fparts) + 1:
                rest = ".".join(parts[len(fparts) + 1:])
                return next((c for c in f.item_fields if c.path == rest), None)
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
    """All definitions, loaded once from package data."""

    def __init__(self, package: str = "forms_service.catalogue.forms"):
        self.package = package
        self._forms: dict[str, FormDefinition] | None = None
        self._aliases: dict[str, str] = {}

    def _load(self) -> dict[str, FormDefinition]:
        if self._forms is None:
            from .. import rules  # noqa: F401  (registers the programme's checks and generators)
            index = load_yaml(self.package, "index.yaml")
            forms = {}
            for name in index["forms"]:
                fd = FormDefinition(load_yaml(self.package, f"{name}.yaml"))
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

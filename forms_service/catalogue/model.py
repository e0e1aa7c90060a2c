"""Build a form's pydantic model from its definition.

The model checks only what a machine can check without knowing the procedure:
types, codes, dates, printed lengths, unknown keys. Every field is optional,
because a référent may print a half-filled form to complete by hand; what a
complete request must hold is the business rules' job (``rules_engine``).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict, Field as PField, ValidationError, create_model
from pydantic_core import PydanticCustomError

from ..errors import Problem
from .definition import Field

_CONFIG = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _camel(text: str) -> str:
    return "".join(p.capitalize() for p in re.split(r"[^A-Za-z0-9]+", text) if p)


def _code_checker(list_name: str, allowed: frozenset[str]):
    def check(value: str) -> str:
        if value not in allowed:
            raise PydanticCustomError(
                "code_inconnu", "Code inconnu « {value} » (liste {liste})",
                {"value": value, "liste": list_name})
        return value
    return check


def _unique(values: list) -> list:
    if len(set(values)) != len(values):
        raise PydanticCustomError("doublon", "Une même case est cochée deux fois")
    return values


def _python_type(f: Field, model_prefix: str) -> tuple[Any, Any]:
    """(annotation, default) of one field in the model."""
    desc = {"title": f.label}
    if f.type == "text":
        return Optional[str], PField(None, max_length=f.max_length, **desc)
    if f.type == "date":
        return Optional[dt.date], PField(None, **desc)
    if f.type == "integer":
        return Optional[int], PField(None, ge=f.minimum, le=f.maximum, **desc)
    if f.type == "bool":
        return bool, PField(False, **desc)
    if f.type == "tri":
        return Optional[bool], PField(None, **desc)
    if f.type == "choice":
        return Optional[Literal[tuple(f.codes)]], PField(None, **desc)
    if f.type == "multi":
        item = Literal[tuple(f.codes)]
        return Annotated[list[item], AfterValidator(_unique)], PField(default_factory=list, **desc)
    if f.type == "code":
        allowed = f.allowed_codes
        ann = Annotated[str, AfterValidator(_code_checker(f.options_from or f.path, allowed))]
        return Optional[ann], PField(None, json_schema_extra={"enum": sorted(allowed)}, **desc)
    if f.type == "list":
        item_model = build_model(f.item_fields, f"{model_prefix}{_camel(f.path)}Item")
        return list[item_model], PField(default_factory=list, max_length=f.max_items, **desc)
    raise ValueError(f"unknown field type {f.type!r} at {f.path}")


def _tree(fields: tuple[Field, ...]) -> dict:
    """Group dotted paths into nested nodes, in the definition's order:
    {name: Field | node}, where a node is a dict of the same shape."""
    root: dict = {}
    for f in fields:
        parts = f.path.split(".")
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        if f.type == "signature":
            # A signature zone is a group: whether it is signed, beside its lieu/date fields.
            sig = node.setdefault(parts[-1], {})
            sig["signee"] = Field(path=f"{f.path}.signee", type="tri",
                                  label=f"{f.label} : signée", printed=False)
        else:
            node[parts[-1]] = f
    return root


def build_model(fields: tuple[Field, ...], name: str) -> type[BaseModel]:
    return _build_node(_tree(fields), name)


def _build_node(node: dict, name: str) -> type[BaseModel]:
    attrs: dict[str, Any] = {}
    for key, item in node.items():
        if isinstance(item, dict):
            child_model = _build_node(item, f"{name}{_camel(key)}")
            attrs[key] = (child_model, PField(default_factory=child_model))
        else:
            attrs[key] = _python_type(item, name)
    return create_model(name, __config__=_CONFIG, **attrs)


# -- turning pydantic's errors into the project's problems -------------------

_RULES = {
    "literal_error": ("code_inconnu", "Code inconnu : valeurs admises {expected}"),
    "code_inconnu": ("code_inconnu", None),
    "doublon": ("doublon", None),
    "string_too_long": ("longueur_maximale",
                        "Texte trop long pour la case imprimée ({max_length} caractères au plus)"),
    "extra_forbidden": ("champ_inconnu", "Champ inconnu pour ce formulaire"),
    "too_long": ("nombre_maximal", "Trop de lignes : {max_length} au plus"),
    "greater_than_equal": ("valeur_hors_bornes", "Valeur trop petite (minimum {ge})"),
    "less_than_equal": ("valeur_hors_bornes", "Valeur trop grande (maximum {le})"),
}
_DATE_TYPES = {"date_parsing", "date_from_datetime_parsing", "date_from_datetime_inexact",
               "date_type", "date_past", "date_future"}
_TYPE_LABELS = {"string_type": "du texte", "bool_parsing": "vrai ou faux", "bool_type": "vrai ou faux",
                "int_parsing": "un nombre entier", "int_type": "un nombre entier",
                "int_from_float": "un nombre entier", "list_type": "une liste",
                "model_type": "un objet", "dict_type": "un objet", "model_attributes_type": "un objet"}


def dotted(loc: tuple) -> str:
    return ".".join(str(p) for p in loc)


def problems_from(exc: ValidationError) -> list[Problem]:
    out = []
    for err in exc.errors(include_url=False):
        path = dotted(err["loc"])
        etype = err["type"]
        ctx = {k: (", ".join(repr(x) for x in v) if isinstance(v, (list, tuple)) else v)
               for k, v in (err.get("ctx") or {}).items()}
        if etype in _DATE_TYPES:
            out.append(Problem(path, "date_invalide",
                               "Date invalide : attendue au format AAAA-MM-JJ (ISO 8601)"))
        elif etype in _RULES:
            rule, msg = _RULES[etype]
            if msg is None:
                msg = err["msg"]
            else:
                try:
                    msg = msg.format(**ctx)
                except (KeyError, IndexError):
                    pass
            out.append(Problem(path, rule, msg.replace("' or '", "' ou '")))
        else:
            expected = _TYPE_LABELS.get(etype)
            msg = f"Type invalide : {expected} attendu" if expected else f"Valeur invalide ({err['msg']})"
            out.append(Problem(path, "type_invalide", msg))
    return out

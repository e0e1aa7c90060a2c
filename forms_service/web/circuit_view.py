"""What the circuit's pages show of a request (the correspondant's inbox and the référent's
« Mes demandes » alike): the fiche's filled fields with their printed labels, in the form's
order (the definition is the only field list), its avis history and the filters' choices."""

from __future__ import annotations

import datetime as dt

from flask import request

from forms_service.catalogue.paths import get_path
from forms_service.circuit import queries
from forms_service.circuit.machine import machine
from forms_service.circuit.service import form


def fiche_sections(data: dict) -> list[dict]:
    """``[{"title", "rows": [(label, text)]}]`` of the sections holding a value."""
    out = []
    for section in form().sections:
        rows = []
        for f in section.fields:
            value = get_path(data, f.path)
            text = _text(f, value)
            if text:
                rows.append((f.label, text))
        if rows:
            out.append({"title": section.title, "rows": rows})
    return out


def _text(f, value) -> str:
    if value in (None, "", [], {}):
        return ""
    if f.type == "signature":
        return "signée" if isinstance(value, dict) and value.get("signee") else ""
    if f.type == "date" and isinstance(value, str) and len(value) == 10:
        return f"{value[8:10]}/{value[5:7]}/{value[:4]}"
    if f.type == "tri":
        return {True: "oui", False: "non"}.get(value, "")
    if isinstance(value, bool):
        return "oui" if value else ""
    if isinstance(value, list):
        return ", ".join(_label(f, v) for v in value)
    if isinstance(value, dict):
        return ""
    return _label(f, value)


def _label(f, code) -> str:
    option = f.option(code) if f.options and isinstance(code, str) else None
    return option.label if option else str(code)


def filters_from_args(default_etat: str | None = None) -> tuple[queries.Filters, dict]:
    """The list filters of the query string, and the raw values to show in the form."""
    args = request.args
    raw = {k: args.get(k, "") for k in ("type", "etat", "depuis", "referent", "echeance_avant")}
    if "etat" not in args and default_etat:
        raw["etat"] = default_etat
    m = machine()
    f = queries.Filters(
        etat=raw["etat"] if raw["etat"] in m.states else None,
        type=raw["type"] if raw["type"] in m.types else None,
        referent=int(raw["referent"]) if raw["referent"].isdigit() else None,
        depuis=_date(raw["depuis"]), echeance_avant=_date(raw["echeance_avant"]))
    return f, raw


def _date(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text) if text else None
    except ValueError:
        return None


__all__ = ["fiche_sections", "filters_from_args"]

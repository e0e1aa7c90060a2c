"""WTForms classes generated from a form definition: the web layer's only field list
is the catalogue's.

    Form = form_class(fd, sphere="professionnelle")   # a FlaskForm subclass, cached
    form = Form(data=form_values(fd, data))           # pre-filled from a form's data
    data = form_data(fd, Form(request.form))          # what was posted, as the form's data
    ids = field_id("pap.0.code")                      # "pap-0-code": where a problem is shown

Every HTML name is the field's path with ``-`` for ``.`` (``beneficiaire-num_caf``,
``pap-0-code``, ``signature_referent-signee``), so a validation problem's path names
the input it belongs to. WTForms only carries the values and the CSRF token: what is
right or wrong is decided by :func:`forms_service.validation.validate` (the model and
the business rules), the same for the pages, the API and the CLI.

Sections marked ``reserved`` (the SLAI's, the EP's, the Président's) are not in the
référent's pages. The PAP's action picker (a ``code`` field on Annexe 6) offers only
the actions the contract's sphere allows (``sphere_solidarite`` /
``sphere_professionnelle`` of the codification).
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import Any

from flask_wtf import FlaskForm
from wtforms import (BooleanField, FieldList, Form, FormField, RadioField, SelectField,
                     SelectMultipleField, StringField, TextAreaField)
from wtforms.widgets import CheckboxInput, ListWidget

from forms_service.catalogue import FormDefinition, references
from forms_service.catalogue.definition import Field
from forms_service.catalogue.paths import get_path, set_path

#: A choice with at most this many options is radio buttons; more, a drop-down list.
RADIO_MAX = 6
TRI_CHOICES = [("", "Non renseigné"), ("oui", "Oui"), ("non", "Non")]
#: The form whose contracts a sphere belongs to (the PAP's actions are filtered by it).
FORM_SPHERES = {"cers": "solidarite", "cerp": "professionnelle"}


def field_id(path: str) -> str:
    """The HTML name and id of the input holding ``path``."""
    return path.replace(".", "-")


def sections(fd: FormDefinition):
    """The sections the référent fills (reserved ones are for others)."""
    return [s for s in fd.sections if not s.reserved]


def input_fields(fd: FormDefinition) -> list[Field]:
    """The référent's fields, in printed order (signatures are a ``.signee`` box)."""
    return [f for s in sections(fd) for f in s.fields]


def options_of(f: Field, sphere: str | None = None) -> list[tuple[str, str]]:
    """``(code, label)`` a choice, multi or code field offers."""
    if f.options:
        return [(o.code, o.label) for o in f.options]
    if f.options_from:
        entries = references.entries(f.options_from)
        out = []
        for e in entries:
            if not e.selectable:
                continue
            if sphere and f.options_from == "annexe-6" and not e.extra.get(f"sphere_{sphere}", True):
                continue
            out.append((e.code, f"{e.code} – {e.label}"))
        return out
    return []


def _wtf_field(f: Field, sphere: str | None):
    """The WTForms field of one definition field (values only: no WTForms validator)."""
    kw: dict[str, Any] = {"render_kw": {}}
    label = f.label
    if f.type == "text":
        if f.max_length:
            kw["render_kw"]["maxlength"] = f.max_length
        if f.lines > 1:
            kw["render_kw"]["rows"] = min(max(f.lines, 2), 8)
            return TextAreaField(label, **kw)
        return StringField(label, **kw)
    if f.type == "date":
        kw["render_kw"]["type"] = "date"
        return StringField(label, **kw)
    if f.type == "integer":
        kw["render_kw"].update(inputmode="numeric")
        return StringField(label, **kw)
    if f.type == "bool":
        return BooleanField(label, **kw)
    if f.type in ("tri", "signature"):
        if f.type == "signature":
            label = f"{f.label} : signée"
        return RadioField(label, choices=TRI_CHOICES, default="", validate_choice=False, **kw)
    if f.type == "choice":
        choices = options_of(f, sphere)
        if len(choices) <= RADIO_MAX:
            return RadioField(label, choices=choices, validate_choice=False, **kw)
        return SelectField(label, choices=[("", "— Choisir —"), *choices], validate_choice=False, **kw)
    if f.type == "multi":
        return SelectMultipleField(label, choices=options_of(f, sphere), validate_choice=False,
                                   widget=ListWidget(prefix_label=False),
                                   option_widget=CheckboxInput(), **kw)
    if f.type == "code":
        if f.options_from == "annexe-6":
            return SelectField(label, choices=[("", "— Choisir une action —"), *options_of(f, sphere)],
                               validate_choice=False, **kw)
        kw["render_kw"].update(autocomplete="off")
        return StringField(label, **kw)
    if f.type == "list":
        row = type(f"{_camel(f.path)}Row", (Form,),
                   {c.name: _wtf_field(c, sphere) for c in f.item_fields})
        return FieldList(FormField(row, separator="-"), label=label, min_entries=0,
                         max_entries=f.max_items, separator="-")
    raise ValueError(f"unknown field type {f.type!r}")


def _camel(text: str) -> str:
    return "".join(p.capitalize() for p in text.replace("-", "_").replace(".", "_").split("_"))


def input_name(f: Field) -> str:
    return field_id(f"{f.path}.signee" if f.type == "signature" else f.path)


@lru_cache(maxsize=64)
def _form_class(fd: FormDefinition, sphere: str | None) -> type[FlaskForm]:
    attrs = {input_name(f): _wtf_field(f, sphere) for f in input_fields(fd)}
    return type(f"{_camel(fd.id)}Form", (FlaskForm,), attrs)


def form_class(fd: FormDefinition, sphere: str | None = None) -> type[FlaskForm]:
    """The FlaskForm of ``fd`` (the PAP's actions filtered for ``sphere``)."""
    return _form_class(fd, sphere or FORM_SPHERES.get(fd.id))


# -- data <-> form ---------------------------------------------------------------------

def _to_value(f: Field, raw: Any) -> Any:
    """A posted value as the form's data holds it (``None``: left empty)."""
    if f.type == "bool":
        return bool(raw)
    if f.type in ("tri", "signature"):
        return {"oui": True, "non": False}.get(raw)
    if f.type == "multi":
        return [v for v in (raw or []) if v]
    if isinstance(raw, str):
        raw = raw.strip()
        return raw or None
    return raw


def _from_value(f: Field, value: Any) -> Any:
    """A data value as its input shows it."""
    if f.type in ("tri", "signature"):
        return {True: "oui", False: "non"}.get(value, "")
    if f.type == "multi":
        return list(value or [])
    if f.type == "bool":
        return bool(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return "" if value is None else str(value)


def _data_path(f: Field) -> str:
    return f"{f.path}.signee" if f.type == "signature" else f.path


def form_data(fd: FormDefinition, form: FlaskForm) -> dict:
    """The posted form as the form's data (empty inputs and empty list rows left out)."""
    data: dict = {}
    for f in input_fields(fd):
        raw = form[input_name(f)].data
        if f.type == "list":
            rows = [row_data(f, entry) for entry in raw or []]
            value = [r for r in rows if r]
            if value:
                data[f.path] = value
            continue
        value = _to_value(f, raw)
        if _empty(f, value):
            continue
        set_path(data, _data_path(f), value)
    return data


def _empty(f: Field, value: Any) -> bool:
    """Left out of the data: nothing typed, no box ticked (a fact answered « non » is kept)."""
    return value is None or value == [] or (value is False and f.type == "bool")


def row_data(f: Field, entry: dict) -> dict:
    row = {}
    for c in f.item_fields:
        value = _to_value(c, entry.get(c.name))
        if _empty(c, value):
            continue
        row[c.path] = value
    return row


def form_values(fd: FormDefinition, data: dict, *, min_rows: int = 1) -> dict:
    """``data`` as the ``data=`` of the generated form (each list shows ``min_rows`` rows at least)."""
    values: dict = {}
    for f in input_fields(fd):
        value = get_path(data, _data_path(f))
        if f.type == "list":
            rows = [{c.name: _from_value(c, (r or {}).get(c.path)) for c in f.item_fields}
                    for r in (value or [])]
            while len(rows) < min_rows:
                rows.append({c.name: _from_value(c, None) for c in f.item_fields})
            values[input_name(f)] = rows
        else:
            values[input_name(f)] = _from_value(f, value)
    return values


def list_fields(fd: FormDefinition) -> dict[str, Field]:
    """The repeating tables of the référent's part, by path (``pap``, ``offres``...)."""
    return {f.path: f for f in input_fields(fd) if f.type == "list"}


def problem_anchor(fd: FormDefinition, path: str) -> str | None:
    """The id of the input (or table) a problem at ``path`` is shown next to."""
    known = {input_name(f) for f in input_fields(fd)}
    lists = list_fields(fd)
    parts = path.split(".")
    if parts and parts[0] in lists:
        return field_id(".".join(parts[:3])) if len(parts) >= 3 else field_id(parts[0])
    for n in range(len(parts), 0, -1):
        candidate = field_id(".".join(parts[:n]))
        if candidate in known:
            return candidate
        if f"{candidate}-signee" in known:
            return f"{candidate}-signee"
    return None

"""The template context: the form's data, wrapped so that each value knows its path.

Templates use plain variables (``{{ beneficiaire.nom }}``,
``{{ suspension.motifs|box('refus_controle') }}``). Each value in the context
is wrapped with its dotted path so that, while a document renders, the Jinja
``finalize`` hook sees every printed box and text zone *in document order*
with its path and option code. That order is how the layout map ties each ☐
glyph of the PDF to a path without measuring anything by hand.
"""

from __future__ import annotations

import contextvars
import datetime as dt
from dataclasses import dataclass
from typing import Any, Iterator

from jinja2 import Environment, StrictUndefined, pass_context
from markupsafe import Markup

from ..catalogue import FormDefinition, references
from ..catalogue.boxes import is_ticked
from ..catalogue.paths import join
from ..rules.programme import DEFAULT, Programme

#: The context key holding the form being rendered (read by the filters, never printed).
FORM_KEY = "__form__"

CHECKED, UNCHECKED = "\u2612", "\u2610"   # ☒ ☐


def format_value(value: Any) -> str:
    if value is None or value is False:
        return ""
    if value is True:
        return "Oui"
    if isinstance(value, dt.date):
        return value.strftime("%d/%m/%Y")
    if isinstance(value, list):
        return ", ".join(format_value(v) for v in value)
    return str(value)


class Val:
    """A leaf value and its path. Prints like the value; compares and iterates like it."""

    __slots__ = ("path", "value")

    def __init__(self, path: str, value: Any):
        self.path, self.value = path, value

    def __str__(self) -> str:
        return format_value(self.value)

    def __bool__(self) -> bool:
        return bool(self.value)

    def __eq__(self, other: Any) -> bool:
        return self.value == (other.value if isinstance(other, Val) else other)

    def __hash__(self) -> int:
        return hash(self.path)

    def __contains__(self, item: Any) -> bool:
        return isinstance(self.value, (list, tuple, str)) and item in self.value

    def __iter__(self) -> Iterator:
        return iter(self.value or [])

    def __len__(self) -> int:
        return len(self.value or [])

    def __repr__(self) -> str:
        return f"Val({self.path!r}, {self.value!r})"


class Group(dict):
    """A group of fields (``beneficiaire``), or a list row (``pap.2``)."""

    def __init__(self, path: str, items: dict):
        super().__init__(items)
        self.path = path

    def __getattr__(self, name: str) -> Any:   # Jinja tries attributes first
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass(frozen=True)
class Mark:
    """Something the layout map places: a box, a text zone or a signature zone."""

    kind: str            # "box" | "text" | "signature"
    path: str
    value: Any = None    # the option code of a box (True for a box alone)
    checked: bool = False

    def __str__(self) -> str:
        if self.kind == "box":
            return CHECKED if self.checked else UNCHECKED
        return ""


def wrap(value: Any, path: str) -> Any:
    if isinstance(value, dict):
        return Group(path, {k: wrap(v, join(path, k)) for k, v in value.items()})
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return Val(path, [wrap(v, join(path, i)) for i, v in enumerate(value)])
    return Val(path, value)


# -- filters -----------------------------------------------------------------

def f_box(val: Any, code: Any = True) -> Mark:
    """☒ when the value holds ``code`` (a multi-choice), equals it (a one-choice) or is true."""
    path = getattr(val, "path", "?")
    value = getattr(val, "value", val)
    return Mark("box", path, code, is_ticked(value, code))


def f_date(val: Any) -> Any:
    return val  # a Val prints its date dd/mm/yyyy; the filter names the intent in the template


@pass_context
def f_code(jctx: Any, val: Any) -> Any:
    """A code printed with its label, from the field's own list (ROME, codification)."""
    value = getattr(val, "value", None)
    form: FormDefinition | None = jctx.get(FORM_KEY)
    f = form.field(val.path) if value and form is not None else None
    if f is None:
        return val
    if f.options_from:
        entry = references.by_code(f.options_from).get(value)
        label = entry.label if entry else None
    else:
        option = f.option(value)
        label = option.label if option else None
    return Val(val.path, f"{value} – {label}") if label else val


def f_person(group: Any) -> str:
    """« Prénom NOM » of a person's group, as plain text (not a zone: the name's own field is
    elsewhere on the form); a dotted line to write on when the data has no name."""
    get = (lambda k: getattr(group.get(k), "value", None)) if isinstance(group, dict) else (lambda k: None)
    name = " ".join(str(v) for v in (get("prenom"), get("nom")) if v)
    return name or "……………………………………………………"


def f_zone(group: Any) -> Mark:
    return Mark("signature", getattr(group, "path", "?"))


@dataclass
class Chunk:
    rows: list
    continued: bool
    last: bool


@pass_context
def f_pages(jctx: Any, val: Any, per_page: int, min_rows: int = 0) -> list[Chunk]:
    """Split a list's rows into pages of ``per_page``; pad with blank rows for handwriting
    (shaped by the list's columns, so blank rows wrap like real ones)."""
    rows = list(getattr(val, "value", None) or [])
    path = getattr(val, "path", "?")
    total = max(len(rows), min_rows, 1)
    total = -(-total // per_page) * per_page
    form: FormDefinition | None = jctx.get(FORM_KEY)
    lst = form.field(path) if form is not None else None
    columns = lst.item_fields if lst is not None else ()
    for i in range(len(rows), total):
        rows.append(wrap({c.name: ([] if c.type == "multi" else False if c.type == "bool" else None)
                          for c in columns}, join(path, i)))
    chunks = [rows[i:i + per_page] for i in range(0, total, per_page)]
    return [Chunk(c, i > 0, i == len(chunks) - 1) for i, c in enumerate(chunks)]


# -- recording what is printed, in order ----------------------------------------

_recorder: contextvars.ContextVar[list | None] = contextvars.ContextVar("layout_recorder", default=None)
_probe: contextvars.ContextVar[bool] = contextvars.ContextVar("layout_probe", default=False)


def marker(n: int) -> str:
    """Text printed instead of a value in a probe render, to find a zone's position."""
    return f"\u27e6{n}\u27e7"   # ⟦n⟧


def _probe_run(n: int) -> Markup:
    """The marker in a run of its own at 1 pt, so that it moves nothing on the page:
    the probe's boxes and zones sit where the real render puts them."""
    return Markup('</w:t></w:r><w:r><w:rPr><w:sz w:val="2"/><w:szCs w:val="2"/></w:rPr>'
                  f'<w:t>{marker(n)}</w:t></w:r><w:r><w:t xml:space="preserve">')


def finalize(value: Any) -> Any:
    rec = _recorder.get()
    if isinstance(value, Mark):
        if rec is not None:
            rec.append(value)
            if value.kind == "signature" and _probe.get():
                return _probe_run(len(rec) - 1)
        return str(value)
    if isinstance(value, Val):
        if rec is not None and not isinstance(value.value, list):
            rec.append(Mark("text", value.path))
            if _probe.get():
                return _probe_run(len(rec) - 1)
        return str(value)
    if value is None:
        return ""
    return value


class Recording:
    """``with Recording(probe=True) as marks:`` — collect the marks a render prints."""

    def __init__(self, probe: bool = False):
        self.probe = probe
        self.marks: list[Mark] = []

    def __enter__(self) -> list[Mark]:
        self._t1 = _recorder.set(self.marks)
        self._t2 = _probe.set(self.probe)
        return self.marks

    def __exit__(self, *exc) -> None:
        _recorder.reset(self._t1)
        _probe.reset(self._t2)


def make_env() -> Environment:
    """The one Jinja environment: strict (a missing variable is an error), autoescaped."""
    env = Environment(undefined=StrictUndefined, autoescape=True, finalize=finalize)
    env.filters.update(box=f_box, date=f_date, code=f_code, zone=f_zone, pages=f_pages, person=f_person)
    return env


#: Names every template may use besides the form's own fields.
SERVICE_VARIABLES = {"document", "departement", "derived", "modele_indicatif", "entries", "programme"}


def build_context(form: FormDefinition, data: dict, *, derived: dict | None = None,
                  document: dict | None = None, departement: dict | None = None,
                  programme: Programme | None = None) -> dict:
    """The context of one render. ``data`` is the model's dump (every key present);
    ``programme``: the EDE bounds and grid in force (the printed EDE note shows them)."""
    programme = programme or DEFAULT
    ctx: dict[str, Any] = {k: wrap(v, k) for k, v in data.items()}
    ctx[FORM_KEY] = form
    ctx["derived"] = derived or {}
    ctx["document"] = document or {"id": "", "version": "", "qr": ""}
    ctx["departement"] = departement or {"nom": "", "logo": ""}
    ctx["programme"] = programme.template_values()
    # the printed note (« modèle indicatif ») shows while the grid in force is the indicative one
    ctx["modele_indicatif"] = bool(form.uses_ede_grid and programme.grid()["modele_indicatif"])
    if form.kind == "reference":
        ctx["entries"] = reference_rows(form)
    return ctx


def _sphere(extra: dict) -> str:
    spheres = [name for key, name in (("sphere_solidarite", "Solidarité"), ("sphere_professionnelle", "Professionnelle"))
               if extra.get(key)]
    return " et ".join(spheres) if len(spheres) < 2 else "Les deux"


def reference_rows(form: FormDefinition) -> list[dict]:
    """A reference list's printed rows: code, label, remark, the sphere an action belongs to
    (Annexe 6), and the domain heading before the first code of each domain (Annexe 4)."""
    rows, domain = [], None
    for e in form.entries():
        group = ""
        if e.extra.get("domaine") and e.extra["domaine"] != domain:
            domain = e.extra["domaine"]
            group = f"{domain} – {e.extra.get('domaine_libelle') or ''}".strip(" –")
        rows.append({"code": e.code, "label": e.label, "remarque": e.extra.get("remarque") or "",
                     "sphere": _sphere(e.extra) if e.selectable else "", "groupe": group,
                     "titre": not e.selectable})
    return rows


def raw(xml: str) -> Markup:
    """XML that goes into the document as is (images); never user text."""
    return Markup(xml)

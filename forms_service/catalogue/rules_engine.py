"""Evaluate a form's declared rules against its data.

A rule in a definition names a *check* (a small function registered here or in
``forms_service.rules``), its parameters and an optional ``when`` condition.
The engine knows no form by name: a new form gets its rules by declaring them.

Conditions are plain data::

    {"path": "objet", "has": "passage_ep"}         # a multi-choice holds a code
    {"path": "reorientation.demandee", "is": true}  # equality
    {"path": "objet_detail", "filled": true}
    {"all": [...]}, {"any": [...]}, {"not": {...}}

Parameters whose value is a string starting with ``@`` are read from the
programme's rules data (``data/programme.yaml``): durations and deadlines are
data, not constants in code.

Checks live in a :class:`Checks` registry. The generic ones are in ``GENERIC``
below; the programme's (``forms_service.rules``) are added explicitly by
``rules.register_all(registry)``: the catalogue never imports the rules.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping

from ..errors import Problem
from .definition import RuleSpec
from .paths import get_path as get


def is_filled(value: Any) -> bool:
    if value is None or value is False:
        return False
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, (list, tuple, dict)):
        return len(value) > 0
    return True


def holds(cond: dict | None, data: dict) -> bool:
    if not cond:
        return True
    if "all" in cond:
        return all(holds(c, data) for c in cond["all"])
    if "any" in cond:
        return any(holds(c, data) for c in cond["any"])
    if "not" in cond:
        return not holds(cond["not"], data)
    value = get(data, cond["path"])
    if "has" in cond:
        return isinstance(value, list) and cond["has"] in value
    if "is" in cond:
        return value == cond["is"]
    if "filled" in cond:
        return is_filled(value) == bool(cond["filled"])
    if "in" in cond:
        return value in cond["in"]
    raise ValueError(f"unknown condition {cond!r}")


@dataclass
class Context:
    """What a check sees: the data (python values: dates are ``date``), the form, the programme."""

    data: dict
    form: Any                 # FormDefinition
    params: dict              # programme rules data, with the settings' values applied
    today: dt.date
    derived: dict             # values a check computes for the caller (EDE total…)
    programme: Any = None     # rules.programme.Programme: the EDE grid and bounds in force

    def get(self, path: str, default: Any = None) -> Any:
        return get(self.data, path, default)

    def param(self, ref: Any) -> Any:
        if isinstance(ref, str) and ref.startswith("@"):
            return get(self.params, ref[1:])
        return ref


#: A finding: the path it concerns, and optionally a message replacing the rule's
#: own (with details such as a computed total).
Finding = tuple[str, str | None]
Check = Callable[..., Iterable[Finding]]


class Checks(dict):
    """Checks by the name a rule gives in ``check:``."""

    def register(self, name: str) -> Callable[[Check], Check]:
        def add(fn: Check) -> Check:
            if name in self:
                raise ValueError(f"check {name} registered twice")
            self[name] = fn
            return fn
        return add


#: The checks any form may use; ``rules.register_all`` adds the programme's.
GENERIC = Checks()
check = GENERIC.register


def run_rules(rules: Iterable[RuleSpec], ctx: Context, checks: Mapping[str, Check]) -> list[Problem]:
    problems: list[Problem] = []
    for rule in rules:
        if not holds(rule.when, ctx.data):
            continue
        params = {k: ctx.param(v) for k, v in rule.params.items()}
        for path, message in checks[rule.check](ctx, **params):
            problems.append(Problem(path, rule.code, message or rule.message.format(**params),
                                    rule.severity))
    return problems


# -- generic checks ----------------------------------------------------------

@check("required")
def _required(ctx: Context, paths: list[str]) -> Iterator[Finding]:
    for p in paths:
        if not is_filled(ctx.get(p)):
            yield p, None


@check("filled")
def _filled(ctx: Context, path: str) -> Iterator[Finding]:
    if not is_filled(ctx.get(path)):
        yield path, None


@check("any_filled")
def _any_filled(ctx: Context, paths: list[str], report_at: str | None = None) -> Iterator[Finding]:
    if not any(is_filled(ctx.get(p)) for p in paths):
        yield report_at or paths[0], None


@check("count")
def _count(ctx: Context, path: str, min: int | None = None, max: int | None = None) -> Iterator[Finding]:
    n = len(ctx.get(path) or [])
    if (min is not None and n < min) or (max is not None and n > max):
        yield path, None


@check("exactly_one")
def _exactly_one(ctx: Context, path: str) -> Iterator[Finding]:
    value = ctx.get(path)
    n = len(value or []) if isinstance(value, list) else int(is_filled(value))
    if n != 1:
        yield path, None


@check("tri_is")
def _tri_is(ctx: Context, path: str, state: Any) -> Iterator[Finding]:
    """A true/false/unknown fact (an attachment, a signature) is in the given state."""
    if ctx.get(path) is state:
        yield path, None


@check("tri_not_true")
def _tri_not_true(ctx: Context, path: str) -> Iterator[Finding]:
    if ctx.get(path) is not True:
        yield path, None


@check("date_after")
def _date_after(ctx: Context, path: str, after: str) -> Iterator[Finding]:
    end, start = ctx.get(path), ctx.get(after)
    if isinstance(end, dt.date) and isinstance(start, dt.date) and end <= start:
        yield path, None


@check("date_not_before")
def _date_not_before(ctx: Context, path: str, other: str) -> Iterator[Finding]:
    a, b = ctx.get(path), ctx.get(other)
    if isinstance(a, dt.date) and isinstance(b, dt.date) and a < b:
        yield path, None


@check("flag")
def _flag(ctx: Context, path: str) -> Iterator[Finding]:
    """Always a finding: the rule's ``when`` is the whole test."""
    yield path, None

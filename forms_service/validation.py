"""Validate a form's data: first its model (types, codes, dates), then its rules.

Every problem comes back at once, each with its path, rule code, severity and
French message. Model errors are reported as errors and stop the rules from
running (they read typed values); rule findings never raise: a half-filled form
may still be printed, and the caller decides (``strict``) what blocks.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Mapping

from pydantic import ValidationError

from .catalogue import FormDefinition
from .catalogue.model import problems_from
from .catalogue.rules_engine import Context, run_rules
from .errors import BadRequest, NotAForm, Problem, ValidationFailed
from .rules import all_checks
from .rules.programme import DEFAULT, Programme

#: Every check a definition may name: the generic ones and the programme's.
CHECKS = all_checks()


@dataclass
class ValidationReport:
    problems: list[Problem]
    derived: dict = field(default_factory=dict)   # computed values (EDE total, orientation…)
    model_valid: bool = True
    instance: Any = None                           # the pydantic instance when the model accepted the data

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def valid(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict:
        d = {"valid": self.valid, "errors": [p.as_dict() for p in self.problems]}
        if self.derived:
            d["derived"] = self.derived
        return d


def parse_model(form: FormDefinition, data: Any):
    """The typed instance of ``data``, or :class:`ValidationFailed` naming every bad path."""
    if form.kind != "form":
        raise NotAForm(form.id)
    if not isinstance(data, Mapping):
        raise BadRequest("Le document doit être un objet JSON", rule="objet_attendu")
    try:
        return form.model.model_validate(dict(data))
    except ValidationError as exc:
        raise ValidationFailed(problems_from(exc)) from None


def validate(form: FormDefinition, data: Any, *, programme: Programme | None = None,
             today: dt.date | None = None) -> ValidationReport:
    """Every problem in ``data`` for ``form``; raises only for a reference list or a non-object.

    ``programme``: the EDE bounds and grid in force (``Programme.from_settings(settings)``);
    ``None``: the programme's defaults.
    """
    try:
        instance = parse_model(form, data)
    except ValidationFailed as exc:
        return ValidationReport(list(exc.problems), model_valid=False)
    programme = programme or DEFAULT
    ctx = Context(data=instance.model_dump(mode="python"), form=form, params=programme.params(),
                  today=today or dt.date.today(), derived={}, programme=programme)
    problems = run_rules(form.rules(), ctx, CHECKS)
    return ValidationReport(problems, ctx.derived, True, instance)

"""Checks used by the données socio-professionnelles (Annexe 2), generic enough for any form.

* ``exclusive_option``: a « none » box (« Aucune difficulté », « Aucun obstacle », « Non »)
  is not ticked together with another box of the same group;
* ``year_within``: a year lies within the last N years of the validation date;
* ``reference_match``: a code of a reference list agrees with another field, through a
  column of that list (the département's Annexe 1 level and the CNAF ``nivetu``).
"""

from __future__ import annotations

from typing import Iterator

from ..catalogue import references
from ..catalogue.rules_engine import Checks, Context, Finding

checks = Checks()
check = checks.register

@check("exclusive_option")
def _exclusive_option(ctx: Context, path: str, code: str) -> Iterator[Finding]:
    """``code`` of the multi-choice at ``path`` is the only box ticked when it is ticked."""
    values = ctx.get(path) or []
    if code in values and len(values) > 1:
        yield path, None


@check("year_within")
def _year_within(ctx: Context, path: str, years_back: int) -> Iterator[Finding]:
    """A year between (validation year − ``years_back``) and the validation year."""
    year = ctx.get(path)
    if isinstance(year, int) and not (ctx.today.year - years_back <= year <= ctx.today.year):
        yield path, (f"Année {year} : attendue entre {ctx.today.year - years_back} "
                     f"et {ctx.today.year}")


@check("reference_match")
def _reference_match(ctx: Context, path: str, reference: str, column: str, other: str) -> Iterator[Finding]:
    """The entry of list ``reference`` chosen at ``path`` lists the value at ``other`` in ``column``."""
    code, value = ctx.get(path), ctx.get(other)
    if not code or not value:
        return
    entry = references.by_code(reference).get(code)
    if entry is None:
        return
    expected = entry.extra.get(column) or []
    if value not in expected:
        yield other, (f"Le niveau « {entry.label} » correspond au(x) code(s) CNAF "
                      f"{', '.join(expected)}, pas à {value}")

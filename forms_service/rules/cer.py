"""Checks on contracts: durations, deadlines, the PAP and the fiche de suivi emploi.

Each check takes the paths and parameters it works on from the rule that names
it, so the CERS and the CERP share them with their own durations (``@cers…``).
"""

from __future__ import annotations

import calendar
import datetime as dt
from typing import Iterator

from ..catalogue import references
from ..catalogue.rules_engine import Checks, Context, Finding, holds, is_filled


def add_months(d: dt.date, months: int) -> dt.date:
    month = d.month - 1 + months
    year, month = d.year + month // 12, month % 12 + 1
    return dt.date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


def contract_months(start: dt.date, end: dt.date) -> int | None:
    """Whole months from start to end, accepting both conventions used on paper:
    01/01 → 30/06 and 01/01 → 01/07 are both a 6-month contract. None if not whole."""
    for n in range(1, 61):
        target = add_months(start, n)
        if end in (target, target - dt.timedelta(days=1)):
            return n
        if target > end + dt.timedelta(days=1):
            return None
    return None

checks = Checks()
check = checks.register

@check("cer_duration")
def _cer_duration(ctx: Context, start: str, end: str, durations: list[int]) -> Iterator[Finding]:
    s, e = ctx.get(start), ctx.get(end)
    if isinstance(s, dt.date) and isinstance(e, dt.date) and e > s:
        n = contract_months(s, e)
        ctx.derived["duree_mois"] = n
        if n not in durations:
            allowed = ", ".join(str(d) for d in durations)
            yield end, (f"Durée du contrat : {n} mois" if n else "Durée du contrat : pas un nombre entier de mois") \
                + f" ; durées admises : {allowed} mois"


@check("cer_renewals")
def _cer_renewals(ctx: Context, path: str, max_renewals: int | None, max_months: int | None,
                  start: str, end: str, previous_months: str) -> Iterator[Finding]:
    """CERS: renewable once, 12 months in a row at most."""
    renewals = ctx.get(path) or 0
    if max_renewals is not None and renewals > max_renewals:
        yield path, f"Renouvellement n° {renewals} : le contrat n'est renouvelable que {max_renewals} fois"
        return
    s, e = ctx.get(start), ctx.get(end)
    done = ctx.get(previous_months) or 0
    if max_months and isinstance(s, dt.date) and isinstance(e, dt.date) and e > s:
        n = contract_months(s, e) or 0
        if done + n > max_months:
            yield previous_months, (f"{done} mois déjà effectués + {n} mois : plus de {max_months} mois "
                                    "consécutifs ; transmettre le PAP et son bilan à l'équipe pluridisciplinaire")


@check("signed_within")
def _signed_within(ctx: Context, path: str, after: str, months: int) -> Iterator[Finding]:
    """The contract is signed within ``months`` of the orientation decision."""
    signed, decided = ctx.get(path), ctx.get(after)
    if isinstance(signed, dt.date) and isinstance(decided, dt.date):
        if signed > add_months(decided, months):
            yield path, None
        elif signed < decided:
            yield path, "Le contrat est signé avant la décision d'orientation"


@check("cer_running")
def _cer_running(ctx: Context, start: str, end: str, on: str | None = None) -> Iterator[Finding]:
    """The CER is in force on the request's date (the référent's signature date, or today)."""
    s, e = ctx.get(start), ctx.get(end)
    day = (ctx.get(on) if on else None) or ctx.today
    if isinstance(s, dt.date) and isinstance(e, dt.date) and not (s <= day <= e):
        yield end, None


# -- the PAP ------------------------------------------------------------------

def _actions(ctx: Context, path: str) -> list[tuple[int, dict]]:
    return [(i, row) for i, row in enumerate(ctx.get(path) or []) if row.get("code")]


@check("pap_sphere")
def _pap_sphere(ctx: Context, path: str, sphere: str) -> Iterator[Finding]:
    """Each action's code is allowed for the contract's sphere, and matches its theme."""
    table = references.by_code("annexe-6")
    key = f"sphere_{sphere}"
    for i, row in _actions(ctx, path):
        entry = table[row["code"]]
        if not entry.extra[key]:
            yield f"{path}.{i}.code", (f"L'action {row['code']} « {entry.label} » n'est pas ouverte "
                                       f"aux contrats de la sphère {sphere}")


@check("pap_theme")
def _pap_theme(ctx: Context, path: str) -> Iterator[Finding]:
    table = references.by_code("annexe-6")
    for i, row in _actions(ctx, path):
        theme = row.get("theme")
        if theme and table[row["code"]].extra["theme"] != theme:
            yield f"{path}.{i}.theme", (f"Le code {row['code']} appartient au thème "
                                        f"{table[row['code']].extra['theme']}, pas au thème {theme}")


@check("pap_rows_complete")
def _pap_rows_complete(ctx: Context, path: str, columns: list[str]) -> Iterator[Finding]:
    for i, row in enumerate(ctx.get(path) or []):
        if not any(row.get(c) for c in columns):
            continue  # an empty row printed for handwriting
        for c in columns:
            if not row.get(c):
                yield f"{path}.{i}.{c}", None


@check("pap_dates")
def _pap_dates(ctx: Context, path: str) -> Iterator[Finding]:
    for i, row in enumerate(ctx.get(path) or []):
        s, e = row.get("date_debut"), row.get("date_fin")
        if isinstance(s, dt.date) and isinstance(e, dt.date) and e <= s:
            yield f"{path}.{i}.date_fin", None


@check("pap_full_length")
def _pap_full_length(ctx: Context, path: str, start: str, end: str, tolerance_days: int = 7) -> Iterator[Finding]:
    """At least one action lasts as long as the contract (simple steps may be shorter)."""
    s, e = ctx.get(start), ctx.get(end)
    actions = _actions(ctx, path)
    if not (isinstance(s, dt.date) and isinstance(e, dt.date)) or not actions:
        return
    needed = (e - s).days - tolerance_days
    for _, row in actions:
        rs, re_ = row.get("date_debut"), row.get("date_fin")
        if isinstance(rs, dt.date) and isinstance(re_, dt.date) and (re_ - rs).days >= needed:
            return
    yield path, None


@check("pap_not_alone")
def _pap_not_alone(ctx: Context, path: str, level: str) -> Iterator[Finding]:
    """An action marked « ne peut être la seule action » (``oui``, or ``parfois``) is not alone."""
    actions = _actions(ctx, path)
    if len(actions) != 1:
        return
    i, row = actions[0]
    entry = references.by_code("annexe-6")[row["code"]]
    if entry.extra["ne_peut_etre_seule"] == level:
        yield f"{path}.{i}.code", f"L'action {row['code']} « {entry.label} » : {entry.extra['remarque']}"


@check("pap_derogation")
def _pap_derogation(ctx: Context, path: str, codes: list[str], flag: str) -> Iterator[Finding]:
    for i, row in _actions(ctx, path):
        if row["code"] in codes and not row.get(flag):
            yield f"{path}.{i}.{flag}", None


# -- the fiche de suivi emploi ---------------------------------------------------

@check("offres_refusees")
def _offres_refusees(ctx: Context, path: str, max_refused: int) -> Iterator[Finding]:
    refused = [i for i, row in enumerate(ctx.get(path) or [])
               if row.get("raisonnable") == "oui" and row.get("refusee")]
    ctx.derived["offres_raisonnables_refusees"] = len(refused)
    if len(refused) > max_refused:
        yield path, (f"{len(refused)} offres raisonnables refusées (plus de {max_refused}) : "
                     "saisine possible de l'équipe pluridisciplinaire (à apprécier, non automatique)")


# -- list rows (the contracts' tables: PAP, métiers, fiche de suivi emploi) ------------

def _row_filled(row: dict, columns: list[str] | None = None) -> bool:
    """Whether a row holds something (in ``columns``, or anywhere): blank rows printed
    for handwriting do not count."""
    return isinstance(row, dict) and any(is_filled(row.get(c)) for c in (columns or row))


@check("rows_min")
def _rows_min(ctx: Context, path: str, min: int, columns: list[str] | None = None) -> Iterator[Finding]:
    """At least ``min`` rows with something in ``columns`` (any column when not given)."""
    if sum(1 for row in ctx.get(path) or [] if _row_filled(row, columns)) < min:
        yield path, None


@check("rows_require")
def _rows_require(ctx: Context, path: str, columns: list[str], when: dict | None = None) -> Iterator[Finding]:
    """In each non-blank row where ``when`` holds (a condition on the row's own columns,
    e.g. ``{path: resultat, in: [non_atteint]}``), every one of ``columns`` is filled."""
    for i, row in enumerate(ctx.get(path) or []):
        if not _row_filled(row) or not holds(when, row):
            continue
        for c in columns:
            if not is_filled(row.get(c)):
                yield f"{path}.{i}.{c}", None

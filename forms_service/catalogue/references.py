"""The code lists of Annexes 1, 4 and 6, shipped as CSV package data.

They are read once and shared: the forms' option lists (``options_from``), the
rules (which action codes a contract's sphere allows) and the printed reference
documents all read the same rows.
"""

from __future__ import annotations

import csv
from functools import lru_cache
from importlib import resources

from .definition import ReferenceEntry


def _rows(filename: str) -> list[dict[str, str]]:
    with resources.files("forms_service.data").joinpath(filename).open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@lru_cache(maxsize=None)
def niveaux_diplomes() -> tuple[ReferenceEntry, ...]:
    """Annexe 1: the département's levels, with their CNAF ``nivetu`` equivalents."""
    return tuple(ReferenceEntry(r["code"], r["libelle"],
                                {"nivetu_cnaf": r["nivetu_cnaf"].split()})
                 for r in _rows("niveaux_diplomes.csv"))


@lru_cache(maxsize=None)
def codes_rome() -> tuple[ReferenceEntry, ...]:
    """Annexe 4: the ROME codes, each with its domain letter and domain title."""
    return tuple(ReferenceEntry(r["code"], r["libelle"],
                                {"domaine": r["domaine"], "domaine_libelle": r["domaine_libelle"]})
                 for r in _rows("rome_codes.csv"))


@lru_cache(maxsize=None)
def codifications_actions() -> tuple[ReferenceEntry, ...]:
    """Annexe 6: themes A–J and their actions, with where each may be used.

    ``selectionnable`` is false for headings (a theme or a sub-group) that a PAP
    row cannot name; ``ne_peut_etre_seule`` is ``oui``, ``non`` or ``parfois``.
    """
    out = []
    for r in _rows("codifications_actions.csv"):
        selectable = r["selectionnable"] == "oui"
        out.append(ReferenceEntry(r["code"], r["libelle"], {
            "theme": r["theme"],
            "selectionnable": selectable,
            "sphere_solidarite": r["sphere_solidarite"] == "oui",
            "sphere_professionnelle": r["sphere_professionnelle"] == "oui",
            "ne_peut_etre_seule": r["ne_peut_etre_seule"] or "non",
            "remarque": r["remarque"] or None,
        }, selectable))
    return tuple(out)


def themes() -> tuple[ReferenceEntry, ...]:
    """The ten themes (A–J) of the codification: its one-letter rows."""
    return tuple(e for e in codifications_actions() if "." not in e.code)


#: Reference lists by the name definitions use in ``options_from``.
LISTS = {
    "annexe-1": niveaux_diplomes,
    "annexe-4": codes_rome,
    "annexe-6": codifications_actions,
    "themes": themes,
}


def entries(name: str) -> tuple[ReferenceEntry, ...]:
    return LISTS[name]()


@lru_cache(maxsize=None)
def codes(name: str) -> frozenset[str]:
    return frozenset(e.code for e in entries(name))


@lru_cache(maxsize=None)
def selectable_codes(name: str) -> frozenset[str]:
    """The codes a field may hold (a list's headings, such as Annexe 6's themes, excluded)."""
    return frozenset(e.code for e in entries(name) if e.selectable)


@lru_cache(maxsize=None)
def by_code(name: str) -> dict[str, ReferenceEntry]:
    return {e.code: e for e in entries(name)}

"""The échelle de distance à l'emploi: its total, proposal and colour alerts.

Nothing here names an item or says a word to the user: the items, points and
colours come from the grid in force (``catalogue.ede_grid``, chosen by the
settings through :class:`~forms_service.rules.programme.Programme`), the bounds and
the French wording of the proposals and colours from ``data/programme.yaml``.
"""

from __future__ import annotations

from typing import Iterator

from ..catalogue.rules_engine import Checks, Context, Finding
from .programme import DEFAULT, Programme

checks = Checks()
check = checks.register


def score(paliers: dict, programme: Programme = DEFAULT) -> dict:
    """Total, proposal and colour alerts for the chosen paliers ({item: "1".."6"})."""
    grid, params = programme.grid(), programme.params()["ede"]
    bound_low, bound_high = programme.bounds
    total, alerts, missing = 0, [], []
    for item in grid["items"]:
        chosen = (paliers or {}).get(item["code"])
        if not chosen:
            missing.append(item["code"])
            continue
        cell = item["paliers"][int(chosen) - 1]
        total += cell["points"]
        if cell["couleur"]:
            alerts.append({"item": item["code"], "label": item["label"], "palier": chosen,
                           "couleur": cell["couleur"],
                           "signification": params["couleurs"][cell["couleur"]]})
    if total < bound_low:
        orientation = "professionnelle"
    elif total > bound_high:
        orientation = "solidarite"
    else:  # the bounds themselves go to the équipe
        orientation = "equipe_pluridisciplinaire"
    complete = not missing
    return {"total": total, "complet": complete, "items_manquants": missing,
            "orientation": orientation if complete else None,
            "orientation_libelle": params["orientations"][orientation] if complete else None,
            "alertes": alerts, "modele_indicatif": grid["modele_indicatif"]}


def _programme(ctx: Context) -> Programme:
    return ctx.programme or DEFAULT


@check("ede_score")
def _ede_score(ctx: Context, path: str) -> Iterator[Finding]:
    result = score(ctx.get(path), _programme(ctx))
    ctx.derived["ede"] = result
    for code in result["items_manquants"]:
        yield f"{path}.{code}", None


@check("ede_alert")
def _ede_alert(ctx: Context, path: str, couleur: str) -> Iterator[Finding]:
    for alert in score(ctx.get(path), _programme(ctx))["alertes"]:
        if alert["couleur"] == couleur:
            yield f"{path}.{alert['item']}", f"{alert['label']} (palier {alert['palier']}) : {alert['signification']}"

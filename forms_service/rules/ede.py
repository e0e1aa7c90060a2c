"""The échelle de distance à l'emploi: its grid as data, its total and proposal.

The grid printed in the seed is unknown: the shipped one is indicative and a
département loads its own file. Nothing here names an item: the fields, the
total and the colour alerts come from whatever grid is loaded.
"""

from __future__ import annotations

import os
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Iterator


from ..catalogue import field_generator, parse_yaml
from ..catalogue.rules_engine import Context, Finding, check

ORIENTATIONS = {
    "professionnelle": "Orientation prioritaire Pôle Emploi (sphère professionnelle)",
    "equipe_pluridisciplinaire": "L'équipe pluridisciplinaire ou d'orientation se prononce",
    "solidarite": "Orientation vers la sphère solidarité",
}
COLOUR_MEANING = {
    "vert": "point de vigilance",
    "rose": "à l'appréciation de l'équipe pluridisciplinaire",
    "bleu": "frein réel : orientation solidarité à prioriser",
}


def grid_path() -> str | None:
    """The département's grid file, when it has loaded one (read with the rest of the config)."""
    from .. import config  # config is read once, there
    getter = getattr(config, "ede_grid_file", None)
    return getter() if getter else None


@lru_cache(maxsize=4)
def load_grid(path: str | None = None) -> dict:
    if path:
        raw = parse_yaml(Path(path).read_text(encoding="utf-8"))
    else:
        with resources.files("forms_service.data").joinpath("ede_grid.yaml").open(encoding="utf-8") as fh:
            raw = parse_yaml(fh)
    items = []
    for item in raw["items"]:
        paliers = []
        for n, p in enumerate(item["paliers"], start=1):
            p = p if isinstance(p, dict) else {"label": p}
            paliers.append({
                "code": str(n), "label": p["label"],
                "points": int(p.get("points", raw["points"][n - 1])),
                "couleur": p.get("couleur", raw["couleurs"][n - 1]),
                "complement": bool(p.get("complement", False)),
            })
        if len(paliers) != 6:
            raise ValueError(f"EDE item {item['code']}: 6 paliers expected")
        items.append({"code": item["code"], "label": item["label"], "paliers": paliers})
    if len(items) != 8:
        raise ValueError("EDE grid: 8 items expected")
    return {"modele_indicatif": bool(raw.get("modele_indicatif")), "titre": raw.get("titre"), "items": items}


def grid() -> dict:
    return load_grid(grid_path())


@field_generator("ede_grid")
def ede_fields(section: dict) -> list[dict]:
    """One one-choice field per item (its 6 paliers are the options) and its complement."""
    out = []
    for item in grid()["items"]:
        out.append({"path": f"paliers.{item['code']}", "type": "choice", "label": item["label"],
                    "provenance": "inferred",
                    "options": [{"code": p["code"], "label": p["label"], "points": p["points"],
                                 "couleur": p["couleur"]} for p in item["paliers"]]})
    for item in grid()["items"]:
        out.append({"path": f"complements.{item['code']}", "type": "text", "max_length": 24,
                    "label": item["label"], "provenance": "inferred"})
    return out


def score(paliers: dict, bound_low: int, bound_high: int) -> dict:
    """Total, proposal and colour alerts for the chosen paliers ({item: "1".."6"})."""
    total, alerts, missing = 0, [], []
    for item in grid()["items"]:
        chosen = (paliers or {}).get(item["code"])
        if not chosen:
            missing.append(item["code"])
            continue
        cell = item["paliers"][int(chosen) - 1]
        total += cell["points"]
        if cell["couleur"]:
            alerts.append({"item": item["code"], "label": item["label"], "palier": chosen,
                           "couleur": cell["couleur"], "signification": COLOUR_MEANING[cell["couleur"]]})
    if total < bound_low:
        orientation = "professionnelle"
    elif total > bound_high:
        orientation = "solidarite"
    else:  # 18..35 inclusive: the bounds themselves go to the équipe
        orientation = "equipe_pluridisciplinaire"
    return {"total": total, "complet": not missing, "items_manquants": missing,
            "orientation": orientation if not missing else None,
            "orientation_libelle": ORIENTATIONS[orientation] if not missing else None,
            "alertes": alerts, "modele_indicatif": grid()["modele_indicatif"]}


@check("ede_score")
def _ede_score(ctx: Context, path: str, bound_low: int, bound_high: int) -> Iterator[Finding]:
    result = score(ctx.get(path), bound_low, bound_high)
    ctx.derived["ede"] = result
    for code in result["items_manquants"]:
        yield f"{path}.{code}", None


@check("ede_alert")
def _ede_alert(ctx: Context, path: str, couleur: str) -> Iterator[Finding]:
    for alert in score(ctx.get(path), 0, 0)["alertes"]:
        if alert["couleur"] == couleur:
            yield f"{path}.{alert['item']}", f"{alert['label']} (palier {alert['palier']}) : {alert['signification']}"

"""The échelle de distance à l'emploi's grid: 8 items × 6 paliers, as data.

The grid printed in the seed is unknown: the shipped one (``data/ede_grid.yaml``)
is indicative and a département loads its own file (``settings.ede_grid``). The
grid is part of the Annexe 3 definition (its items are the form's fields, see
``fields_from: ede_grid``) and of its scoring (``rules/ede.py``); both read it
from here, by path, so two apps with two grids do not share one.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

from .yaml_data import parse_yaml

ITEMS, PALIERS = 8, 6


@lru_cache(maxsize=8)
def _load(path: str | None) -> dict:
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
        if len(paliers) != PALIERS:
            raise ValueError(f"EDE item {item['code']}: {PALIERS} paliers expected")
        items.append({"code": item["code"], "label": item["label"], "paliers": paliers})
    if len(items) != ITEMS:
        raise ValueError(f"EDE grid: {ITEMS} items expected")
    return {"modele_indicatif": bool(raw.get("modele_indicatif")), "titre": raw.get("titre"), "items": items}


def load_grid(path: str | Path | None = None) -> dict:
    """The grid in ``path`` (a département's file), or the indicative one."""
    return _load(str(path) if path else None)


def grid_fields(grid: dict) -> list[dict]:
    """The fields of a grid, as a definition would declare them: one one-choice field per
    item (its 6 paliers are the options, with their points and colour), then one
    complement text per item."""
    out = []
    for item in grid["items"]:
        out.append({"path": f"paliers.{item['code']}", "type": "choice", "label": item["label"],
                    "provenance": "inferred",
                    "options": [{"code": p["code"], "label": p["label"], "points": p["points"],
                                 "couleur": p["couleur"]} for p in item["paliers"]]})
    for item in grid["items"]:
        out.append({"path": f"complements.{item['code']}", "type": "text", "max_length": 24,
                    "label": item["label"], "provenance": "inferred"})
    return out

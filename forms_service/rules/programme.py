"""The programme's parameters in force: ``data/programme.yaml`` with the settings applied.

:class:`Programme` is the small typed object that validation and rendering receive
explicitly (``validate(fd, data, programme=...)``, ``build_context(..., programme=...)``):
the EDE bounds and grid of the app being served, built from its settings by
``Programme.from_settings(settings)``, never read from the process environment.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..catalogue import Catalogue, catalogue_for
from ..catalogue.ede_grid import load_grid
from ..catalogue.yaml_data import load_yaml


@lru_cache(maxsize=1)
def _base() -> dict:
    return load_yaml("forms_service.data", "programme.yaml")


@dataclass(frozen=True)
class Programme:
    """EDE bounds and grid; ``None`` means the programme's default (``programme.yaml``,
    the indicative grid)."""

    ede_bound_low: int | None = None
    ede_bound_high: int | None = None
    ede_grid: Path | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> "Programme":
        """From a ``config.Settings`` (or anything with the same three attributes)."""
        return cls(settings.ede_bound_low, settings.ede_bound_high,
                   Path(settings.ede_grid) if settings.ede_grid else None)

    def __post_init__(self) -> None:
        low, high = self.bounds
        if low > high:
            raise ValueError("EDE_BOUND_LOW doit être inférieur ou égal à EDE_BOUND_HIGH")

    @property
    def bounds(self) -> tuple[int, int]:
        ede = _base()["ede"]
        low = ede["bound_low"] if self.ede_bound_low is None else int(self.ede_bound_low)
        high = ede["bound_high"] if self.ede_bound_high is None else int(self.ede_bound_high)
        return low, high

    def params(self) -> dict:
        """The rules data the definitions' ``@`` parameters read (``@ede.bound_low``)."""
        return _params(self.bounds)

    def grid(self) -> dict:
        return load_grid(self.ede_grid)

    @property
    def catalogue(self) -> Catalogue:
        """The catalogue whose Annexe 3 has this grid's items as fields."""
        return catalogue_for(self.ede_grid)

    def template_values(self) -> dict:
        """What the printed forms show of the programme (the EDE note's bounds)."""
        low, high = self.bounds
        return {"ede": {"bound_low": low, "bound_high": high}}


@lru_cache(maxsize=16)
def _params(bounds: tuple[int, int]) -> dict:
    params = copy.deepcopy(_base())
    params["ede"]["bound_low"], params["ede"]["bound_high"] = bounds
    return params


DEFAULT = Programme()


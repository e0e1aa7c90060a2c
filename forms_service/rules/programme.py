"""The programme's parameters (``data/programme.yaml``), with configuration overrides."""

from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any, Mapping

from ..catalogue import load_yaml


@lru_cache(maxsize=1)
def _base() -> dict:
    return load_yaml("forms_service.data", "programme.yaml")


def programme_params(overrides: Mapping[str, Any] | None = None) -> dict:
    """The parameters; ``overrides`` use dotted keys (``{"ede.bound_low": 20}``)."""
    if not overrides:
        return _base()
    params = copy.deepcopy(_base())
    for key, value in overrides.items():
        node = params
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return params

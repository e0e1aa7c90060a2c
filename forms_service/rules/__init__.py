"""The programme's own checks: EDE scoring, CER durations and deadlines, the PAP, the DSP.

Each module holds its checks in a ``checks`` registry under the names the
definitions use (``check: cer_duration``…); ``register_all`` adds them to a
registry explicitly. Nothing registers itself on import, and the catalogue does
not import this package (it sits above the catalogue).
"""

from __future__ import annotations

from ..catalogue.rules_engine import GENERIC, Checks
from . import cer, dsp, ede

MODULES = (cer, dsp, ede)


def register_all(registry: Checks) -> Checks:
    """``registry`` with every programme check added (returned, for chaining)."""
    for module in MODULES:
        for name, fn in module.checks.items():
            registry.register(name)(fn)
    return registry


def all_checks() -> Checks:
    """The generic checks and the programme's: what the service validates with."""
    return register_all(Checks(GENERIC))

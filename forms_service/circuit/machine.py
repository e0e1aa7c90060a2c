"""The circuit's state machine, read from ``states.yaml`` (the one place it is written).

    m = machine()
    m.step("correspondant").next_state("favorable", {"suspension"})   # → "en_ep"
    m.transitions                                                   # every allowed (from, to)
    m.check(step, state, roles)          # Conflict (409) / Forbidden (403) when not allowed now

The database holds the same transitions (table ``circuit_transition``, migration 0006) and
refuses any other change of a request's state, whatever code path writes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from forms_service.catalogue.rules_engine import holds
from forms_service.errors import Forbidden, TransitionRefused

STATES_FILE = Path(__file__).with_name("states.yaml")
SYSTEM_ROLE = "systeme"


@dataclass(frozen=True)
class NextRule:
    to: str
    choix: str | None = None
    types: frozenset[str] | None = None

    def matches(self, choix: str, types: set[str]) -> bool:
        return ((self.choix is None or self.choix == choix)
                and (self.types is None or bool(self.types & types)))


@dataclass(frozen=True)
class Step:
    code: str
    label: str
    sources: tuple[str, ...]
    roles: frozenset[str]
    choices: dict[str, str]
    next: tuple[NextRule, ...]
    choice_field: str | None = None
    comment_field: str | None = None
    date_field: str | None = None
    delay_days: int | None = None
    #: Months the step is due after the request entered its state (``rules.cer.add_months``).
    delay_months: int | None = None
    #: Choices only the service itself takes (the EP's « réputé rendu »).
    system_choices: frozenset[str] = frozenset()
    #: The fiche's reserved section the step fills beyond its choice and comment (the
    #: Président's structure and avenant, the structure's dates and motif): ``fields=``.
    section: str | None = None

    def next_state(self, choix: str, types: set[str]) -> str:
        for rule in self.next:
            if rule.matches(choix, types):
                return rule.to
        raise ValueError(f"step {self.code}: no next state for {choix}")  # states.yaml ends with a catch-all

    @property
    def targets(self) -> set[str]:
        return {rule.to for rule in self.next}


@dataclass(frozen=True)
class Machine:
    states: dict[str, str]
    initial: str
    types: dict[str, str]
    steps: dict[str, Step]
    type_conditions: dict[str, dict]

    def types_of(self, data: dict) -> list[str]:
        """The request types a fiche's data carries (``states.yaml`` ``types``)."""
        return [code for code, cond in self.type_conditions.items() if holds(cond, data)]

    def step(self, code: str) -> Step:
        return self.steps[code]

    @property
    def transitions(self) -> set[tuple[str, str]]:
        return {(source, target) for step in self.steps.values()
                for source in step.sources for target in step.targets}

    def steps_from(self, state: str) -> list[Step]:
        return [s for s in self.steps.values() if state in s.sources]

    def check(self, step: Step, state: str, roles: frozenset[str], *, is_admin: bool = False) -> None:
        """Raise unless ``step`` may be taken now (the state) by someone with ``roles``."""
        if state not in step.sources:
            raise TransitionRefused(
                f"L'étape « {step.label} » n'est pas possible : la demande est à l'état "
                f"« {self.states[state]} »", path="etape")
        if not (is_admin and SYSTEM_ROLE not in step.roles) and not (step.roles & roles):
            raise Forbidden(f"Votre rôle ne permet pas l'étape « {step.label} »", path="etape")


def _load(path: Path) -> Machine:
    raw = yaml.safe_load(path.read_text("utf-8"))
    states = dict(raw["states"])
    steps = {}
    for code, s in raw["steps"].items():
        rules = tuple(NextRule(to=n["to"], choix=n.get("choix"),
                               types=frozenset(n["types"]) if "types" in n else None)
                      for n in s["next"])
        steps[code] = Step(code=code, label=s["label"], sources=tuple(s["from"]),
                           roles=frozenset(s["roles"]), choices=dict(s["choices"]), next=rules,
                           choice_field=s.get("choice_field"), comment_field=s.get("comment_field"),
                           date_field=s.get("date_field"), delay_days=s.get("delay_days"),
                           delay_months=s.get("delay_months"),
                           system_choices=frozenset(s.get("system_choices") or ()),
                           section=s.get("section"))
    m = Machine(states=states, initial=raw["initial"], steps=steps,
                types={code: t["label"] for code, t in raw["types"].items()},
                type_conditions={code: t["when"] for code, t in raw["types"].items()})
    for step in steps.values():
        unknown = (set(step.sources) | step.targets) - set(states)
        if unknown:
            raise ValueError(f"{path.name}: step {step.code} names unknown states {sorted(unknown)}")
        for rule in step.next:
            if rule.choix is not None and rule.choix not in step.choices:
                raise ValueError(f"{path.name}: step {step.code}: unknown choice {rule.choix}")
            if rule.types and not rule.types <= set(m.types):
                raise ValueError(f"{path.name}: step {step.code}: unknown types {rule.types}")
        if not step.system_choices <= set(step.choices):
            raise ValueError(f"{path.name}: step {step.code}: system_choices not among its choices")
        if step.next[-1].choix is not None or step.next[-1].types is not None:
            raise ValueError(f"{path.name}: step {step.code} must end with a catch-all next")
    return m


@cache
def machine() -> Machine:
    return _load(STATES_FILE)


__all__ = ["machine", "Machine", "Step", "TransitionRefused", "STATES_FILE", "SYSTEM_ROLE"]

"""Recovery plans (``twinsite_recovery_plans``): a site's scenarios in ordered groups, failed over, tested or
switched back together (twinsite.plans runs them; docs/site-recovery.md).

A plan is checked against the schema's ``recovery_plan`` (config.loader) and against the scenarios it names
(:func:`problems`): each exists and is in one group of the plan only, what it ``needs`` is in an earlier
group, and the standby it fails over to is one of its replicas.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from twinsite.config.units import parse_duration

#: The inventory variable the plans are declared in (beside ``twinsite_scenarios``).
PLANS_KEY = "twinsite_recovery_plans"
STOP, CONTINUE = "stop", "continue"
DEFAULT_TIMEOUT = "15m"


@dataclass(frozen=True)
class PlanStep:
    """One scenario of a group, with what it needs and where it goes."""

    scenario: str
    needs: tuple[str, ...]
    to: str | None  # the standby a failover makes active (None: the scenario's first replica)
    timeout: float  # seconds


@dataclass(frozen=True)
class PlanGroup:
    name: str
    steps: tuple[PlanStep, ...]
    parallel: int
    on_failure: str

    @property
    def scenarios(self) -> list[str]:
        return [st.scenario for st in self.steps]


@dataclass(frozen=True)
class RecoveryPlan:
    name: str
    description: str
    groups: tuple[PlanGroup, ...]

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> RecoveryPlan:
        """A plan from its (schema-valid) document, every default filled in."""
        groups = []
        for g in doc["groups"]:
            timeout = g.get("timeout", doc.get("timeout", DEFAULT_TIMEOUT))
            steps = tuple(_step(item, doc.get("to"), timeout) for item in g["scenarios"])
            groups.append(
                PlanGroup(
                    name=g["name"],
                    steps=steps,
                    parallel=int(g.get("parallel", len(steps))),
                    on_failure=g.get("on_failure", doc.get("on_failure", STOP)),
                )
            )
        return cls(name=doc["name"], description=doc.get("description", ""), groups=tuple(groups))

    @property
    def steps(self) -> Iterator[tuple[PlanGroup, PlanStep]]:
        for g in self.groups:
            for st in g.steps:
                yield g, st


def _step(item: str | Mapping[str, Any], to: str | None, timeout: float | str) -> PlanStep:
    if isinstance(item, str):
        return PlanStep(item, (), to, parse_duration(timeout))
    return PlanStep(
        scenario=item["scenario"],
        needs=tuple(item.get("needs", ())),
        to=item.get("to", to),
        timeout=parse_duration(item.get("timeout", timeout)),
    )


def step_name(item: Any) -> str | None:
    """The scenario a group's item names (None: neither a name nor a mapping with one)."""
    if isinstance(item, str):
        return item
    name = item.get("scenario") if isinstance(item, Mapping) else None
    return name if isinstance(name, str) else None


def problems(plans: Sequence[Any], scenarios: Sequence[Mapping[str, Any]]) -> list[tuple[list[str | int], str]]:
    """What is wrong between schema-valid plans and the scenarios: (the key path in the plans' list, what)."""
    declared = {s.get("name"): s for s in scenarios if isinstance(s, Mapping)}
    out: list[tuple[list[str | int], str]] = []
    names: dict[str, int] = {}
    for i, plan in enumerate(plans):
        if not isinstance(plan, Mapping) or not isinstance(plan.get("groups"), list):
            continue  # (the schema says what is wrong with it)
        name = plan.get("name")
        if isinstance(name, str):
            if name in names:
                out.append(([i, "name"], f"plan name '{name}' is used twice (first as item {names[name]})"))
            names.setdefault(name, i)
        out.extend(_plan_problems(i, plan, declared))
    return out


def _plan_problems(
    i: int, plan: Mapping[str, Any], declared: Mapping[Any, Mapping[str, Any]]
) -> Iterator[tuple[list[str | int], str]]:
    seen: dict[str, str] = {}  # scenario -> its group
    groups: dict[str, int] = {}
    for j, group in enumerate(plan["groups"]):
        if not isinstance(group, Mapping):
            continue
        gname = str(group.get("name"))
        if gname in groups:
            yield (
                [i, "groups", j, "name"],
                f"group name '{gname}' is used twice in the plan (first as group {groups[gname]})",
            )
        groups.setdefault(gname, j)
        earlier = dict(seen)
        for k, item in enumerate(group.get("scenarios") or []):
            here: list[str | int] = [i, "groups", j, "scenarios", k]
            name = step_name(item)
            if name is None:
                continue
            if name not in declared:
                known = ", ".join(sorted(str(n) for n in declared)) or "none"
                yield here, f"scenario '{name}' is not declared in twinsite_scenarios (declared: {known})"
                continue
            if name in seen:
                yield (
                    here,
                    f"scenario '{name}' is already in group '{seen[name]}' of this plan; a scenario is in one group",
                )
                continue
            seen[name] = gname
            yield from _step_problems(here, plan, item, declared[name], earlier)


def _step_problems(
    here: list[str | int],
    plan: Mapping[str, Any],
    item: Any,
    scenario: Mapping[str, Any],
    earlier: Mapping[str, str],
) -> Iterator[tuple[list[str | int], str]]:
    name = scenario.get("name")
    own = item if isinstance(item, Mapping) else {}
    for need in own.get("needs", ()):
        if need not in earlier:
            where = "a later group or the same one" if need in _all_names(plan) else "no group of this plan"
            yield (
                [*here, "needs"],
                (f"'{name}' needs '{need}', which is in {where}; what a scenario needs must be in an earlier group"),
            )
    to = own.get("to", plan.get("to"))
    replicas = scenario.get("replicas") or []
    if to is not None and to not in replicas:
        path = [*here, "to"] if "to" in own else [here[0], "to"]
        yield path, f"'{to}' is not a replica of scenario '{name}' (its replicas: {', '.join(map(str, replicas))})"


def _all_names(plan: Mapping[str, Any]) -> set[str]:
    return {
        n
        for g in plan.get("groups") or []
        if isinstance(g, Mapping)
        for n in map(step_name, g.get("scenarios") or [])
        if n is not None
    }

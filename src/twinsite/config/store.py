"""The scenarios a host holds: one YAML file per scenario under the config directory.

:func:`load_dir` reads them all (checked before any is used), :func:`find` one by name. ``apply`` is what
the ``twinsite.dr.scenario`` module calls through the CLI: validate, compare with what is there, report
before/after, and change only when something differs (and not in check mode). A stopped scenario keeps its
definition and gets a marker that the agent honours (state.stopped).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from twinsite.config.loader import check_documents, load_file
from twinsite.config.scenario import Scenario
from twinsite.config.secrets import redacted
from twinsite.durable import write_text
from twinsite.errors import ConfigError
from twinsite.state import stopped

DEFAULT_CONFIG_DIR = Path("/etc/twinsite/scenarios")
STATES = ("present", "started", "stopped", "absent")


@dataclass(frozen=True)
class ApplyResult:
    changed: bool
    before: dict[str, Any]
    after: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """What is reported (alert secrets redacted: config.secrets)."""
        return {"changed": self.changed, "before": _shown(self.before), "after": _shown(self.after)}


def _shown(state: dict[str, Any]) -> dict[str, Any]:
    return {**state, "definition": redacted(state["definition"])} if "definition" in state else state


def load_dir(config_dir: Path) -> list[Scenario]:
    """Every scenario in ``config_dir/*.yml``; all files are checked before any is used."""
    if not config_dir.is_dir():
        return []
    scenarios: list[Scenario] = []
    for f in sorted(config_dir.glob("*.yml")) + sorted(config_dir.glob("*.yaml")):
        scenarios.extend(load_file(f))
    names = [s.name for s in scenarios]
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        raise ConfigError(f"scenario names used more than once: {', '.join(dups)}", where=str(config_dir))
    return scenarios


def find(config_dir: Path, name: str) -> Scenario:
    """The scenario called ``name`` in ``config_dir``, or a ConfigError naming the ones there are."""
    found = {s.name: s for s in load_dir(config_dir)}
    if name not in found:
        raise ConfigError(f"no scenario {name!r} in {config_dir}", hint=f"known: {', '.join(found) or 'none'}")
    return found[name]


def _file(config_dir: Path, name: str) -> Path:
    return config_dir / f"{name}.yml"


def current(config_dir: Path, name: str) -> dict[str, Any]:
    """{"state": ..., "definition": ...} as the host has it now."""
    f = _file(config_dir, name)
    if not f.exists():
        return {"state": "absent"}
    try:
        doc = yaml.safe_load(f.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"cannot read the scenario file: {exc}", where=str(f)) from exc
    return {"state": "stopped" if stopped.is_stopped(config_dir, name) else "started", "definition": doc}


def _run_state(wanted: str, current_state: str) -> str:
    """started/stopped as asked; ``present`` keeps a defined scenario's run state and starts a new one."""
    if wanted in ("started", "stopped"):
        return wanted
    return current_state if current_state != "absent" else "started"


def apply(config_dir: Path, name: str, definition: dict[str, Any] | None, state: str, *, check: bool) -> ApplyResult:
    if state not in STATES:
        raise ConfigError(f"state must be one of {', '.join(STATES)}, not {state!r}")
    before = current(config_dir, name)
    if state == "absent":
        after: dict[str, Any] = {"state": "absent"}
    else:
        if definition is None:
            if before["state"] == "absent":
                raise ConfigError(f"scenario {name!r} does not exist here: a definition is needed to create it")
            definition = before["definition"]
        if definition.get("name", name) != name:
            raise ConfigError(f"the definition is named {definition.get('name')!r}, not {name!r}")
        definition = {"name": name, **definition}
        _docs, problems = check_documents(definition, f"scenario {name}", None)
        if problems:
            raise ConfigError(
                "invalid scenario definition:\n" + "\n".join(f"  {p}" for p in problems), hint="nothing was changed"
            )
        after = {"state": _run_state(state, before["state"]), "definition": definition}
    changed = before != after
    if changed and not check:
        f = _file(config_dir, name)
        if after["state"] == "absent":
            f.unlink(missing_ok=True)
            stopped.mark(config_dir, name, False)
        else:
            write_text(f, yaml.safe_dump(after["definition"], sort_keys=False))
            stopped.mark(config_dir, name, after["state"] == "stopped")
    return ApplyResult(changed, before, after)

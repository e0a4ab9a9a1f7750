"""The scenarios a host holds: one YAML file per scenario under the config directory.

``apply`` is what the ``twinsite.dr.scenario`` module calls through the CLI: validate, compare with what
is there, report before/after, and change only when something differs (and not in check mode). A stopped
scenario keeps its definition and gets a ``<name>.stopped`` marker that the agent honours.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from twinsite.config.loader import check_documents
from twinsite.durable import write_text
from twinsite.errors import ConfigError

STATES = ("present", "started", "stopped", "absent")


@dataclass(frozen=True)
class ApplyResult:
    changed: bool
    before: dict[str, Any]
    after: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"changed": self.changed, "before": self.before, "after": self.after}


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
    stopped = (config_dir / f"{name}.stopped").exists()
    return {"state": "stopped" if stopped else "started", "definition": doc}


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
        marker = config_dir / f"{name}.stopped"
        if after["state"] == "absent":
            f.unlink(missing_ok=True)
            marker.unlink(missing_ok=True)
        else:
            write_text(f, yaml.safe_dump(after["definition"], sort_keys=False))
            if after["state"] == "stopped":
                marker.touch()
            else:
                marker.unlink(missing_ok=True)
    return ApplyResult(changed, before, after)

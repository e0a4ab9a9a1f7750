"""Run files: the persisted state of a run of steps (``switchover.json``, ``recovery/run.json``).

One JSON object, replaced durably at every change (ops.runner): the run's id, kind, parameters, creation
time and, per step, its state (``pending``, ``running``, ``done``, ``failed``), attempts, start and end, its
result (done) or error (failed); ``finished`` once the run ended. A run without ``finished`` is unfinished: the
next run of the same kind continues it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from twinsite.durable import read_json, write_json
from twinsite.errors import TwinsiteError

PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"


@dataclass
class StepState:
    name: str
    state: str = PENDING
    attempts: int = 0
    started: float | None = None
    ended: float | None = None
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def seconds(self) -> float | None:
        return None if self.started is None or self.ended is None else self.ended - self.started


@dataclass
class RunState:
    id: str
    kind: str
    params: dict[str, Any]
    created: float
    steps: list[StepState]
    finished: float | None = None

    @property
    def results(self) -> dict[str, Any]:
        return {s.name: s.result for s in self.steps if s.state == DONE}


def load(path: Path, error: type[TwinsiteError] = TwinsiteError) -> RunState | None:
    """The run in ``path`` (None when there is none); an unreadable one is ``error``."""
    data = read_json(path, what="the run state", error=error)
    return None if data is None else RunState(**{**data, "steps": [StepState(**s) for s in data["steps"]]})


def store(path: Path, run: RunState) -> None:
    write_json(path, asdict(run))


def _peek(path: Path) -> dict[str, Any] | None:
    data = read_json(path, what="the run state")
    return data if isinstance(data, dict) else None


def unfinished(path: Path) -> bool:
    """Whether ``path`` holds a run that has not finished (under way, or stopped by a crash or a failure)."""
    data = _peek(path)
    return data is not None and data.get("finished") is None


def interrupted(path: Path) -> bool:
    """An unfinished run whose last step was cut short (not failed: a failure is reported)."""
    try:
        data = _peek(path)
    except TwinsiteError:
        return False
    if data is None:
        return False
    return data.get("finished") is None and FAILED not in [st["state"] for st in data.get("steps", [])]

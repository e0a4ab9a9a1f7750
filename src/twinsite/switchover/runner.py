"""A persisted, resumable run of idempotent steps.

The run's state is one JSON file, replaced atomically and fsynced (with its directory) at every change:
before a step starts (``running``, attempt n) and after it ends (``done`` with its result, or ``failed``
with the error). Running the same run again skips the steps that are done and runs the others, starting
with the one that was ``running`` (a crash inside it) or ``failed``: every step must therefore be
idempotent, as the switchover steps are. A finished run is not run again; a new one starts only after it.
An unfinished run keeps its own parameters, unless no step of it is done yet (a refused preflight): then
the new parameters (``--unplanned`` given after the refusal) replace them.

``TWINSITE_CRASH_AFTER=STEP`` (for the fault tests) makes the process kill itself with SIGKILL right after
STEP's work and before it is recorded as done: the worst moment to die, which the next run must survive.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from twinsite.durable import write_json
from twinsite.errors import TwinsiteError
from twinsite.switchover import SwitchoverError

PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"


@dataclass(frozen=True)
class Step:
    name: str
    describe: str  # what it does, for the plan (--dry-run)
    run: Callable[[dict[str, Any]], dict[str, Any]]  # gets the results of the steps before it, by name


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


class Runner:
    def __init__(
        self, path: Path, kind: str, steps: Sequence[Step], *, error: type[TwinsiteError] = SwitchoverError
    ) -> None:
        self.path = path
        self.kind = kind
        self.steps = list(steps)
        self.error = error  # what a failed step is raised as (SwitchoverError, RecoveryError)

    # -- state ---------------------------------------------------------------------------------------
    def load(self) -> RunState | None:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except ValueError as exc:
            raise self.error(f"the run state is not readable: {exc}", where=str(self.path)) from exc
        return RunState(**{**data, "steps": [StepState(**s) for s in data["steps"]]})

    def _store(self, run: RunState) -> None:
        write_json(self.path, asdict(run))

    def current(self, params: dict[str, Any]) -> RunState:
        """The unfinished run (continued whatever ``params`` say now: it keeps its own), or a new one."""
        run = self.load()
        if run is not None and run.finished is None:
            if run.kind != self.kind:
                raise self.error(
                    f"an unfinished {run.kind} (run {run.id}) is in progress",
                    where=str(self.path),
                    hint=f"finish it first: run the {run.kind} again",
                )
            names = [s.name for s in run.steps]
            if names != [s.name for s in self.steps]:
                raise self.error(f"run {run.id} has other steps ({', '.join(names)})", where=str(self.path))
            if not any(st.state == DONE for st in run.steps):
                run.params = params
            return run
        return RunState(
            id=uuid.uuid4().hex[:12], kind=self.kind, params=params, created=time.time(),
            steps=[StepState(s.name) for s in self.steps],
        )  # fmt: skip

    # -- running -------------------------------------------------------------------------------------
    def run(self, params: dict[str, Any], *, on_step: Callable[[StepState], None] | None = None) -> RunState:
        run = self.current(params)
        self._store(run)
        for step, st in zip(self.steps, run.steps, strict=True):
            if st.state == DONE:
                continue
            st.state, st.attempts, st.started, st.ended, st.error = RUNNING, st.attempts + 1, time.time(), None, None
            self._store(run)  # a crash from here on leaves it `running`: it runs again next time
            try:
                result = step.run({**run.params, **run.results, "run_id": run.id})
            except TwinsiteError as exc:
                self._fail(run, st, str(exc), on_step)
                raise self.error(
                    f"step {step.name} failed: {exc.message}", where=exc.where, hint=exc.hint or "fix it, run again"
                ) from exc
            except Exception as exc:
                self._fail(run, st, f"{type(exc).__name__}: {exc}", on_step)
                raise
            if os.environ.get("TWINSITE_CRASH_AFTER") == step.name:
                os.kill(os.getpid(), signal.SIGKILL)
            st.state, st.ended, st.result = DONE, time.time(), result or {}
            self._store(run)
            if on_step:
                on_step(st)
        run.finished = time.time()
        self._store(run)
        return run

    def _fail(self, run: RunState, st: StepState, error: str, on_step: Callable[[StepState], None] | None) -> None:
        st.state, st.ended, st.error = FAILED, time.time(), error
        self._store(run)
        if on_step:
            on_step(st)

    def finish(self, run: RunState) -> None:
        """End an unfinished run where it stands (its steps keep their states): one that must not continue."""
        if run.finished is None:
            run.finished = time.time()
            self._store(run)

    def plan(self) -> list[dict[str, str]]:
        return [{"step": s.name, "does": s.describe} for s in self.steps]


def unfinished(path: Path) -> bool:
    """Whether the run file ``path`` holds a run that has not finished (a switchover under way or stopped)."""
    try:
        return json.loads(path.read_text()).get("finished") is None
    except FileNotFoundError:
        return False


def report(run: RunState) -> dict[str, Any]:
    """Each step with its start, duration and attempts; the whole duration."""
    starts = [s.started for s in run.steps if s.started is not None]
    ends = [s.ended for s in run.steps if s.ended is not None]
    return {
        "id": run.id,
        "kind": run.kind,
        "params": run.params,
        "finished": run.finished is not None,
        "seconds": (max(ends) - min(starts)) if starts and ends else None,
        "steps": [
            {"step": s.name, "state": s.state, "attempts": s.attempts, "started": s.started,
             "seconds": s.seconds, "error": s.error, "result": s.result}
            for s in run.steps
        ],
    }  # fmt: skip

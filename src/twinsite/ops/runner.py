"""A persisted, resumable run of idempotent steps: what a switchover and an assured-recovery test are made of.

The run's state is one file (state.runs), replaced durably at every change: before a step starts
(``running``, attempt n) and after it ends (``done`` with its result, or ``failed`` with the error). Running
the same run again skips the steps that are done and runs the others, starting with the one that was
``running`` (a crash inside it) or ``failed``: every step must therefore be idempotent, as the switchover
steps are. A finished run is not run again; a new one starts only after it. An unfinished run keeps its own
parameters, unless no step of it is done yet (a refused preflight): then the new parameters (``--unplanned``
given after the refusal) replace them.

A step gets a :class:`Context` (the run's id and parameters, and what the steps before it found) and
returns a frozen :class:`Result`; a later step reads an earlier one's result by its type
(``ctx.get(Preflight)``), restored from the run file when the run was continued by another process.

``TWINSITE_CRASH_AFTER=STEP`` (for the fault tests) makes the process kill itself with SIGKILL right after
STEP's work and before it is recorded as done: the worst moment to die, which the next run must survive.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

from twinsite.errors import TwinsiteError
from twinsite.state import runs
from twinsite.state.runs import DONE, RunState, StepState

R = TypeVar("R", bound="Result")
T = TypeVar("T")


@dataclass(frozen=True)
class Result:
    """What a step found or did; kept in the run file as JSON (``to_json``), read back with ``from_json``.
    ``STEP`` names the step whose result a class is, for :meth:`Context.get`."""

    STEP: ClassVar[str] = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class Skipped(Result):
    """A step with nothing to do in this run (and why)."""

    skipped: str


@dataclass(frozen=True)
class NoBookmark(Result):
    """A bookmark step of a scenario without CDP: no rewind point is kept, none is named."""

    bookmark: None
    note: str


@dataclass(frozen=True)
class Context:
    """What a step is given: the run's id, its parameters, and the results of the steps done before it."""

    run_id: str
    params: Mapping[str, Any]
    results: Mapping[str, Mapping[str, Any]]

    def get(self, kind: type[R]) -> R:
        """The result of the step ``kind`` is the result of (a step before this one: it is done)."""
        return kind.from_json(self.results[kind.STEP])


@dataclass(frozen=True)
class Step:
    name: str
    describe: str  # what it does, for the plan (--dry-run)
    run: Callable[[Context], Result]


def bind(
    target: T,
    table: Sequence[tuple[str, str, Callable[[T, Context], Result]]],
    *,
    before: Callable[[str], None] | None = None,
) -> list[Step]:
    """The steps of a table of (name, what it does, function of the target and the context), each bound to
    ``target``; ``before(name)`` runs before each step (it may raise to end the run)."""

    def one(name: str, fn: Callable[[T, Context], Result]) -> Callable[[Context], Result]:
        def run(ctx: Context) -> Result:
            if before is not None:
                before(name)
            return fn(target, ctx)

        return run

    return [Step(name, does, one(name, fn)) for name, does, fn in table]


class Runner:
    def __init__(self, path: Path, kind: str, steps: Sequence[Step], *, error: type[TwinsiteError]) -> None:
        self.path = path
        self.kind = kind
        self.steps = list(steps)
        self.error = error  # what a failed step is raised as (SwitchoverError, RecoveryError)

    # -- state ---------------------------------------------------------------------------------------
    def load(self) -> RunState | None:
        return runs.load(self.path, self.error)

    def _store(self, run: RunState) -> None:
        runs.store(self.path, run)

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
    def start(self, params: dict[str, Any]) -> RunState:
        """The run :meth:`run` goes on with (the unfinished one, or a new one), kept from now on."""
        run = self.current(params)
        self._store(run)
        return run

    def run(self, params: dict[str, Any], *, on_step: Callable[[StepState], None] | None = None) -> RunState:
        run = self.start(params)
        for step, st in zip(self.steps, run.steps, strict=True):
            if st.state == DONE:
                continue
            st.state, st.attempts, st.started, st.ended, st.error = (
                runs.RUNNING,
                st.attempts + 1,
                time.time(),
                None,
                None,
            )
            self._store(run)  # a crash from here on leaves it `running`: it runs again next time
            try:
                result = step.run(Context(run.id, run.params, run.results))
            except TwinsiteError as exc:  # (``partial``: what a failed step did, kept as its result)
                self._fail(run, st, str(exc), on_step, getattr(exc, "partial", None))
                raise self.error(
                    f"step {step.name} failed: {exc.message}", where=exc.where, hint=exc.hint or "fix it, run again"
                ) from exc
            except Exception as exc:
                self._fail(run, st, f"{type(exc).__name__}: {exc}", on_step)
                raise
            if os.environ.get("TWINSITE_CRASH_AFTER") == step.name:
                os.kill(os.getpid(), signal.SIGKILL)
            st.state, st.ended, st.result = DONE, time.time(), result.to_json()
            self._store(run)
            if on_step:
                on_step(st)
        run.finished = time.time()
        self._store(run)
        return run

    def _fail(
        self,
        run: RunState,
        st: StepState,
        error: str,
        on_step: Callable[[StepState], None] | None,
        partial: dict[str, Any] | None = None,
    ) -> None:
        st.state, st.ended, st.error, st.result = runs.FAILED, time.time(), error, partial or {}
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

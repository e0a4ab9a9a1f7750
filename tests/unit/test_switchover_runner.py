"""The switchover's step runner: state persisted around every step, a failed step runs again on the next
run and the ones done do not, kill -9 at any step resumes and ends in the same state."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.wait import eventually
from twinsite.errors import SwitchoverError, TwinsiteError
from twinsite.ops.runner import Context, Result, Runner, Step, report
from twinsite.state.runs import DONE, FAILED, RUNNING


@dataclass(frozen=True)
class Seen(Result):
    seen: list[str]  # the steps whose results it was given
    scenario: str  # the run's parameter


def recorder(log: Path, name: str, fail: dict[str, int] | None = None) -> Step:
    def run(ctx: Context) -> Seen:
        with open(log, "a") as f:
            f.write(name + "\n")
        if fail and fail.get(name, 0) > 0:
            fail[name] -= 1
            raise TwinsiteError(f"{name} cannot go on yet", hint="wait")
        return Seen(seen=sorted(ctx.results), scenario=ctx.params["scenario"])

    return Step(name, f"does {name}", run)


def test_a_run_persists_each_step_and_a_failed_step_runs_again_but_not_the_done_ones(tmp_path: Path) -> None:
    log, state = tmp_path / "calls", tmp_path / "run.json"
    fail = {"drain": 1}
    runner = Runner(
        state, "switchover", [recorder(log, n, fail) for n in ("stop", "drain", "start")], error=SwitchoverError
    )
    with pytest.raises(SwitchoverError, match="step drain failed: drain cannot go on yet"):
        runner.run({"scenario": "db"})
    saved = runner.load()
    assert saved is not None and [(s.name, s.state, s.attempts) for s in saved.steps] == [
        ("stop", DONE, 1), ("drain", FAILED, 1), ("start", "pending", 0),
    ]  # fmt: skip
    assert saved.steps[1].error == "drain cannot go on yet\n  what to do: wait"
    run = runner.run({"scenario": "other"})  # resumes the unfinished run, with its own parameters
    assert log.read_text().split() == ["stop", "drain", "drain", "start"]
    assert [s.state for s in run.steps] == [DONE] * 3 and run.finished is not None
    assert run.steps[2].result == {"seen": ["drain", "stop"], "scenario": "db"}  # earlier results by name
    rep = report(run)
    assert rep["finished"] and [s["attempts"] for s in rep["steps"]] == [1, 2, 1]
    assert all(s["seconds"] is not None and s["seconds"] >= 0 for s in rep["steps"])
    again = runner.run({"scenario": "db"})
    assert again.id != run.id  # a finished run is not run again: a new one starts


def test_another_kind_of_run_in_progress_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "run.json"
    with pytest.raises(SwitchoverError):
        Runner(state, "switchover", [recorder(tmp_path / "l", "stop", {"stop": 1})], error=SwitchoverError).run(
            {"scenario": "db"}
        )
    with pytest.raises(SwitchoverError, match="an unfinished switchover"):
        Runner(state, "switchback", [recorder(tmp_path / "l", "stop")], error=SwitchoverError).run({"scenario": "db"})


CHILD = textwrap.dedent(
    """
    import sys, time
    from dataclasses import dataclass
    from pathlib import Path
    from twinsite.errors import TwinsiteError
    from twinsite.ops.runner import Result, Runner, Step
    base = Path(sys.argv[1])

    @dataclass(frozen=True)
    class Ok(Result):
        ok: bool = True

    def make(name):
        def run(ctx):
            with open(base / "log", "a") as f:
                f.write("start " + name + "\\n")
                f.flush()
            time.sleep(0.3)
            (base / (name + ".done")).touch()  # idempotent, like every switchover step
            return Ok()
        return Step(name, name, run)

    Runner(base / "run.json", "switchover", [make(n) for n in ("a", "b", "c", "d")], error=TwinsiteError).run(
        {"scenario": "db"}
    )
    """
)


@pytest.mark.parametrize("victim", ["a", "b", "c", "d"])
def test_kill_9_inside_any_step_resumes_and_ends_in_the_same_state(tmp_path: Path, victim: str) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    child = subprocess.Popen([sys.executable, str(script), str(tmp_path)], env=env)
    log = tmp_path / "log"
    eventually(
        lambda: f"start {victim}" in (log.read_text() if log.exists() else "") or child.poll() is not None,
        timeout=20,
        interval=0.01,
        what=f"step {victim} starting",
    )
    assert f"start {victim}" in (log.read_text() if log.exists() else "")
    child.send_signal(signal.SIGKILL)
    child.wait()
    state = json.loads((tmp_path / "run.json").read_text())
    assert [s["state"] for s in state["steps"] if s["name"] == victim] == [RUNNING]
    again = subprocess.run([sys.executable, str(script), str(tmp_path)], env=env, timeout=30, check=True)
    assert again.returncode == 0
    state = json.loads((tmp_path / "run.json").read_text())
    assert [s["state"] for s in state["steps"]] == [DONE] * 4 and state["finished"]
    assert [s["attempts"] for s in state["steps"]] == [2 if s["name"] == victim else 1 for s in state["steps"]]
    assert all((tmp_path / f"{n}.done").exists() for n in "abcd")

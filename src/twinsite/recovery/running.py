"""Running a test to its end, ending one from outside, and cleaning up after one whose process died.

A test is never continued: a failing step, an interruption (the spool's cap, the active host lost, a
switchover asking it to end) or a crash ends it through :func:`cleanup` (application stopped, overlays
removed, spool off), and its evidence (recovery.evidence, state.evidence) says so. A crash is found by the
agent (recovery.scheduler), which runs the cleanup of a test whose lock no process holds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twinsite import audit
from twinsite.alerts import Alert
from twinsite.apply import overlay
from twinsite.errors import RecoveryError, TwinsiteError
from twinsite.ops.runner import Context
from twinsite.proc import wait_until
from twinsite.recovery import evidence, expose
from twinsite.recovery.steps import ENDED_BY_OPERATOR, Test, passed, spool_off, stop_app
from twinsite.state import end_request
from twinsite.state import evidence as kept
from twinsite.state.runs import DONE, FAILED, RUNNING, RunState


def cleanup(t: Test, *, wait: float = 0.0) -> dict[str, Any]:
    """Whatever a test left: its application stopped, its overlays removed, the spools off (idempotent)."""
    out: dict[str, Any] = {}
    name = t.test_name()
    if name is not None:  # (first: testers must not reach a copy that is going away)
        out["test_name"] = expose.withdraw(name)
    try:
        out["application"] = stop_app(t).to_json()
    except TwinsiteError as exc:
        out["application"] = {"error": str(exc)}  # the unmount below detaches lazily if it still runs
    out["overlays"] = [overlay.unmount(r, t.scratch(i)) for i, r in enumerate(t.roots)]
    out["spool"] = spool_off(t, wait=wait).to_json()
    return out


def _finish(t: Test, run: RunState, result: str, reason: str | None) -> dict[str, Any]:
    s = t.site.s
    runner = t.runner()
    runner.finish(run)
    end_request.clear(t.place.end)
    record = evidence.summarize(run, scenario=s.name, host=t.site.host, result=result, reason=reason)
    record["path"] = str(kept.write(t.place.evidence, record, keep=s.assured_recovery.keep))
    if result != "passed":
        severity = "warning" if result == "interrupted" else "critical"
        t.site.alerter.send(
            Alert(
                kind=f"recovery-test-{result}",
                severity=severity,
                scenario=s.name,
                host=t.site.host,
                what=f"the assured-recovery test {run.id} of {s.name} on {t.site.host} {result}: {reason}",
                action=f"read its evidence (twinsite recover-test {s.name} --report {run.id} on {t.site.host}); "
                "the replica was left as it was and replication goes on",
                details=(("evidence", record["path"]),),
            )
        )
    failed_actions = "; ".join(f"{a['type']}: {a['detail']}" for a in record["actions"] if not a.get("ok"))
    if failed_actions:
        t.site.alerter.send(
            Alert(
                kind="recovery-action-failed",
                severity="warning",
                scenario=s.name,
                host=t.site.host,
                what=f"after the passing test {run.id}: {failed_actions}",
                action="fix the action's settings (assured_recovery.after_pass); the test itself passed",
            )
        )
    return record


def run_test(
    t: Test,
    *,
    scheduled: bool = False,
    hold: float = 0.0,
    expose_as: str | None = None,
    on_step: Callable[[Any], None] | None = None,
) -> dict[str, Any]:
    """Run one test to its end; its evidence record. A test already running here is an error. With ``hold``
    (seconds) it is an interactive test, published as ``expose_as`` when given (recovery.steps.hold)."""
    with t.lock() as mine:
        if not mine:
            raise RecoveryError(f"a test of {t.site.s.name} is already running here", hint="wait for it to end")
        left = t.unfinished()
        if left is not None:
            _recover_locked(t, left)
        end_request.clear(t.place.end)
        params: dict[str, Any] = {"scheduled": scheduled, "who": audit.who(automatic=scheduled)}
        if hold:
            params["hold_seconds"] = hold
        if expose_as:
            if not hold:
                raise RecoveryError("a test name (--expose) is for an interactive test", hint="give --hold too")
            params["test_name"] = expose.plan(t.site.s, t.site.host, expose_as).to_dict()  # (a refusal: no record)
        runner = t.runner()
        try:
            run = runner.run(params, on_step=on_step)
        except TwinsiteError as exc:
            run = runner.load() or runner.current({})
            failed_at = next((st.name for st in run.steps if st.state not in (DONE,)), "?")
            if failed_at == "preflight":  # nothing was touched: a refusal, not a test
                runner.finish(run)
                raise
            cleanup(t, wait=min(30.0, t.site.s.assured_recovery.drain_timeout))
            reason = exc.message.removeprefix(f"step {failed_at} failed: ")
            return _finish(t, run, "failed", f"{failed_at}: {reason}")
        ok, why = passed(Context(run.id, run.params, run.results))
        return _finish(t, run, "passed" if ok else "failed", why)


def _recover_locked(t: Test, run: RunState) -> dict[str, Any]:
    at = next((st.name for st in run.steps if st.state in (RUNNING, FAILED)), None) or next(
        (st.name for st in run.steps if st.state != DONE), "the end"
    )
    done = cleanup(t)
    record = _finish(t, run, "interrupted", f"the test stopped during {at} (its process ended); cleaned up")
    record["cleanup"] = done
    return record


def recover(t: Test) -> dict[str, Any] | None:
    """The cleanup of a test whose process died (the agent runs it): None when there is nothing to do or a
    live process still runs the test."""
    if t.unfinished() is None:
        return None
    with t.lock() as mine:
        if not mine:
            return None
        run = t.unfinished()
        return None if run is None else _recover_locked(t, run)


def end(t: Test, why: str, *, wait: float = 15.0) -> dict[str, Any] | None:
    """End a running test at once (a switchover does, before it drains or promotes): asked first, then done
    here if its process has not removed the overlays and turned the spools off within ``wait`` s. None when
    no test runs. (The test's process may still wait for the spool to be applied: that does not matter here.)"""

    def busy() -> bool:
        return any(overlay.mounted(r) for r in t.roots) or any(sp.spooling for sp in t.spools())

    def settled() -> bool:  # nothing left to end, or no process runs it (any more)
        if not busy():
            return True
        with t.lock() as free:
            return free

    if t.unfinished() is None and not busy():
        return None
    t.request_end(why)
    wait_until(settled, timeout=wait, interval=0.1)
    out = recover(t)  # (its process is gone without finishing: cleaned up here)
    if out is None and busy():
        out = {"cleanup": cleanup(t)}  # it does not answer: what it would do, done here (idempotent)
    if t.unfinished() is None:
        end_request.clear(t.place.end)
    return out or {"ended": True}


def end_test(t: Test, *, wait: float) -> dict[str, Any] | None:
    """End the test running here as its operator asks (``recover-test --end``): its own process discards the
    test's writes, removes its test name and applies the spool, as at the end of any test; wait up to
    ``wait`` s for its evidence. None when no test runs here. A test whose process died is cleaned up here."""
    run = t.unfinished()
    if run is None:
        return None
    t.request_end(f"{ENDED_BY_OPERATOR} {audit.describe(audit.who())}")

    def over() -> bool:  # (its process holds the lock until its evidence is written)
        with t.lock() as free:
            return free

    if not wait_until(over, timeout=wait, interval=0.2):
        raise RecoveryError(
            f"the test {run.id} of {t.site.s.name} did not end within {wait:.0f} s",
            hint="it ends by itself (its process goes on); `recover-test --history` shows when",
        )
    left = recover(t)  # (its process ended without finishing: cleaned up here)
    return left if left is not None else kept.find(t.place.evidence, run.id)

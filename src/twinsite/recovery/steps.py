"""The assured-recovery test: the application started and checked on the standby's replica data, while
replication keeps arriving and the active host notices nothing (docs/assured-recovery.md).

    preflight          this host is a standby; the active host answers and says replication to this host is
                       in sync (not syncing, degraded, stopped); the replica is not rewound; no switchover runs
    spool              under each root's apply lock the receiver is switched to its spool: what arrives is
                       stored durably and acknowledged, not applied; the tested seq and each root's tree
                       digest are taken here
    bookmark           with CDP: the tested point, by name (recovery-test-<id>)
    mount              an overlay on each root: the application's writes go to a throw-away layer
    start-application  the plugin starts it on the replica's data (with assured_recovery.application)
    check-application  the plugin's checks, the scenario's and the test's scripts, each with its timeout
    stop-application
    unmount            the overlays and every write of the test are removed; each root's digest again
    after-pass         a passing test's actions on the tested data: snapshot, archive, script
    apply-spool        the receiver applies what arrived meanwhile, in order, and goes on as before

The run is persisted step by step (twinsite.switchover.runner). A test is never continued: a failing step,
an interruption (the spool's cap, the active host lost, a switchover) or a crash ends it through
:func:`cleanup` (application stopped, overlays removed, spool off), and its evidence says so. A crash is found
by the agent, which runs the cleanup of a test whose lock no process holds.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twinsite import apps
from twinsite.alerts import Alert
from twinsite.cdp import bookmarks
from twinsite.cdp.rewind import apply_lock, read_position
from twinsite.errors import TwinsiteError
from twinsite.recovery import RecoveryError, evidence, overlay
from twinsite.recovery.actions import run_all
from twinsite.recovery.spool import Spool
from twinsite.switchover.runner import DONE, RUNNING, Runner, RunState, Step, unfinished
from twinsite.switchover.steps import Site
from twinsite.tree import digest

KIND = "recovery-test"
Ctx = dict[str, Any]


@dataclass
class Test:
    """One scenario's tests on this host (a standby)."""

    __test__ = False  # (not a pytest test class)
    site: Site

    @property
    def dir(self) -> Path:
        return evidence.recovery_dir(self.site.state_dir, self.site.s.name)

    @property
    def roots(self) -> list[Path]:
        return [Path(r.path) for r in self.site.s.roots]

    def scratch(self, i: int) -> Path:
        return self.dir / "overlay" / str(i)

    def spools(self) -> list[Spool]:
        return [Spool(self.site.recv(i)) for i in range(len(self.roots))]

    def app(self) -> apps.Application:
        """The application as a test runs it: the scenario's settings, then assured_recovery.application,
        with the test's own checks after the scenario's."""
        s, ar = self.site.s, self.site.s.assured_recovery
        settings = {**s.application_settings, **ar.application, "type": s.application}
        settings["checks"] = [*s.application_settings.get("checks", []), *ar.checks]
        return apps.load(settings, tuple(r.path for r in s.roots), self.site.plugins_dir)

    def runner(self) -> Runner:
        return Runner(self.dir / "run.json", KIND, steps(self), error=RecoveryError)

    @contextlib.contextmanager
    def lock(self, *, wait: bool = False) -> Iterator[bool]:
        """Held by the process running (or cleaning up) a test: yields False when another holds it."""
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / "test.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

    def unfinished(self) -> RunState | None:
        run = self.runner().load()
        return run if run is not None and run.finished is None else None

    # -- ending a test from outside: a switchover, an operator -------------------------------------------------
    def request_end(self, why: str) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "end").write_text(why + "\n")

    def end_requested(self) -> str | None:
        try:
            return (self.dir / "end").read_text().strip() or "asked to end"
        except FileNotFoundError:
            return None

    def interrupt_if_needed(self) -> None:
        """Raise to end the test at once: asked to (a switchover), the spool reached its cap, or this host's
        monitor has lost the active host (a switchover may be next: the replica must be itself again)."""
        why = self.end_requested()
        if why:
            raise RecoveryError(f"the test was ended: {why}")
        for i, sp in enumerate(self.spools()):
            if (sp.settings() or {}).get("full"):
                raise RecoveryError(
                    f"the spool of {self.roots[i]} reached its cap ({self.site.s.assured_recovery.spool_max_size} "
                    "bytes): the test ends so that replication applies again",
                    hint="raise assured_recovery.spool.max_size, or test when fewer changes arrive",
                )
        try:
            mon = json.loads((self.site.dir / "monitor.json").read_text())
        except (FileNotFoundError, ValueError):
            return
        reach = mon.get("conditions", {}).get("reachable", {})
        fresh = time.time() - float(mon.get("updated_at") or 0) < 3 * self.site.s.monitoring.interval + 30
        if reach.get("ok") is False and fresh and mon.get("active") == self.site.role().active:
            raise RecoveryError(
                f"the active host stopped answering during the test ({reach.get('detail', '')}): it ends at once",
                hint="the switchover, if configured, proceeds; the replica is itself again",
            )


# -- the steps ---------------------------------------------------------------------------------------------
def preflight(t: Test, ctx: Ctx) -> dict[str, Any]:
    site, s = t.site, t.site.s
    role = site.role()
    if role.active == site.host:
        raise RecoveryError(
            f"{site.host} is the active host of {s.name}: a test runs on a standby",
            hint="run it on a standby (playbooks/assured_recovery.yml picks them)",
        )
    if unfinished(site.dir / "switchover.json"):
        raise RecoveryError(f"a switchover of {s.name} is unfinished here", hint="finish it first")
    for i, root in enumerate(s.roots):
        pos = read_position(site.recv(i) / "rewind")
        if pos is not None:
            raise RecoveryError(
                f"the replica of {root.path} is rewound to seq {pos.at}: it is not the replica to test",
                hint=f"`twinsite rewind {s.name} --resume` first",
            )
        if t.spools()[i].held():
            raise RecoveryError(
                f"the spool of {root.path} still holds records of the last test",
                hint="they are applied when replication next connects; test again then",
            )
    try:
        status = site.on(role.active, ["status"], timeout=max(10.0, s.monitoring.timeout * 3))
    except TwinsiteError as exc:
        raise RecoveryError(
            f"cannot ask the active host {role.active} how replication stands: {exc.message}",
            where=role.active,
            hint="a test needs a healthy replica; if the active host is down this is a switchover, not a test",
        ) from exc
    rows = [r for r in status.get("scenarios", []) if r.get("scenario") == s.name and r.get("replica") == site.host]
    states = sorted({str(r.get("state")) for r in rows}) or ["not replicating here"]
    if states != ["replicating"]:
        raise RecoveryError(
            f"replication of {s.name} from {role.active} to {site.host} is {', '.join(states)}: the replica is "
            "not a consistent copy to test",
            where=role.active,
            hint="test once it is replicating (twinsite status on the active host)",
        )
    app = t.app()
    for p in app.data_paths():
        if not any(p.resolve().is_relative_to(r.resolve()) for r in t.roots):
            raise RecoveryError(
                f"the application's data {p} is outside the scenario's roots", hint="it would not be tested"
            )
    return {
        "active": role.active,
        "epoch": role.epoch,
        "lag_seconds": max((float(r.get("lag_seconds") or 0) for r in rows), default=None),
    }


def spool(t: Test, ctx: Ctx) -> dict[str, Any]:
    ar = t.site.s.assured_recovery
    started = time.time()
    for i, sp in enumerate(t.spools()):
        recv = t.site.recv(i)
        recv.mkdir(parents=True, exist_ok=True)
        with apply_lock(recv):  # a batch being applied ends first; the receiver looks at the marker before each
            sp.start(max_size=ar.spool_max_size, reason=f"assured-recovery test {ctx['run_id']}")
    tested = []
    for root, p in zip(t.roots, t.site.positions(), strict=True):
        tested.append(
            {
                "root": str(root),
                "seq": p.seq,
                "ts": p.ts or None,
                "time": evidence.when(p.ts),
                "age_seconds": round(started - p.ts, 3) if p.ts else None,
            }
        )
    return {"tested": tested, "since": started, "digests": [{"root": str(r), "digest": digest(r)} for r in t.roots]}


def bookmark(t: Test, ctx: Ctx) -> dict[str, Any]:
    if not t.site.s.cdp.enabled:
        return {"bookmark": None, "note": "cdp is off"}
    name = f"recovery-test-{ctx['run_id']}"
    for i, tested in enumerate(ctx["spool"]["tested"]):
        bookmarks.add(t.site.recv(i), name, tested["seq"], tested["ts"] or 0.0)
    return {"bookmark": name}


def mount(t: Test, ctx: Ctx) -> dict[str, Any]:
    return {"mounted": [str(r) for i, r in enumerate(t.roots) if overlay.mount(r, t.scratch(i)) or True]}


def start_application(t: Test, ctx: Ctx) -> dict[str, Any]:
    t.app().start()
    return {}


def check_application(t: Test, ctx: Ctx) -> dict[str, Any]:
    ar, s = t.site.s.assured_recovery, t.site.s
    timeout = (
        ar.start_timeout if ar.start_timeout is not None else float(s.application_settings.get("start_timeout", 60))
    )
    ok, results = apps.wait_healthy(t.app(), quick=False, timeout=timeout, between=t.interrupt_if_needed)
    return {"ok": ok, "checks": [r.to_dict() for r in results]}


def stop_application(t: Test, ctx: Ctx) -> dict[str, Any]:
    return _stop_app(t)


def _stop_app(t: Test) -> dict[str, Any]:
    if not any(overlay.mounted(r) for r in t.roots):
        return {"skipped": "no overlay is mounted: the application was not started on one"}
    app = t.app()
    was = app.running()
    app.stop()
    return {"was_running": was}


def unmount(t: Test, ctx: Ctx) -> dict[str, Any]:
    out = [overlay.unmount(r, t.scratch(i)) for i, r in enumerate(t.roots)]
    return {"overlays": out, "digests": [{"root": str(r), "digest": digest(r)} for r in t.roots]}


def _passed(ctx: Ctx) -> tuple[bool, str | None]:
    if not ctx["check-application"]["ok"]:
        failed = [c["name"] for c in ctx["check-application"]["checks"] if not c["ok"]]
        return False, f"check(s) failed: {', '.join(failed)}"
    before = {d["root"]: d["digest"] for d in ctx["spool"]["digests"]}
    changed = [d["root"] for d in ctx["unmount"]["digests"] if before.get(d["root"]) != d["digest"]]
    if changed:
        return False, f"the replica changed during the test: {', '.join(changed)}"
    return True, None


def after_pass(t: Test, ctx: Ctx) -> dict[str, Any]:
    ok, why = _passed(ctx)
    specs = t.site.s.assured_recovery.after_pass
    if not ok or not specs:
        return {"actions": [], "skipped": why or "no actions configured"}
    facts = {"id": ctx["run_id"], "scenario": t.site.s.name, "host": t.site.host, "tested": ctx["spool"]["tested"]}
    return {"actions": run_all(specs, facts=facts, roots=t.roots, plugins=t.site.plugins)}


def apply_spool(t: Test, ctx: Ctx) -> dict[str, Any]:
    return _spool_off(t, wait=t.site.s.assured_recovery.drain_timeout)


def _spool_off(t: Test, *, wait: float) -> dict[str, Any]:
    """Turn the spools off; wait up to ``wait`` s for the receivers to apply what they hold."""
    sps = t.spools()
    positions = t.site.positions()
    records = sum(max(0, sp.last_seq - p.seq) for sp, p in zip(sps, positions, strict=True))
    size = sum(sp.journal().disk_bytes() if sp.held() else 0 for sp in sps)
    full = any((sp.settings() or {}).get("full") for sp in sps)
    for sp in sps:
        sp.close()
        sp.stop()
    t0 = time.monotonic()
    while any(sp.held() for sp in sps) and time.monotonic() - t0 < wait:
        time.sleep(0.1)
    applied = not any(sp.held() for sp in sps)
    return {
        "records": records,
        "bytes": size,
        "full": full,
        "applied": applied,
        "apply_seconds": round(time.monotonic() - t0, 3),
    }


STEPS: tuple[tuple[str, str, Callable[[Test, Ctx], dict[str, Any]]], ...] = (
    ("preflight", "a standby, in sync, not rewound, no switchover running", preflight),
    ("spool", "the receiver keeps what arrives (durable, acknowledged) instead of applying it", spool),
    ("bookmark", "with CDP: the tested point, by name", bookmark),
    ("mount", "an overlay on each root: the application's writes go to a throw-away layer", mount),
    ("start-application", "start the application on the replica's data", start_application),
    ("check-application", "its checks and the test's scripts, each with a timeout", check_application),
    ("stop-application", "stop it", stop_application),
    ("unmount", "remove the overlays and the test's writes; digest the replica again", unmount),
    ("after-pass", "a passing test's actions on the tested data: snapshot, archive, script", after_pass),
    ("apply-spool", "the receiver applies what arrived meanwhile, in order", apply_spool),
)
INTERRUPTIBLE = {"preflight", "spool", "bookmark", "mount", "start-application", "check-application"}


def steps(t: Test) -> list[Step]:
    def bind(name: str, fn: Callable[[Test, Ctx], dict[str, Any]]) -> Callable[[Ctx], dict[str, Any]]:
        def run(ctx: Ctx) -> dict[str, Any]:
            if name in INTERRUPTIBLE:
                t.interrupt_if_needed()
            return fn(t, ctx)

        return run

    return [Step(name, does, bind(name, fn)) for name, does, fn in STEPS]


# -- running, ending, recovering ---------------------------------------------------------------------------
def cleanup(t: Test, *, wait: float = 0.0) -> dict[str, Any]:
    """Whatever a test left: its application stopped, its overlays removed, the spools off (idempotent)."""
    out: dict[str, Any] = {}
    try:
        out["application"] = _stop_app(t)
    except TwinsiteError as exc:
        out["application"] = {"error": str(exc)}  # the unmount below detaches lazily if it still runs
    out["overlays"] = [overlay.unmount(r, t.scratch(i)) for i, r in enumerate(t.roots)]
    out["spool"] = _spool_off(t, wait=wait)
    return out


def _finish(t: Test, run: RunState, result: str, reason: str | None) -> dict[str, Any]:
    s = t.site.s
    runner = t.runner()
    runner.finish(run)
    (t.dir / "end").unlink(missing_ok=True)
    record = evidence.summarize(run, scenario=s.name, host=t.site.host, result=result, reason=reason)
    record["path"] = str(evidence.write(t.dir, record, keep=s.assured_recovery.keep))
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


def run_test(t: Test, *, scheduled: bool = False, on_step: Callable[[Any], None] | None = None) -> dict[str, Any]:
    """Run one test to its end; its evidence record. A test already running here is an error."""
    with t.lock() as mine:
        if not mine:
            raise RecoveryError(f"a test of {t.site.s.name} is already running here", hint="wait for it to end")
        left = t.unfinished()
        if left is not None:
            _recover_locked(t, left)
        (t.dir / "end").unlink(missing_ok=True)
        runner = t.runner()
        try:
            run = runner.run({"scheduled": scheduled}, on_step=on_step)
        except TwinsiteError as exc:
            run = runner.load() or runner.current({})
            failed_at = next((st.name for st in run.steps if st.state not in (DONE,)), "?")
            if failed_at == "preflight":  # nothing was touched: a refusal, not a test
                runner.finish(run)
                raise
            cleanup(t, wait=min(30.0, t.site.s.assured_recovery.drain_timeout))
            reason = exc.message.removeprefix(f"step {failed_at} failed: ")
            return _finish(t, run, "failed", f"{failed_at}: {reason}")
        ok, why = _passed(run.results)
        return _finish(t, run, "passed" if ok else "failed", why)


def _recover_locked(t: Test, run: RunState) -> dict[str, Any]:
    at = next((st.name for st in run.steps if st.state in (RUNNING, "failed")), None) or next(
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

    if t.unfinished() is None and not busy():
        return None
    t.request_end(why)
    deadline = time.monotonic() + wait
    while busy() and time.monotonic() < deadline:
        with t.lock() as free:
            if free:
                break  # no process runs it (any more)
        time.sleep(0.1)
    out = recover(t)  # (its process is gone without finishing: cleaned up here)
    if out is None and busy():
        out = {"cleanup": cleanup(t)}  # it does not answer: what it would do, done here (idempotent)
    if t.unfinished() is None:
        (t.dir / "end").unlink(missing_ok=True)
    return out or {"ended": True}

"""The assured-recovery test: the application started and checked on the standby's replica data, while
replication keeps arriving and the active host notices nothing (docs/assured-recovery.md).

    preflight          this host is a standby; the active host answers and says replication to this host is
                       in sync (not syncing, degraded, stopped); the replica is not rewound; no switchover runs
    spool              under each root's apply lock the receiver is switched to its spool: what arrives is
                       stored durably and acknowledged, not applied; with consistency points what was
                       applied of the open point is undone (the test runs on the last complete point; it is
                       applied again with the spool); the tested seq and each root's tree digest are taken here
    bookmark           with CDP: the tested point, by name (recovery-test-<id>)
    mount              an overlay on each root: the application's writes go to a throw-away layer
    start-application  the plugin starts it on the replica's data (with assured_recovery.application)
    check-application  the plugin's checks, the scenario's and the test's scripts, each with its timeout
    hold               an interactive test (--hold): the checked copy stays up for testers, published under
                       its test name (--expose, recovery.expose), until the hold runs out, --end, a
                       switchover, the spool's cap or the loss of the active host; then the name is removed
    stop-application
    unmount            the overlays and every write of the test are removed; each root's digest again
    after-pass         a passing test's actions on the tested data: snapshot, vm_copy, archive, script
    apply-spool        the receiver applies what arrived meanwhile, in order, and goes on as before

The run is persisted step by step (ops.runner). A test is never continued: a failing step, an interruption
(the spool's cap, the active host lost, a switchover) or a crash ends it (recovery.running), and its evidence
says so.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twinsite import apps
from twinsite.alerts import Alert
from twinsite.apply import overlay
from twinsite.cdp.rewind import to_point
from twinsite.engine.spool import HOLD_REASON, Spool
from twinsite.errors import RecoveryError, TwinsiteError
from twinsite.locks import held
from twinsite.ops.runner import Context, NoBookmark, Result, Runner, Skipped, Step, bind
from twinsite.ops.site import Site
from twinsite.proc import wait_until
from twinsite.recovery import expose
from twinsite.recovery.actions import run_all
from twinsite.recovery.evidence import when
from twinsite.state import bookmarks, end_request, monitor, rewind, runs
from twinsite.state.layout import RecoveryState
from twinsite.state.runs import RunState
from twinsite.tree import digest

KIND = "recovery-test"


@dataclass
class Test:
    """One scenario's tests on this host (a standby)."""

    __test__ = False  # (not a pytest test class)
    site: Site

    @property
    def place(self) -> RecoveryState:
        return self.site.place.recovery

    @property
    def roots(self) -> list[Path]:
        return [Path(r.path) for r in self.site.s.roots]

    def scratch(self, i: int) -> Path:
        return self.place.overlay(i)

    def spools(self) -> list[Spool]:
        return [Spool(self.site.recv(i)) for i in range(len(self.roots))]

    def app(self, *, interactive: bool = False) -> apps.Application:
        """The application as a test runs it: the scenario's settings, then assured_recovery.application (and
        for an interactive test assured_recovery.interactive.application), with the test's own checks after
        the scenario's."""
        s, ar = self.site.s, self.site.s.assured_recovery
        over = {**ar.application, **(ar.interactive_application if interactive else {})}
        settings = {**s.application_settings, **over, "type": s.application}
        settings["checks"] = [*s.application_settings.get("checks", []), *ar.checks]
        return apps.load(settings, tuple(r.path for r in s.roots), self.site.plugins_dir)

    def runner(self) -> Runner:
        return Runner(self.place.run, KIND, steps(self), error=RecoveryError)

    def lock(self) -> AbstractContextManager[bool]:
        """Held by the process running (or cleaning up) a test: yields False when another holds it."""
        return held(self.place.lock, wait=False)

    def unfinished(self) -> RunState | None:
        run = self.runner().load()
        return run if run is not None and run.finished is None else None

    # -- ending a test from outside: a switchover, an operator -------------------------------------------------
    def request_end(self, why: str) -> None:
        end_request.request(self.place.end, why)

    def interactive(self) -> bool:
        """Whether the test running (or left) here is an interactive one (its run asked for a hold)."""
        run = self.unfinished()
        return bool(run is not None and run.params.get("hold_seconds"))

    def test_name(self) -> expose.TestName | None:
        """The test name the test running (or left) here publishes, if it asked for one."""
        run = self.unfinished()
        given = run.params.get("test_name") if run is not None else None
        return expose.TestName.from_dict(given) if given else None

    def interrupt_if_needed(self) -> None:
        """Raise to end the test at once: asked to (a switchover), the spool reached its cap, or this host's
        monitor has lost the active host (a switchover may be next: the replica must be itself again)."""
        why = end_request.read(self.place.end)
        if why:
            raise RecoveryError(f"the test was ended: {why}")
        for i, sp in enumerate(self.spools()):
            if sp.full:
                raise RecoveryError(
                    f"the spool of {self.roots[i]} reached its cap ({self.site.s.assured_recovery.spool_max_size} "
                    "bytes): the test ends so that replication applies again",
                    hint="raise assured_recovery.spool.max_size, or test when fewer changes arrive",
                )
        mon = monitor.read(self.site.place.monitor)
        if mon is None:
            return
        reach = mon.conditions.get("reachable")
        fresh = time.time() - mon.updated_at < 3 * self.site.s.monitoring.interval + 30
        if reach is not None and reach.ok is False and fresh and mon.active == self.site.role().active:
            raise RecoveryError(
                f"the active host stopped answering during the test ({reach.detail}): it ends at once",
                hint="the switchover, if configured, proceeds; the replica is itself again",
            )


# -- the results -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Ready(Result):
    active: str
    epoch: int
    lag_seconds: float | None


@dataclass(frozen=True)
class Spooled(Result):
    STEP = "spool"

    tested: list[dict[str, Any]]  # per root: the seq tested, its source time, the data's age
    since: float
    digests: list[dict[str, str]]


@dataclass(frozen=True)
class TestBookmarked(Result):
    __test__ = False  # (not a pytest test class)

    bookmark: str


@dataclass(frozen=True)
class Mounted(Result):
    mounted: list[str]


@dataclass(frozen=True)
class Started(Result):
    pass


@dataclass(frozen=True)
class Checked(Result):
    STEP = "check-application"

    ok: bool
    checks: list[dict[str, Any]]


@dataclass(frozen=True)
class Held(Result):
    STEP = "hold"

    requested_seconds: float
    held_seconds: float
    until: str | None  # when the hold was to run out
    ended: str  # why it ended
    cut_short: bool  # ended by the spool's cap, a switchover or the active host's loss (not by time or --end)
    exposed: dict[str, Any] | None  # the test name and address, and whether it was removed


@dataclass(frozen=True)
class Stopped(Result):
    was_running: bool


@dataclass(frozen=True)
class Unmounted(Result):
    STEP = "unmount"

    overlays: list[dict[str, Any]]
    digests: list[dict[str, str]]


@dataclass(frozen=True)
class ActionsRun(Result):
    actions: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class NoActions(Result):
    actions: list[dict[str, Any]]
    skipped: str


@dataclass(frozen=True)
class SpoolApplied(Result):
    records: int
    bytes: int
    full: bool
    applied: bool
    apply_seconds: float


# -- the steps ---------------------------------------------------------------------------------------------
def _replica_to_test(t: Test, i: int) -> None:
    """Refuse root ``i``'s replica when it is not the replica as received: rewound, held by a verify, or with
    a spool of the last test still to apply."""
    path, spool = t.site.s.roots[i].path, t.spools()[i]
    pos = rewind.read(t.site.recv(i).rewind)
    if pos is not None:
        raise RecoveryError(
            f"the replica of {path} is rewound to seq {pos.at}: it is not the replica to test",
            hint=f"`twinsite rewind {t.site.s.name} --resume` first",
        )
    marker = spool.settings()
    if marker is not None and marker.reason == HOLD_REASON:
        raise RecoveryError(
            f"the replica of {path} is held by `twinsite verify` at its last complete point",
            hint="the hold ends with the verify (seconds); test again then",
        )
    if spool.held():
        raise RecoveryError(
            f"the spool of {path} still holds records of the last test",
            hint="they are applied when replication next connects; test again then",
        )


def preflight(t: Test, ctx: Context) -> Ready:
    site, s = t.site, t.site.s
    role = site.role()
    if role.active == site.host:
        raise RecoveryError(
            f"{site.host} is the active host of {s.name}: a test runs on a standby",
            hint="run it on a standby (playbooks/assured_recovery.yml picks them)",
        )
    if runs.unfinished(site.place.switchover_run):
        raise RecoveryError(f"a switchover of {s.name} is unfinished here", hint="finish it first")
    for i in range(len(s.roots)):
        _replica_to_test(t, i)
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
    for p in t.app().data_paths():
        if not any(p.resolve().is_relative_to(r.resolve()) for r in t.roots):
            raise RecoveryError(
                f"the application's data {p} is outside the scenario's roots", hint="it would not be tested"
            )
    hold = float(ctx.params.get("hold_seconds") or 0)
    if hold > s.assured_recovery.max_hold:
        raise RecoveryError(
            f"a hold of {hold:.0f} s is longer than assured_recovery.interactive.max_hold "
            f"({s.assured_recovery.max_hold:.0f} s)",
            hint="ask for less, or raise max_hold in the scenario",
        )
    lag = max((float(r.get("lag_seconds") or 0) for r in rows), default=None)
    return Ready(active=role.active, epoch=role.epoch, lag_seconds=lag)


def spool(t: Test, ctx: Context) -> Spooled:
    ar = t.site.s.assured_recovery
    started = time.time()
    for i, sp in enumerate(t.spools()):
        with held(t.site.recv(i).apply_lock):  # a batch being applied ends first; the receiver looks at the marker
            sp.start(max_size=ar.spool_max_size, reason=f"assured-recovery test {ctx.run_id}")
            if t.site.s.replication.consistency == "points" and to_point(t.roots[i], t.site.recv(i)) is None:
                raise RecoveryError(
                    f"{t.roots[i]} has no complete consistency point yet: there is nothing consistent to test",
                    where=str(t.roots[i]),
                    hint="test once the first sync has finished (twinsite status shows the last point)",
                )
    tested = [
        {
            "root": str(root),
            "seq": p.seq,
            "ts": p.ts or None,
            "time": when(p.ts),
            "age_seconds": round(started - p.ts, 3) if p.ts else None,
        }
        for root, p in zip(t.roots, t.site.positions(), strict=True)
    ]
    return Spooled(tested=tested, since=started, digests=[{"root": str(r), "digest": digest(r)} for r in t.roots])


def bookmark(t: Test, ctx: Context) -> TestBookmarked | NoBookmark:
    if not t.site.s.cdp.enabled:
        return NoBookmark(bookmark=None, note="cdp is off")
    name = f"recovery-test-{ctx.run_id}"
    for i, tested in enumerate(ctx.get(Spooled).tested):
        bookmarks.add(t.site.recv(i).bookmarks, name, tested["seq"], tested["ts"] or 0.0)
    return TestBookmarked(bookmark=name)


def mount(t: Test, ctx: Context) -> Mounted:
    for i, r in enumerate(t.roots):
        overlay.mount(r, t.scratch(i))
    return Mounted(mounted=[str(r) for r in t.roots])


def _interactive(ctx: Context) -> bool:
    return bool(ctx.params.get("hold_seconds"))


def start_application(t: Test, ctx: Context) -> Started:
    t.app(interactive=_interactive(ctx)).start()
    return Started()


def check_application(t: Test, ctx: Context) -> Checked:
    ar, s = t.site.s.assured_recovery, t.site.s
    timeout = (
        ar.start_timeout if ar.start_timeout is not None else float(s.application_settings.get("start_timeout", 60))
    )
    app = t.app(interactive=_interactive(ctx))
    ok, results = apps.wait_healthy(app, quick=False, timeout=timeout, between=t.interrupt_if_needed)
    return Checked(ok=ok, checks=[r.to_dict() for r in results])


#: What an operator's --end says (recover-test --end): the hold ends as asked, not cut short.
ENDED_BY_OPERATOR = "ended by"


def hold(t: Test, ctx: Context) -> Held | Skipped:
    """An interactive test: the checked copy stays up, under its test name, until the hold ends (see the
    module's doc); the name is removed whatever ends it."""
    seconds = float(ctx.params.get("hold_seconds") or 0)
    if not seconds:
        return Skipped("not an interactive test")
    if not ctx.get(Checked).ok:
        return Skipped("the checks failed: the copy is not handed to testers")
    started = time.time()
    name = expose.TestName.from_dict(ctx.params["test_name"]) if ctx.params.get("test_name") else None
    exposed: dict[str, Any] | None = None
    ended, cut = "the hold ran out", False
    try:
        if name is not None:
            exposed = expose.publish(name)
        while time.time() < started + seconds:
            asked = end_request.read(t.place.end)
            if asked:
                ended, cut = f"asked to end: {asked}", not asked.startswith(ENDED_BY_OPERATOR)
                break
            try:
                t.interrupt_if_needed()
            except RecoveryError as exc:
                ended, cut = exc.message, True
                break
            time.sleep(0.5)
    finally:
        if name is not None:
            exposed = {**(exposed or {"name": name.name, "address": name.address}), **expose.withdraw(name)}
    if cut:
        s = t.site.s
        t.site.alerter.send(
            Alert(
                kind="recovery-hold-ended",
                severity="warning",
                scenario=s.name,
                host=t.site.host,
                what=f"the interactive test {ctx.run_id} of {s.name} on {t.site.host} was ended early: {ended}",
                action="testers lost the copy; its writes are discarded and replication applies again. "
                "Raise assured_recovery.spool.max_size, or hold for less, if the spool's cap ended it",
            )
        )
    return Held(
        requested_seconds=seconds,
        held_seconds=round(time.time() - started, 3),
        until=when(started + seconds),
        ended=ended,
        cut_short=cut,
        exposed=exposed,
    )


def stop_application(t: Test, ctx: Context) -> Stopped | Skipped:
    return stop_app(t)


def stop_app(t: Test) -> Stopped | Skipped:
    if not any(overlay.mounted(r) for r in t.roots):
        return Skipped("no overlay is mounted: the application was not started on one")
    app = t.app(interactive=t.interactive())
    was = app.running()
    app.stop()
    return Stopped(was_running=was)


def unmount(t: Test, ctx: Context) -> Unmounted:
    out = [overlay.unmount(r, t.scratch(i)) for i, r in enumerate(t.roots)]
    return Unmounted(overlays=out, digests=[{"root": str(r), "digest": digest(r)} for r in t.roots])


def passed(ctx: Context) -> tuple[bool, str | None]:
    """Whether the test passed: every check, and the replica unchanged by it (equal digests before and after)."""
    checked = ctx.get(Checked)
    if not checked.ok:
        failed = [c["name"] for c in checked.checks if not c["ok"]]
        return False, f"check(s) failed: {', '.join(failed)}"
    before = {d["root"]: d["digest"] for d in ctx.get(Spooled).digests}
    changed = [d["root"] for d in ctx.get(Unmounted).digests if before.get(d["root"]) != d["digest"]]
    if changed:
        return False, f"the replica changed during the test: {', '.join(changed)}"
    return True, None


def after_pass(t: Test, ctx: Context) -> ActionsRun | NoActions:
    ok, why = passed(ctx)
    specs = t.site.s.assured_recovery.after_pass
    held = ctx.results.get("hold", {})
    if ok and held.get("cut_short"):  # (a switchover may be waiting: the replica must be itself again at once)
        why = f"the hold was ended early: {held.get('ended')}"
    if not ok or not specs or held.get("cut_short"):
        return NoActions(actions=[], skipped=why or "no actions configured")
    facts = {"id": ctx.run_id, "scenario": t.site.s.name, "host": t.site.host, "tested": ctx.get(Spooled).tested}
    return ActionsRun(actions=run_all(specs, facts=facts, roots=t.roots, plugins=t.site.plugins))


def apply_spool(t: Test, ctx: Context) -> SpoolApplied:
    return spool_off(t, wait=t.site.s.assured_recovery.drain_timeout)


def spool_off(t: Test, *, wait: float) -> SpoolApplied:
    """Turn the spools off; wait up to ``wait`` s for the receivers to apply what they hold."""
    sps = t.spools()
    positions = t.site.positions()
    records = sum(max(0, sp.last_seq - p.seq) for sp, p in zip(sps, positions, strict=True))
    size = sum(sp.journal().disk_bytes() if sp.held() else 0 for sp in sps)
    full = any(sp.full for sp in sps)
    for sp in sps:
        sp.close()
        sp.stop()
    t0 = time.monotonic()
    applied = wait_until(lambda: not any(sp.held() for sp in sps), timeout=wait, interval=0.1)
    return SpoolApplied(
        records=records, bytes=size, full=full, applied=applied, apply_seconds=round(time.monotonic() - t0, 3)
    )


STEPS = (
    ("preflight", "a standby, in sync, not rewound, no switchover running", preflight),
    ("spool", "the receiver keeps what arrives (durable, acknowledged) instead of applying it", spool),
    ("bookmark", "with CDP: the tested point, by name", bookmark),
    ("mount", "an overlay on each root: the application's writes go to a throw-away layer", mount),
    ("start-application", "start the application on the replica's data", start_application),
    ("check-application", "its checks and the test's scripts, each with a timeout", check_application),
    ("hold", "an interactive test: the copy stays up for testers under its test name", hold),
    ("stop-application", "stop it", stop_application),
    ("unmount", "remove the overlays and the test's writes; digest the replica again", unmount),
    ("after-pass", "a passing test's actions on the tested data: snapshot, vm_copy, archive, script", after_pass),
    ("apply-spool", "the receiver applies what arrived meanwhile, in order", apply_spool),
)
INTERRUPTIBLE = {"preflight", "spool", "bookmark", "mount", "start-application", "check-application"}


def steps(t: Test) -> list[Step]:
    def before(name: str) -> None:
        if name in INTERRUPTIBLE:
            t.interrupt_if_needed()

    return bind(t, STEPS, before=before)

"""Running a recovery plan from the controller: each group in turn, the scenarios of a group side by side
(``parallel`` at most), each one by twinsite's own command on the host it concerns, over SSH:

* ``failover``: ``twinsite switchover S`` on the standby the plan names (``--unplanned`` when asked);
* ``test``: ``twinsite recover-test S`` on that standby (an assured-recovery test: nothing moves);
* ``switchback``: ``twinsite switchback S`` on the scenario's home host (its ``master``).

The plan's run is an ops.runner run, one step per group, kept on the controller (state.layout.PlanState):
run again after an interruption (the controller killed, a failure fixed), it continues with the group that
was under way. A scenario is never switched twice: a switchover is a
persisted, resumable run on its host that does nothing where the host is active already, and a scenario
found so is taken as done when its host's newest report was made during this plan's run (an earlier
attempt switched it), as "nothing to do" otherwise. A test that passed during this run is not run again.

One report per run (JSON and Markdown, beside the run), rewritten after each attempt so that it
covers the whole run: each scenario's outcome, host, start and end, RTO and RPO (from its own report),
the order things happened in, what failed and why, and the plan's total RTO.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from twinsite.clock import from_iso, iso
from twinsite.config.plans import STOP, PlanGroup, PlanStep, RecoveryPlan
from twinsite.config.scenario import Scenario
from twinsite.durable import write_json, write_text
from twinsite.errors import PlanError, TimedOut, TwinsiteError
from twinsite.ops.runner import Context, Result, Runner, Step
from twinsite.plans.hosts import Hosts
from twinsite.state.layout import PlanState
from twinsite.state.runs import DONE, FAILED, RunState

FAILOVER, TEST, SWITCHBACK = "failover", "test", "switchback"
#: an action: the command run on each scenario's host, and what it is called in the plan
COMMANDS = {FAILOVER: "switchover", TEST: "recover-test", SWITCHBACK: "switchback"}
#: how long a look (a dry run on a host) may take
LOOK_TIMEOUT = 30.0

#: a scenario's outcome in a plan run
SWITCHED, NOTHING, FAILED_ONE, TIMED_OUT, SKIPPED, NOT_STARTED = (
    "done", "nothing to do", "failed", "timed out", "skipped", "not started",
)  # fmt: skip
GOOD = (SWITCHED, NOTHING)


@dataclass(frozen=True)
class GroupResult(Result):
    """The outcome of each scenario of a group (by name)."""

    scenarios: dict[str, dict[str, Any]] = field(default_factory=dict)


class GroupFailed(PlanError):
    """A group stopped the plan (``on_failure: stop``); ``partial`` is what it did (kept with the run)."""

    def __init__(self, message: str, partial: GroupResult, hint: str) -> None:
        super().__init__(message, hint=hint)
        self.partial = partial.to_json()


class PlanRun:
    def __init__(
        self,
        plan: RecoveryPlan,
        scenarios: Mapping[str, Scenario],
        hosts: Hosts,
        state_dir: Path,
        action: str,
        *,
        unplanned: bool = False,
    ) -> None:
        if action not in COMMANDS:
            raise PlanError(f"unknown action {action!r}", hint=f"one of {', '.join(COMMANDS)}")
        self.plan, self.scenarios, self.action = plan, scenarios, action
        self.unplanned = unplanned and action == FAILOVER
        self.place = PlanState(state_dir, plan.name)
        self.hosts = hosts if hosts.control_dir else Hosts(hosts.access, hosts.cli, self.place.ssh)
        steps = [Step(g.name, self._describe(g), self._group_step(g)) for g in plan.groups]
        self.runner = Runner(self.place.run, action, steps, error=PlanError)
        self._created = 0.0

    # -- where each scenario's step runs -----------------------------------------------------------
    def host_of(self, st: PlanStep) -> str:
        s = self.scenarios[st.scenario]
        if self.action == SWITCHBACK:
            return s.master
        return st.to or s.replicas[0]

    def _describe(self, g: PlanGroup) -> str:
        at_once = "all at once" if g.parallel >= len(g.steps) else f"{g.parallel} at a time"
        return f"{COMMANDS[self.action]} {', '.join(g.scenarios)} ({at_once}; on failure: {g.on_failure})"

    def _args(self, st: PlanStep, unplanned: bool) -> list[str]:
        return [COMMANDS[self.action], st.scenario, *(["--unplanned"] if unplanned else [])]

    # -- looking ------------------------------------------------------------------------------------
    def preview(self) -> dict[str, Any]:
        """The whole plan as it stands (changes nothing): each group in order and, for each scenario, the host
        its step runs on and that host's own dry run (who is active now, what would move), or why it could
        not answer; and the plan's unfinished run, if any."""
        saved = self.runner.load()
        resuming = saved is not None and saved.finished is None and saved.kind == self.action
        looks = _side_by_side([(st.scenario, partial(self._look, st)) for _, st in self.plan.steps], width=8)
        groups: list[dict[str, Any]] = []
        for g in self.plan.groups:
            state = _group_state(saved, g.name) if resuming else "pending"
            groups.append(
                {
                    "group": g.name,
                    "parallel": g.parallel,
                    "on_failure": g.on_failure,
                    "state": state,
                    "scenarios": [{"scenario": st.scenario, "needs": list(st.needs), **looks[st.scenario]}
                                  for st in g.steps],
                }
            )  # fmt: skip
        moves = [sc for g in groups for sc in g["scenarios"] if sc.get("changes")]
        return {
            "plan": self.plan.name,
            "action": self.action,
            "unplanned": self.unplanned,
            "resuming": saved.id if resuming and saved is not None else None,
            "groups": groups,
            "changes": len(moves),
            "unreachable": [sc["scenario"] for g in groups for sc in g["scenarios"] if "error" in sc],
        }

    def _look(self, st: PlanStep) -> dict[str, Any]:
        host = self.host_of(st)
        try:
            got = self.hosts.twinsite(host, [COMMANDS[self.action], st.scenario, "--dry-run"], timeout=LOOK_TIMEOUT)
        except TwinsiteError as exc:
            return {"host": host, "error": exc.message, "changes": True}
        if self.action == TEST:
            return {"host": host, "ready": got.get("ready"), "why": got.get("why"), "changes": False}
        return {
            "host": host,
            "active": got.get("active"),
            "epoch": got.get("epoch"),
            "mode": got.get("mode"),
            "resuming": got.get("resuming"),
            "changes": bool(got.get("changed")),
        }

    # -- running ------------------------------------------------------------------------------------
    def execute(self) -> tuple[dict[str, Any], PlanError | None]:
        """Run (or continue) the plan: its report, and the error that stopped it (None: it ran to its end)."""
        self._created = self.runner.start({"unplanned": self.unplanned}).created
        error: PlanError | None = None
        try:
            self.runner.run({"unplanned": self.unplanned})
        except PlanError as exc:
            error = exc
        run = self.runner.load()
        if run is None:  # (never: the runner stored it)
            raise PlanError("the plan's run was not kept", where=str(self.runner.path))
        report = self.report(run)
        write_json(self.place.report(run.id), report)
        write_text(self.place.report(run.id, ".md"), markdown(report))
        return report, error

    def _group_step(self, g: PlanGroup) -> Callable[[Context], Result]:
        def run(ctx: Context) -> Result:
            return self._group(g, ctx)

        return run

    def _group(self, g: PlanGroup, ctx: Context) -> GroupResult:
        earlier = {n: o for res in ctx.results.values() for n, o in res.get("scenarios", {}).items()}
        out: dict[str, dict[str, Any]] = {}
        todo: list[PlanStep] = []
        for st in g.steps:
            bad = [n for n in st.needs if earlier.get(n, {}).get("state") not in GOOD]
            if bad:
                out[st.scenario] = self._outcome(st, g, SKIPPED, error=f"needs {', '.join(bad)}, which did not succeed")
            else:
                todo.append(st)
        stop = threading.Event()

        def one(st: PlanStep) -> dict[str, Any]:
            if stop.is_set():
                return self._outcome(st, g, NOT_STARTED, error="not started: an earlier scenario of the group failed")
            o = self._one(st, g, bool(ctx.params.get("unplanned")))  # (the run's own, kept with it)
            if o["state"] not in GOOD and g.on_failure == STOP:
                stop.set()
            return o

        out.update(_side_by_side([(st.scenario, partial(one, st)) for st in todo], width=g.parallel))
        result = GroupResult({st.scenario: out[st.scenario] for st in g.steps})
        failed = [o for o in result.scenarios.values() if o["state"] not in GOOD]
        if failed and g.on_failure == STOP:
            what = "; ".join(f"{o['scenario']} on {o['host']}: {o['state']}: {o.get('error')}" for o in failed)
            raise GroupFailed(
                f"group {g.name} stopped the plan: {what}",
                result,
                hint="fix what the report says, then run the plan again: it continues with this group "
                "(a scenario that was switched is not switched again)",
            )
        return result

    def _outcome(self, st: PlanStep, g: PlanGroup, state: str, **more: Any) -> dict[str, Any]:
        return {"scenario": st.scenario, "group": g.name, "host": self.host_of(st), "state": state, **more}

    def _one(self, st: PlanStep, g: PlanGroup, unplanned: bool) -> dict[str, Any]:
        host, started = self.host_of(st), time.time()
        if self.action == TEST:
            earlier = self._earlier(host, st.scenario)
            if earlier is not None:
                return self._outcome(st, g, SWITCHED, started=started, ended=time.time(), earlier=True, **earlier)
        try:
            got = self.hosts.twinsite(host, self._args(st, unplanned), timeout=st.timeout)
        except TimedOut as exc:
            return self._outcome(st, g, TIMED_OUT, started=started, ended=time.time(), error=_said(exc))
        except TwinsiteError as exc:
            return self._outcome(st, g, FAILED_ONE, started=started, ended=time.time(), error=_said(exc))
        ended = time.time()
        if got.get("changed") is False:  # active there already: switched by an earlier attempt of this run?
            earlier = self._earlier(host, st.scenario)
            state, more = (SWITCHED, {"earlier": True, **earlier}) if earlier else (NOTHING, {"active": host})
            return self._outcome(st, g, state, started=started, ended=ended, **more)
        return self._outcome(st, g, SWITCHED, started=started, ended=ended, **_summary(self.action, got))

    def _earlier(self, host: str, scenario: str) -> dict[str, Any] | None:
        """The summary of the newest report (or test evidence) of ``scenario`` on ``host`` when it was made
        during this plan's run and did what the plan asks; None otherwise (or when the host cannot say)."""
        try:
            got = self.hosts.twinsite(host, [COMMANDS[self.action], scenario, "--report"], timeout=LOOK_TIMEOUT)
        except TwinsiteError:
            return None
        began = got.get("started_ts") or 0.0
        if self.action == TEST:
            ok = got.get("result") == "passed"
        else:
            ok = got.get("result") == "done" and got.get("kind") == COMMANDS[self.action]
        return _summary(self.action, got) if ok and began >= self._created else None

    # -- the report ---------------------------------------------------------------------------------
    def report(self, run: RunState) -> dict[str, Any]:
        groups, outcomes = [], []
        for g, st in zip(self.plan.groups, run.steps, strict=True):
            found = st.result.get("scenarios", {}) if st.state in (DONE, FAILED) else {}
            rows = [found.get(s.scenario) or self._outcome(s, g, "pending") for s in g.steps]
            outcomes += rows
            groups.append(
                {"group": g.name, "state": st.state, "attempts": st.attempts, "started": iso(st.started),
                 "ended": iso(st.ended), "seconds": _round(st.seconds), "error": st.error, "scenarios": rows}
            )  # fmt: skip
        # (a scenario's own times where it has a report: those of the attempt that did it, on its host)
        events = sorted(
            [
                (o.get("began") or o["started"], o["scenario"], "started", o["host"])
                for o in outcomes
                if o.get("started")
            ]
            + [
                (o.get("finished_at") or o["ended"], o["scenario"], o["state"], o["host"])
                for o in outcomes
                if o.get("ended")
            ]
        )
        back = [o["users_back_ts"] for o in outcomes if o.get("users_back_ts")]
        ended = max((o["ended"] for o in outcomes if o.get("ended")), default=None)
        failed = [o for o in outcomes if o["state"] in (FAILED_ONE, TIMED_OUT, SKIPPED, NOT_STARTED)]
        return {
            "id": run.id,
            "plan": self.plan.name,
            "action": self.action,
            "unplanned": bool(run.params.get("unplanned")),
            "started": iso(run.created),
            "ended": iso(ended),
            "finished": run.finished is not None,
            "result": "done"
            if run.finished is not None and not failed
            else ("stopped" if run.finished is None else "done with failures"),
            "seconds": _round(ended - run.created) if ended else None,
            "rto_seconds": _round(max(back) - run.created) if back else None,
            "scenarios_done": sum(o["state"] in GOOD for o in outcomes),
            "scenarios": len(outcomes),
            "failed": [{"scenario": o["scenario"], "state": o["state"], "error": o.get("error")} for o in failed],
            "groups": groups,
            "order": [{"at": iso(t), "scenario": n, "event": e, "host": h} for t, n, e, h in events],
        }


def _group_state(run: RunState | None, name: str) -> str:
    for st in run.steps if run else []:
        if st.name == name:
            return st.state
    return "pending"


def _said(exc: TwinsiteError) -> str:
    return exc.message + (f" ({exc.hint})" if exc.hint else "")


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def _summary(action: str, got: Mapping[str, Any]) -> dict[str, Any]:
    """What the plan's report keeps of a scenario's own report (switchover) or evidence (test)."""
    if action == TEST:
        began, took = got.get("started_ts"), got.get("seconds")
        return {"report": got.get("id"), "result": got.get("result"), "rto_seconds": got.get("rto_seconds"),
                "began": began, "finished_at": began + took if began and took is not None else None}  # fmt: skip
    rto, rpo = got.get("rto") or {}, got.get("rpo") or {}
    return {
        "report": got.get("id"),
        "mode": got.get("mode"),
        "from": got.get("from"),
        "to": got.get("to"),
        "began": got.get("started_ts"),
        "finished_at": got.get("ended_ts"),
        "rto_seconds": rto.get("outage_seconds"),
        "rpo_seconds": rpo.get("seconds"),
        "users_back_ts": from_iso(rto.get("users_back_at")),
    }


def _side_by_side(jobs: list[tuple[str, Callable[[], dict[str, Any]]]], *, width: int) -> dict[str, dict[str, Any]]:
    """Run the jobs, ``width`` at a time, in their order: each one's answer by its name."""
    if not jobs:
        return {}
    with ThreadPoolExecutor(max_workers=max(1, min(width, len(jobs)))) as pool:
        futures = [(name, pool.submit(fn)) for name, fn in jobs]
        return {name: f.result() for name, f in futures}


def preview_text(p: Mapping[str, Any]) -> str:
    """The plan as people read it."""
    verb = {FAILOVER: "fail over", TEST: "test", SWITCHBACK: "switch back"}[p["action"]]
    head = f"plan {p['plan']}: {verb}" + (" (unplanned)" if p["unplanned"] else "")
    lines = [head + (f", continuing run {p['resuming']}" if p["resuming"] else "")]
    for i, g in enumerate(p["groups"], 1):
        lines.append(f"  {i}. {g['group']} ({g['parallel']} at a time, on failure: {g['on_failure']}): {g['state']}")
        for sc in g["scenarios"]:
            needs = f" [needs {', '.join(sc['needs'])}]" if sc["needs"] else ""
            if "error" in sc:
                what = f"{sc['host']} does not answer: {sc['error']}"
            elif p["action"] == TEST:
                what = f"on {sc['host']}: {sc['why']}"
            else:
                what = f"{sc['active']} -> {sc['host']}: {sc['mode']}" + (" (continuing)" if sc.get("resuming") else "")
            lines.append(f"     {sc['scenario']}: {what}{needs}")
    return "\n".join(lines)


def markdown(r: Mapping[str, Any]) -> str:
    """The report of a plan's run, as Markdown."""
    verb = {FAILOVER: "failover", TEST: "test", SWITCHBACK: "switch-back"}[r["action"]]
    out = [
        f"# Site {verb}: plan {r['plan']} (run {r['id']})",
        "",
        f"- result: **{r['result']}**; {r['scenarios_done']} of {r['scenarios']} scenarios done",
        f"- started {r['started']}, ended {r['ended'] or '-'} ({_secs(r['seconds'])})",
    ]
    if r["action"] != TEST:
        out.append(f"- RTO of the plan (its start to the last scenario's users back): {_secs(r['rto_seconds'])}")
    for f in r["failed"]:
        out.append(f"- **{f['scenario']}: {f['state']}**: {f['error']}")
    out += [
        "",
        "| group | scenario | host | outcome | started | seconds | RTO | RPO | report |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for g in r["groups"]:
        for o in g["scenarios"]:
            took = o["ended"] - o["started"] if o.get("ended") and o.get("started") else None
            state = o["state"] + (" (earlier attempt)" if o.get("earlier") else "")
            out.append(
                f"| {g['group']} | {o['scenario']} | {o['host']} | {state} "
                f"| {iso(o.get('started')) or '-'} | {_secs(took)} | {_secs(o.get('rto_seconds'))} "
                f"| {_secs(o.get('rpo_seconds'))} | {o.get('report') or '-'} |"
            )
    out += ["", "## Order", ""] + [f"- {e['at']} {e['scenario']} {e['event']} ({e['host']})" for e in r["order"]]
    return "\n".join(out) + "\n"


def _secs(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f} s"

"""Monitoring, in the agent on each standby: is the active host reachable, is its application healthy,
is replication healthy? A failure counts only after ``misses`` failed rounds in a row; then an alert goes
out (once), and a ``resolved`` alert when it passes again.

Each round asks the active host over SSH, through one persistent OpenSSH connection (ControlMaster in the
host's state directory): ``true`` (is it reachable), then ``twinsite probe`` (the application's quick
checks and replication as the active host sees it), whose answer the monitors of every scenario active
there share (monitor.probe). ssh's own failure (exit 255 or no answer within the timeout) means
unreachable; then the other two are not known and count as neither.
The state of every condition is kept durably after every round (state.monitor). What an automatic
switchover does when the active host is down: monitor.auto.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twinsite.alerts import Alert
from twinsite.alerts.dispatch import Alerter, channels_from
from twinsite.config.scenario import Scenario
from twinsite.monitor import auto
from twinsite.monitor.probe import Probes, answers
from twinsite.state import monitor as kept
from twinsite.state import runs
from twinsite.state.layout import ScenarioState
from twinsite.state.monitor import ALERT_KINDS, Condition, MonitorView
from twinsite.transport.remote import TIMED_OUT, UNREACHABLE, Answer, run_on

log = logging.getLogger(__name__)


@dataclass
class Verdict:
    """What one round found: per condition, ok / failed / unknown, with a detail."""

    results: dict[str, tuple[bool | None, str]] = field(default_factory=dict)


class Monitor(threading.Thread):
    def __init__(
        self,
        scenario: Scenario,
        host: str,
        state_dir: Path,
        config_dir: Path,
        *,
        active: str | None = None,
        probes: Probes | None = None,
    ) -> None:
        super().__init__(name=f"monitor-{scenario.name}", daemon=True)
        self.s = scenario
        self.host = host
        self.active = active or scenario.master  # the host that is active now (state.role)
        self.state_dir = state_dir
        self.config_dir = config_dir  # the active host keeps its scenarios at the same path
        self.place = ScenarioState(state_dir, scenario.name)
        self.alerter = Alerter(state_dir, channels_from(scenario.alerts))
        self.ssh_dir = self.place.host.ssh
        self.ssh_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.place.dir.mkdir(parents=True, exist_ok=True)
        self.conditions: dict[str, Condition] = {}
        self.auto: dict[str, object] = {}  # the automatic switchover's decision for the current outage
        self.stopped = threading.Event()
        self._load()
        rep = scenario.replication  # (the monitors that reach the active host the same way share its answers)
        self.probes = probes or Probes()
        self.probe_key = (self.active, rep.known_hosts, rep.ssh_options, rep.remote_twinsite, str(config_dir))
        self.probe = self.probes.join(self.probe_key, scenario.name)

    # -- asking the active host ----------------------------------------------------------------------
    def _run(self, *command: str, timeout: float, twinsite: bool = True) -> Answer:
        rep = self.s.replication
        return run_on(
            rep,
            self.active,
            [rep.remote_twinsite, *command] if twinsite else command,
            timeout=timeout,
            control_dir=self.ssh_dir,  # shared by every scenario
            persist=max(60, 3 * self.s.monitoring.interval),
        )

    def observe(self) -> Verdict:
        """Reachability by a cheap command within ``timeout``; then the application's quick checks and
        replication, each with more time (a slow answer there says nothing about reachability)."""
        m = self.s.monitoring
        v = Verdict()
        reach = self._run("true", timeout=m.timeout, twinsite=False)
        if not reach.reached:
            return self._unreachable(v, reach.err)
        v.results["reachable"] = (True, f"{self.active} answers over SSH")
        got = self.probe.ask(self.s.name, self._probe, max_age=m.interval / 2)
        if got.code == UNREACHABLE:  # it stopped answering meanwhile (ssh's keep-alives tell within seconds)
            return self._unreachable(v, got.err)
        if got.code == TIMED_OUT:  # a hung check is a failed one; replication is not known
            v.results["application"], v.results["replication"] = (False, got.err), (None, got.err)
            return v
        app, status, why = answers(got, self.s.name, self.active)
        v.results["application"] = _application(app) if app is not None else (None, why or "not checked")
        v.results["replication"] = _replication(status, self.s, self.host) if status is not None else (None, why)
        return v

    def _probe(self, scenarios: list[str]) -> Answer:
        slow = max(self.s.monitoring.timeout, 60.0)  # (a slow answer says nothing about reachability)
        argv = ("probe", *scenarios, "--config-dir", str(self.config_dir), "--check-timeout", str(slow / 2))
        return self._run(*argv, "--json", timeout=slow)

    def _unreachable(self, v: Verdict, out: str) -> Verdict:
        v.results["reachable"] = (False, f"{self.active} does not answer over SSH: {out.strip()[-300:]}")
        v.results["application"] = (None, "the host does not answer")
        v.results["replication"] = (None, "the host does not answer")
        return v

    # -- judging -------------------------------------------------------------------------------------
    def judge(self, v: Verdict, now: float | None = None) -> list[Alert]:
        now = time.time() if now is None else now
        alerts = []
        for name, (ok, detail) in v.results.items():
            c = self.conditions.setdefault(name, Condition())
            c.checked_at = now
            if ok is None:
                c.ok, c.unknown = None, c.unknown + 1
                host_answers = v.results.get("reachable", (False, ""))[0]
                if host_answers and c.unknown >= self.s.monitoring.misses and not c.blind:
                    c.blind, c.detail = True, detail
                    alerts.append(self._blind(name, c, detail))
                continue
            c.unknown, c.blind = 0, False
            c.ok, c.detail = ok, detail
            if ok:
                if c.alerting:
                    alerts.append(self._alert(name, c, resolved=True))
                c.misses, c.since, c.alerting = 0, None, False
                continue
            c.misses += 1
            c.since = c.since or now
            if c.misses >= self.s.monitoring.misses and not c.alerting:
                c.alerting = True
                alerts.append(self._alert(name, c, resolved=False))
        self._save()
        return alerts

    def _alert(self, name: str, c: Condition, *, resolved: bool) -> Alert:
        s, active = self.s, self.active
        since = dt.datetime.fromtimestamp(c.since or time.time(), dt.UTC)
        what, action = {
            "reachable": (
                f"{active} does not answer (the standby {self.host} cannot reach it over SSH)",
                f"check {active} and its network; if its site is down, switch over to {self.host}, "
                f"after making sure {active} is really down (it must not come back as a second active host)",
            ),
            "application": (
                f"the {s.application} application of {s.name} on {active} is unhealthy",
                f"look at it on {active} (twinsite app {s.name} check); switch over if it cannot be brought back",
            ),
            "replication": (
                f"replication of {s.name} from {active} to {self.host} is unhealthy",
                f"twinsite status on {active}: read the last error; the journal keeps changes meanwhile",
            ),
        }[name]
        if resolved:
            what = f"resolved: {what.split(' (', 1)[0]} no longer holds"
            action = "nothing; it passed again"
        return Alert(
            kind=("resolved-" if resolved else "") + ALERT_KINDS[name],
            severity="resolved" if resolved else ("warning" if name == "replication" else "critical"),
            scenario=s.name,
            host=active,
            what=what,
            action=action,
            since=since,
            details=(("failed checks in a row", str(c.misses)), ("last result", c.detail[-500:])),
        )

    def _blind(self, name: str, c: Condition, detail: str) -> Alert:
        s = self.s
        return Alert(
            kind="cannot-check",
            severity="warning",
            scenario=s.name,
            host=self.active,
            what=f"the standby {self.host} cannot tell whether the {name} of {s.name} on {self.active} is healthy",
            action=f"make `twinsite app {s.name} check` and `twinsite status` work on {self.active} (answer below)",
            details=(("rounds in a row", str(c.unknown)), ("last answer", detail.strip()[-500:])),
        )

    # -- running -------------------------------------------------------------------------------------
    def round(self) -> list[Alert]:
        alerts = self.judge(self.observe())
        for a in alerts:
            self.alerter.send(a)
        if self.s.switchover.mode == "automatic":
            self.automatic()
        return alerts

    # -- automatic switchover (monitor.auto) -------------------------------------------------------------
    def automatic(self) -> str | None:
        """Start (or continue) an unplanned switchover when the active host is down for a second opinion
        too; returns what was decided this round, or None when the active host is fine."""
        c = self.conditions.get("reachable")
        if c is None or not c.alerting or c.ok is not False:
            if self.auto:
                self.auto = {}
                self._save()
            return None
        if auto.running(self.state_dir, self.s.name):
            return "running"
        outage = self.auto.get("since") == c.since
        if outage and self.auto.get("started"):
            if runs.interrupted(self.place.switchover_run):
                auto.start(self.s, self.state_dir, self.config_dir, str(self.auto["second"]))
                return "continued"
            return "done"  # finished, or failed: a failed one is the operator's (it alerted)
        op = auto.second_opinion(self.s, self.active)
        second = {"down": "witness"}.get(op.verdict) or (
            "fence" if op.verdict == "unknown" and self.s.switchover.fence else None
        )
        if second is None:
            if self.auto.get("withheld") != c.since:
                self.auto = {"since": c.since, "withheld": c.since}
                self._save()
                self.alerter.send(self._withheld(op.detail, op.verdict))
            return "withheld"
        self.auto = {"since": c.since, "started": True, "second": second, "opinion": op.detail}
        self._save()
        auto.start(self.s, self.state_dir, self.config_dir, second)
        return "started"

    def _withheld(self, detail: str, verdict: str) -> Alert:
        s, active = self.s, self.active
        split = verdict == "alive"
        return Alert(
            kind="switchover-withheld",
            severity="critical",
            scenario=s.name,
            host=active,
            what=(
                f"{self.host} cannot reach {active}, but {detail}: the link is cut, {active} is alive; "
                "no automatic switchover (it would make two active hosts)"
                if split
                else f"{self.host} cannot reach {active} and has no second opinion ({detail}): no automatic switchover"
            ),
            action=(
                f"repair the link between {self.host} and {active}; replication resumes by itself"
                if split
                else f"find out whether {active} is down; if it is, `twinsite switchover {s.name} --unplanned` on "
                f"{self.host}, or configure a witness or a fence"
            ),
            details=(("second opinion", detail),),
        )

    def run(self) -> None:
        while not self.stopped.is_set():
            t0 = time.monotonic()
            try:
                self.round()
            except Exception:  # a bug must not end monitoring silently: say it, go on
                log.exception("monitor %s: round failed", self.s.name)
            self.stopped.wait(max(0.2, self.s.monitoring.interval - (time.monotonic() - t0)))

    def stop(self, *, wait: bool = True) -> None:
        self.stopped.set()
        self.probes.leave(self.probe_key, self.s.name)
        if wait:
            self.join()

    # -- state (state.monitor) -----------------------------------------------------------------------------
    def _load(self) -> None:
        view = kept.watching(self.place.monitor, self.active)
        self.conditions, self.auto = dict(view.conditions), dict(view.automatic)

    def _save(self) -> None:
        view = MonitorView(self.s.name, self.active, self.host, 0.0, self.conditions, self.auto)
        kept.write(self.place.monitor, view)


def _application(answer: dict[str, Any]) -> tuple[bool | None, str]:
    """The scenario's checks, from their answer (``twinsite app S check --json``'s envelope)."""
    if answer.get("ok"):
        checks = answer["result"]["checks"]
        return True, f"{len(checks)} check(s) passed"
    error = answer.get("error", {})
    if error.get("type") == "AppError":
        return False, str(error.get("message", ""))
    return None, f"cannot check the application: {error.get('message', '')}"


def _replication(status: dict[str, Any], s: Scenario, standby: str) -> tuple[bool | None, str]:
    """Replication to ``standby``, from the active host's status (``twinsite status --json``'s result)."""
    try:
        rows = [r for r in status["scenarios"] if r.get("scenario") == s.name and r.get("replica") == standby]
    except (KeyError, TypeError, AttributeError):
        return None, f"no status from the active host: {json.dumps(status)[-300:]}"
    if not rows:
        return False, f"the active host runs no replication of {s.name} to {standby}"
    bad = [r for r in rows if r.get("state") not in ("replicating", "syncing")]
    lag = max(float(r.get("lag_seconds") or 0) for r in rows)
    if bad:
        r = bad[0]
        return False, f"state {r.get('state')}: {r.get('last_error') or 'no error recorded'}"
    if lag > s.monitoring.max_lag:
        return False, f"lag {lag:.1f} s is over {s.monitoring.max_lag:g} s"
    return True, f"{rows[0].get('state')}, lag {lag:.1f} s"

"""The monitor's judgement: a failure counts after `misses` rounds in a row, alerts once, resolves once;
a round where the host does not answer leaves the application and replication as they were."""

from __future__ import annotations

import json
from pathlib import Path

from twinsite.config.scenario import Monitoring, Root, Scenario
from twinsite.monitor import Monitor, Verdict, _application, _replication
from twinsite.state import monitor as monitor_state
from twinsite.state.layout import ScenarioState


def scenario(misses: int = 3) -> Scenario:
    return Scenario(
        name="db", master="prod1", replicas=("dr1",), roots=(Root(path="/srv/db"),), application="postgresql",
        monitoring=Monitoring(misses=misses, max_lag=60),
    )  # fmt: skip


def verdict(reach: bool, app: bool | None = True, repl: bool | None = True) -> Verdict:
    return Verdict({"reachable": (reach, "r"), "application": (app, "a"), "replication": (repl, "p")})


def test_a_failure_alerts_after_the_misses_in_a_row_once_then_resolves(tmp_path: Path) -> None:
    m = Monitor(scenario(misses=3), "dr1", tmp_path, tmp_path)
    assert m.judge(verdict(True), now=100) == []
    assert m.judge(verdict(True, app=False), now=110) == []
    assert m.judge(verdict(True, app=True), now=120) == []  # a single miss does not count
    assert m.judge(verdict(True, app=False), now=130) == []
    assert m.judge(verdict(True, app=False), now=140) == []
    [alert] = m.judge(verdict(True, app=False), now=150)
    assert (alert.kind, alert.severity, alert.host) == ("application-down", "critical", "prod1")
    assert alert.since.timestamp() == 130  # since the first miss of the run
    assert "postgresql application of db on prod1 is unhealthy" in alert.what
    assert m.judge(verdict(True, app=False), now=160) == []  # once
    [resolved] = m.judge(verdict(True, app=True), now=170)
    assert (resolved.kind, resolved.severity) == ("resolved-application-down", "resolved")
    kept = monitor_state.read(ScenarioState(tmp_path, "db").monitor)
    assert kept is not None and kept.conditions["application"].alerting is False


def test_an_unreachable_host_leaves_the_other_conditions_unknown(tmp_path: Path) -> None:
    m = Monitor(scenario(misses=2), "dr1", tmp_path, tmp_path)
    m.judge(verdict(True, app=False), now=1)
    assert m.judge(verdict(False, app=None, repl=None), now=2) == []
    [alert] = m.judge(verdict(False, app=None, repl=None), now=3)
    assert alert.kind == "host-unreachable" and "prod1 does not answer" in alert.what
    assert m.conditions["application"].misses == 1  # not counted while unknown
    assert "switch over" in alert.action


def test_the_state_survives_a_restart_of_the_agent(tmp_path: Path) -> None:
    m = Monitor(scenario(misses=1), "dr1", tmp_path, tmp_path)
    assert len(m.judge(verdict(False, None, None), now=5)) == 1
    again = Monitor(scenario(misses=1), "dr1", tmp_path, tmp_path)
    assert again.judge(verdict(False, None, None), now=6) == []  # still alerting: not sent twice
    [resolved] = again.judge(verdict(True), now=7)
    assert resolved.kind == "resolved-host-unreachable"


def test_reading_the_answers_of_the_active_host() -> None:
    ok = json.dumps({"ok": True, "result": {"checks": [{"name": "x", "ok": True}]}})
    assert _application(ok) == (True, "1 check(s) passed")
    bad = json.dumps({"ok": False, "error": {"type": "AppError", "message": "1 check(s) failed: query: refused"}})
    assert _application(bad) == (False, "1 check(s) failed: query: refused")
    other = json.dumps({"ok": False, "error": {"type": "ConfigError", "message": "no scenario 'db'"}})
    assert _application(other)[0] is None
    assert _application("bash: twinsite: not found")[0] is None
    s = scenario()
    row = {"scenario": "db", "replica": "dr1", "state": "replicating", "lag_seconds": 0.4, "last_error": None}
    assert _replication(json.dumps({"result": {"scenarios": [row]}}), s, "dr1") == (True, "replicating, lag 0.4 s")
    lagging = {**row, "lag_seconds": 75.0}
    assert _replication(json.dumps({"result": {"scenarios": [lagging]}}), s, "dr1")[0] is False
    broken = {**row, "state": "disconnected", "last_error": "ssh: connect to host dr1 port 22: No route to host"}
    ok_, detail = _replication(json.dumps({"result": {"scenarios": [broken]}}), s, "dr1")
    assert ok_ is False and "No route to host" in detail
    assert _replication(json.dumps({"result": {"scenarios": []}}), s, "dr1")[0] is False


def test_a_host_that_answers_but_cannot_be_checked_raises_its_own_alert_once(tmp_path: Path) -> None:
    m = Monitor(scenario(misses=2), "dr1", tmp_path, tmp_path)
    blind = Verdict({"reachable": (True, "r"), "application": (None, "bash: twinsite: command not found"),
                     "replication": (True, "p")})  # fmt: skip
    assert m.judge(blind, now=1) == []
    [alert] = m.judge(blind, now=2)
    assert (alert.kind, alert.severity) == ("cannot-check", "warning")
    assert "cannot tell whether the application of db on prod1 is healthy" in alert.what
    assert dict(alert.details)["last answer"] == "bash: twinsite: command not found"
    assert m.judge(blind, now=3) == []  # once
    assert m.judge(verdict(True), now=4) == [] and not m.conditions["application"].blind

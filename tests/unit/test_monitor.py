"""The monitor's judgement: a failure counts after `misses` rounds in a row, alerts once, resolves once;
a round where the host does not answer leaves the application and replication as they were."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from twinsite.config.scenario import Monitoring, Root, Scenario
from twinsite.monitor import Monitor, Verdict, _application, _replication
from twinsite.monitor.probe import Probes, answers
from twinsite.state import monitor as monitor_state
from twinsite.state.layout import ScenarioState
from twinsite.transport.remote import UNREACHABLE, Answer


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


def probe_output(apps: dict[str, dict[str, object]], rows: list[dict[str, object]]) -> Answer:
    return Answer(0, json.dumps({"ok": True, "result": {"apps": apps, "status": {"scenarios": rows}}}) + "\n", "")


def test_reading_the_answers_of_the_active_host() -> None:
    ok = {"ok": True, "result": {"checks": [{"name": "x", "ok": True}]}}
    row = {"scenario": "db", "replica": "dr1", "state": "replicating", "lag_seconds": 0.4, "last_error": None}
    app, status, why = answers(probe_output({"db": ok}, [row]), "db", "prod1")
    assert app is not None and status is not None and why == ""
    assert _application(app) == (True, "1 check(s) passed")
    bad = {"ok": False, "error": {"type": "AppError", "message": "1 check(s) failed: query: refused"}}
    assert _application(bad) == (False, "1 check(s) failed: query: refused")
    other = {"ok": False, "error": {"type": "ConfigError", "message": "no scenario 'db'"}}
    assert _application(other)[0] is None
    missing = answers(Answer(127, "", "bash: twinsite: command not found"), "db", "prod1")
    assert missing[:2] == (None, None) and "(exit 127): bash: twinsite: command not found" in missing[2], missing
    assert answers(probe_output({}, [row]), "db", "prod1")[0] is None  # not asked for db: not known
    failed = json.dumps({"ok": False, "error": {"type": "ConfigError", "message": "bad --config-dir"}})
    assert "bad --config-dir" in answers(Answer(2, failed, ""), "db", "prod1")[2]
    s = scenario()
    assert _replication({"scenarios": [row]}, s, "dr1") == (True, "replicating, lag 0.4 s")
    lagging = {**row, "lag_seconds": 75.0}
    assert _replication({"scenarios": [lagging]}, s, "dr1")[0] is False
    broken = {**row, "state": "disconnected", "last_error": "ssh: connect to host dr1 port 22: No route to host"}
    ok_, detail = _replication({"scenarios": [broken]}, s, "dr1")
    assert ok_ is False and "No route to host" in detail
    assert _replication({"scenarios": []}, s, "dr1")[0] is False
    assert _replication({"rows": []}, s, "dr1")[0] is None


def test_the_monitors_of_one_active_host_share_one_probe_per_round(tmp_path: Path) -> None:
    """Fourteen monitors, one question: the first asks for every watched scenario, the others take its
    answer while it is younger than half their interval; a host that did not answer is asked again."""
    probes = Probes()
    names = [f"s{i}" for i in range(14)]
    monitors = [
        Monitor(replace(scenario(), name=n, monitoring=Monitoring(interval=10)), "dr1", tmp_path, tmp_path,
                probes=probes)
        for n in names
    ]  # fmt: skip
    asked: list[list[str]] = []
    answer = probe_output({n: {"ok": True, "result": {"checks": []}} for n in names}, [])

    def run(scenarios: list[str]) -> Answer:
        asked.append(scenarios)
        return answer

    for m in monitors:
        assert m.probe is monitors[0].probe
        assert m.probe.ask(m.s.name, run, max_age=5) == answer
    assert asked == [sorted(names)]
    assert monitors[3].probe.ask("s3", run, max_age=0) == answer and len(asked) == 2  # too old for this one
    answer = Answer(UNREACHABLE, "", "ssh: connect to host prod1: No route to host")
    assert monitors[4].probe.ask("s4", run, max_age=0) == answer
    answer = probe_output({}, [])
    monitors[5].probe.ask("s5", run, max_age=60)  # the unreachable answer is not kept
    assert len(asked) == 4
    other = Monitor(replace(scenario(), name="x", master="prod2"), "dr1", tmp_path, tmp_path, probes=probes)
    assert other.probe is not monitors[0].probe  # another active host: its own probe
    for m in monitors:
        m.stop(wait=False)
    assert monitors[0].probe.watched == set()


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

"""The history and the report (agent.history, state.history, site.report) and the audit of changes
(twinsite.audit), over state written by the real writers: the recorder's minute samples from real status views,
the sender's status, switchover reports, test evidence, the event log; the CLI run as a user runs it."""

from __future__ import annotations

import json
import math
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from harness.cli import VENV_BIN, twinsite_cmd
from tests.unit.test_status import NOW, Site
from twinsite import audit
from twinsite.agent.history import Recorder, summary
from twinsite.site import html, report
from twinsite.state import events, history, reports, runs
from twinsite.state.layout import HostState, ScenarioState

MINUTE = 60.0


def lines(directory: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for f in sorted(directory.glob("*.jsonl")) for line in f.read_text().splitlines()]


def test_a_minute_holds_the_worst_lag_and_backlog_of_its_looks_and_the_standbys_window(tmp_path: Path) -> None:
    site = Site(tmp_path)
    rec = Recorder(site.config, site.state, "prod1", every=15)
    t0 = math.floor(NOW / MINUTE) * MINUTE
    for dt, lag, backlog in ((1, 0.5, 100), (16, 7.25, 50), (31, 2.0, 900), (46, 0.1, 0)):
        site.sender(state="replicating", lag_seconds=lag, backlog_bytes=backlog, updated_at=t0 + dt)
        rec.tick(now=t0 + dt)
    rec.tick(now=t0 + 50)  # (within `every` of the last look: not looked at)
    assert lines(site.place.history) == []  # (the minute is not over)
    site.sender(state="stopped", lag_seconds=None, backlog_bytes=None, updated_at=t0 + 61)
    rec.tick(now=t0 + 61)
    [sample] = lines(site.place.history)
    assert (sample["ts"], sample["role"], sample["active"], sample["epoch"], sample["looks"]) == (t0, "active", "prod1",
                                                                                                  2, 4)  # fmt: skip
    assert sample["rows"] == [
        {"root": str(site.root), "replica": "dr1", "state": "replicating", "lag": 7.25, "backlog": 900}
    ]
    rec.flush()  # (the agent's stop writes the minute begun)
    assert [s["rows"][0]["state"] for s in lines(site.place.history)] == ["replicating", "stopped"]
    # dr1, the standby: its rewind window and bookmarks, no lag (only the active host knows it)
    site.standby()
    rec = Recorder(site.config, site.state, "dr1")
    rec.tick(now=NOW)
    rec.flush()
    [row] = next(s for s in lines(site.place.history) if s["role"] == "standby")["rows"]
    assert (row["applied_seq"], row["bookmarks"], row["window"]) == (30, 1, pytest.approx(3009, abs=0.01))
    assert "lag" not in row


def test_a_simulated_month_keeps_the_history_bounded_and_the_report_reads_it(tmp_path: Path) -> None:
    """A look a minute for 40 days with seven days kept: never more than eight day files, about 200 bytes a
    minute; a report over the last day counts every minute of it and the lag over the target exactly."""
    site = Site(tmp_path)
    (site.config / "app.yml").write_text((site.config / "app.yml").read_text() + "rpo_target: 30s\n")
    rec = Recorder(site.config, site.state, "prod1", every=MINUTE, keep_days=7)
    start = math.floor((NOW - 40 * 86400) / 86400) * 86400
    most = 0
    row = {"scenario": "app", "role": "active", "active": "prod1", "epoch": 2, "root": "/srv/app", "replica": "dr1",
           "state": "replicating", "lag_seconds": 0.0, "backlog_bytes": 10}  # fmt: skip
    view = {"scenarios": [row]}
    minutes = int((NOW - start) // MINUTE)
    for m in range(minutes):
        row["lag_seconds"] = 45.0 if m % 100 == 0 else 0.5  # (one minute in a hundred is late)
        rec.observe(view, start + m * MINUTE)
        if m % 1440 == 0:
            most = max(most, len(list(site.place.history.glob("*.jsonl"))))
    rec.flush()
    files = sorted(site.place.history.iterdir())
    assert most <= 8 and len(files) == 8, [f.name for f in files]
    size = history.disk_bytes(site.place.history)
    assert size <= 8 * 1440 * 200, size
    day = summary(site.config, site.state, since=NOW - 86400, now=NOW, buckets=24)
    [s] = day["scenarios"]
    minutes_in_day = [m for m in range(minutes) if start + m * MINUTE >= NOW - 86400]
    assert s["lag"]["observed_seconds"] == len(minutes_in_day) * MINUTE
    assert s["lag"]["over_target_seconds"] == sum(1 for m in minutes_in_day if m % 100 == 0) * MINUTE
    assert s["lag"]["max_seconds"] == 45.0 and s["rpo_target_seconds"] == 30.0
    assert len(s["series"]) <= 24 and max(b["lag"] for b in s["series"]) == 45.0
    old = summary(site.config, site.state, since=start, now=NOW)["scenarios"][0]
    assert old["lag"]["observed_seconds"] <= 8 * 1440 * MINUTE  # (what was removed is not made up)


def write_report(place: Any, run_id: str, started: float, *, outage: float, rpo: float) -> dict[str, Any]:
    r = {"id": run_id, "kind": "switchover", "scenario": "app", "mode": "planned", "from": "prod1", "to": "dr1",
         "epoch": 3, "result": "done", "error": None, "started_ts": started, "ended_ts": started + 20,
         "rto": {"outage_seconds": outage, "switchover_seconds": 20.0}, "rpo": {"seconds": rpo}}  # fmt: skip
    reports.write(place.reports, r, "text")
    return r


def test_the_report_puts_the_hosts_records_together_with_who_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """prod1 ran a switchover (asked through Ansible by alice@ctl1, over SSH); dr1 ran a scheduled test; dr2 is
    silent; the report has each once, with its RTO/RPO and who asked, and the longest time without a pass."""
    (tmp_path / "prod1").mkdir()
    (tmp_path / "dr1").mkdir()
    prod1, dr1 = Site(tmp_path / "prod1"), Site(tmp_path / "dr1")
    now = time.time()  # (the test's evidence is written at the real time, not at the module's import)
    write_report(prod1.place, "run-7", now - 3000, outage=12.5, rpo=0.0)
    monkeypatch.setenv("TWINSITE_ASKED_BY", "alice@ctl1")
    monkeypatch.setenv("SSH_CONNECTION", "10.77.0.1 51234 10.77.0.11 22")
    monkeypatch.delenv("SUDO_USER", raising=False)
    audit.record(prod1.state, scenario="app", action="switchover", outcome="done", ref="run-7", now=now - 2980)
    dr1.test_passed()  # (scheduled, ended 15 minutes ago)
    since = now - 7200
    answers = {
        h: {"view": summary(s.config, s.state, since=since, now=now, host=h), "error": None, "seconds": 0.1}
        for h, s in (("prod1", prod1), ("dr1", dr1))
    }
    answers["dr2"] = {"view": None, "error": "ssh: connect to host dr2: No route to host", "seconds": 3.0}
    r = report.merge(answers, [{"name": "app"}], since=since, now=now)
    [s] = r["scenarios"]
    [o] = s["switchovers"]
    assert (o["id"], o["host"], o["rto_seconds"], o["rpo_seconds"]) == ("run-7", "prod1", 12.5, 0.0)
    assert o["asked_by"] == "alice@ctl1 (root from 10.77.0.1)"
    [t] = s["tests"]["list"]
    assert (t["id"], t["host"], t["result"], t["asked_by"]) == ("t1", "dr1", "passed", "the agent's schedule")
    assert (s["tests"]["run"], s["tests"]["passed"]) == (1, 1)
    assert s["tests"]["longest_gap_seconds"] == pytest.approx(dr1.test_ended - since, abs=0.01)
    md = report.markdown(r)
    assert "dr2 did not answer" in md and "| run-7 | switchover (planned) | prod1 → dr1 | done | 12 s | 0.00 s |" in md
    page = html.report_page(r)
    assert (
        "<svg" in page
        and "run-7" in page
        and "alice@ctl1" in page
        and "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    )


def test_every_change_through_the_cli_records_who_asked_and_a_no_op_records_nothing(tmp_path: Path) -> None:
    config, state = tmp_path / "config", tmp_path / "state"
    state.mkdir()  # (as the agent role leaves it; a command pointed at a missing directory records nothing)
    definition = json.dumps({"name": "app", "master": "prod1", "replicas": ["dr1"], "roots": [{"path": "/srv/app"}]})
    env = {"TWINSITE_ASKED_BY": "alice@ctl1", "SSH_CONNECTION": "10.77.0.1 51234 10.77.0.11 22", "SUDO_USER": ""}

    def declare(*extra: str, stdin: str = definition) -> None:
        cmd = ["scenario", "app", "--definition-stdin", "--config-dir", str(config), "--state-dir", str(state), *extra]
        subprocess.run([str(VENV_BIN / "twinsite"), *cmd], input=stdin, text=True, capture_output=True,
                       env={"PATH": "/usr/bin:/bin", **env}, check=False, timeout=60)  # fmt: skip

    declare("--check")  # (changes nothing: not recorded)
    declare()
    declare()  # (unchanged: not recorded)
    declare(stdin='{"name": "app", "master": 7}')  # (refused: recorded as a failed change)
    # a switchover refused at its preflight (this machine is no host of app): recorded as failed, and its run
    # is finished (nothing changed), so that nothing waits for it to be run again
    refused = twinsite_cmd("switchover", "app", "--config-dir", str(config), "--state-dir", str(state), "--json")
    assert refused.returncode != 0 and "is not a host of scenario app" in refused.stdout, refused.stdout
    assert not runs.unfinished(ScenarioState(state, "app").switchover_run)
    changes = [e for e in events.read(HostState(state).events) if e["event"] == "change"]
    assert [(c["action"], c["outcome"][:6]) for c in changes] == [("scenario present", "done"),
                                                                 ("scenario present", "failed"),
                                                                 ("switchover", "failed")]  # fmt: skip
    who = changes[0]["who"]
    assert (who["asked_by"], who["from"], who["user"], who["automatic"]) == ("alice@ctl1", "10.77.0.1", "root", False)
    # the host's own history says the same (with time filtering by the event's time)
    proc = twinsite_cmd("history", "--since", "1h", "--config-dir", str(config), "--state-dir", str(state), "--json")
    assert proc.returncode == 0, proc.stderr
    [s] = json.loads(proc.stdout)["result"]["scenarios"]
    assert [c["action"] for c in s["changes"]] == ["scenario present", "scenario present", "switchover"]
    assert s["changes"][0]["who"]["asked_by"] == "alice@ctl1"


def test_a_minute_with_a_switchover_has_a_sample_for_each_role(tmp_path: Path) -> None:
    site = Site(tmp_path)
    rec = Recorder(site.config, site.state, "prod1")
    t0 = math.floor(NOW / MINUTE) * MINUTE
    active = {"scenario": "app", "role": "active", "active": "prod1", "epoch": 2, "root": "/srv/app", "replica": "dr1",
              "state": "replicating", "lag_seconds": 3.0, "backlog_bytes": 10}  # fmt: skip
    standby = {"scenario": "app", "role": "standby", "active": "dr1", "epoch": 3, "root": "/srv/app",
               "state": "standby", "applied_seq": 40}  # fmt: skip
    rec.observe({"scenarios": [active]}, t0 + 5)
    rec.observe({"scenarios": [standby]}, t0 + 40)
    rec.flush()
    got = [(s["ts"], s["role"], s["epoch"], s["looks"]) for s in lines(site.place.history)]
    assert got == [(t0, "active", 2, 1), (t0, "standby", 3, 1)]
    day = summary(site.config, site.state, since=t0 - 1, now=t0 + 60)["scenarios"][0]
    assert (day["lag"]["observed_seconds"], day["lag"]["max_seconds"]) == (MINUTE, 3.0)  # (the active minute only)

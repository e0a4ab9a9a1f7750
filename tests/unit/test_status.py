"""Operator views: `twinsite status` (table and JSON against its published schema), the agent's Prometheus
metrics (HTTP on loopback and the node-exporter textfile) and the sync progress bars, over state directories
made by the real writers: the sender's status, the applied position, the rewind log and bookmarks, the
assured-recovery evidence, the event log and the monitor's conditions, the role file."""

from __future__ import annotations

import io
import json
import os
import socket
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from harness.cli import twinsite_cmd
from harness.wait import eventually
from tests.views import SCHEMA, parse
from twinsite.agent.metrics import TEXTFILE, Exporter, loopback
from twinsite.alerts import Alert
from twinsite.alerts.dispatch import Alerter
from twinsite.cdp.log import RewindLog, make_group
from twinsite.cli.status_cmd import COLUMNS, watch
from twinsite.config.store import load_dir
from twinsite.errors import ConfigError
from twinsite.journal.record import Op, Record
from twinsite.monitor import Monitor, Verdict
from twinsite.proc import wait_until
from twinsite.recovery import evidence
from twinsite.recovery.steps import STEPS
from twinsite.state import bookmarks, point, sender_status
from twinsite.state import evidence as kept
from twinsite.state.applied import AppliedFile
from twinsite.state.layout import ScenarioState
from twinsite.state.role import Role, store
from twinsite.state.runs import DONE, RunState, StepState
from twinsite.state.sender_status import SenderStatus
from twinsite.sync.progress import SyncProgress

NOW = time.time()
SCENARIO = """\
name: app
master: prod1
replicas: [dr1]
roots:
  - path: {root}
replication: {{consistency: {consistency}}}
cdp: {{enabled: true}}
"""


class Site:
    """One scenario's state on prod1 (active, at epoch 2 after two switchovers) or dr1 (its standby)."""

    def __init__(self, tmp: Path, consistency: str = "file") -> None:
        self.config, self.state, self.root = tmp / "config", tmp / "state", tmp / "root"
        self.config.mkdir()
        (self.config / "app.yml").write_text(SCENARIO.format(root=self.root, consistency=consistency))
        self.s = load_dir(self.config)[0]
        self.place = ScenarioState(self.state, "app")
        store(self.place, Role("app", "prod1", 2, NOW - 7200, "dr1", "run-2"))
        self.test_ended = 0.0

    def sender(self, **status: Any) -> SenderStatus:
        st = SenderStatus(scenario="app", root=str(self.root), replica="dr1", **status)
        sender_status.write(self.place.sender(0, "dr1").status, st)
        return st

    def standby(self) -> None:
        """dr1: applied seq 30, a rewind log of three batches over an hour, a bookmark, a passed test, an
        alert sent and a monitoring condition still alerting."""
        recv = self.place.receiver(0)
        log = RewindLog(recv.rewind_log)
        for first, ts in ((1, NOW - 3600), (11, NOW - 1800), (21, NOW - 600)):
            recs = [Record(seq, ts + seq - first, Op.WRITE, b"f", data=b"x") for seq in range(first, first + 10)]
            log.append(make_group(recs, [Record(first, ts, Op.TRUNCATE, b"f")]))
        log.close()
        applied = AppliedFile(recv.applied)
        applied.write(30, NOW - 591)
        applied.close()
        bookmarks.add(recv.bookmarks, "before-upgrade", 20, NOW - 1791)
        self.test_passed()
        self.alerts()

    def test_passed(self) -> None:
        """A scheduled test that ended 15 minutes ago."""
        t0 = time.time() - 900 - len(STEPS)
        self.test_ended = t0 + len(STEPS)
        steps = [StepState(name, DONE, 1, t0 + i, t0 + i + 1, {}) for i, (name, _, _) in enumerate(STEPS)]
        steps[1].result = {"tested": [{"root": str(self.root), "seq": 30, "age_seconds": 4.5}], "digests": []}
        steps[5].result = {"ok": True, "checks": []}
        run = RunState("t1", "recovery-test", {"scheduled": True}, t0, steps, finished=t0 + len(steps))
        record = evidence.summarize(run, scenario="app", host="dr1", result="passed", reason=None)
        kept.write(self.place.recovery.evidence, record, keep=10)

    def alerts(self) -> None:
        Alerter(self.state, []).send(
            Alert(kind="replication-lag", severity="warning", scenario="app", host="prod1", what="late", action="-")
        )
        mon = Monitor(self.s, "dr1", self.state, self.config, active="prod1")
        for _ in range(self.s.monitoring.misses):
            for alert in mon.judge(Verdict({"reachable": (False, "no answer")})):
                mon.alerter.send(alert)  # (as a monitoring round does)


def _syncing(site: Site, **changes: Any) -> SenderStatus:
    p = SyncProgress(files_total=10, bytes_total=10 << 20, started_at=NOW - 10)
    p.planned(5, 4 << 20, files=4)
    p.acked(5)
    return site.sender(state="syncing", acked_seq=5, planned_seq=9, sync=p.as_dict(), **changes)


def status_json(site: Site, host: str) -> dict[str, Any]:
    proc = twinsite_cmd(
        "status",
        "--json",
        "--config-dir",
        str(site.config),
        "--state-dir",
        str(site.state),
        env={"TWINSITE_HOST": host},
    )
    assert proc.returncode == 0, proc.stderr
    body: dict[str, Any] = json.loads(proc.stdout)
    jsonschema.validate(body, SCHEMA, cls=jsonschema.Draft202012Validator)
    return body


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path)


def test_the_active_hosts_json_answer_is_valid_and_says_what_the_sender_wrote(site: Site) -> None:
    site.sender(state="replicating", acked_seq=1005, planned_seq=1007, lag_seconds=0.25, backlog_bytes=74463)
    body = status_json(site, "prod1")
    assert body["ok"] and body["result"]["host"] == "prod1"
    (row,) = body["result"]["scenarios"]
    assert (row["role"], row["replica"], row["root"], row["state"]) == ("active", "dr1", str(site.root), "replicating")
    assert (row["acked_seq"], row["lag_seconds"], row["backlog_bytes"]) == (1005, 0.25, 74463)
    assert (row["switchovers"], row["epoch"], row["rewind"], row["last_test"]) == (2, 2, None, None)


def test_the_standbys_json_answer_has_the_rewind_window_the_last_test_and_the_alerts(site: Site) -> None:
    site.standby()
    (row,) = status_json(site, "dr1")["result"]["scenarios"]
    assert (row["role"], row["state"], row["applied_seq"]) == ("standby", "standby", 30)
    rw = row["rewind"]
    assert (rw["oldest_seq"], rw["newest_seq"], rw["points"], rw["bookmarks"], rw["bookmarks_reachable"]) == (
        0,
        30,
        4,
        1,
        1,
    )
    assert rw["window_seconds"] == pytest.approx(3009, abs=0.01)  # the first change to the last one applied
    test = row["last_test"]
    assert (test["id"], test["result"], test["scheduled"], test["data_age_seconds"]) == ("t1", "passed", True, 4.5)
    assert test["age_seconds"] == pytest.approx(time.time() - site.test_ended, abs=5)
    al = row["alerts"]
    assert (al["open"], al["open_kinds"], al["recent"]) == (1, ["host-unreachable"], 2)
    assert al["latest"]["kind"] == "host-unreachable" and al["latest"]["severity"] == "critical"
    assert row["problems"] == []


def test_the_table_fits_120_columns_with_units_and_the_sync_under_its_row(site: Site) -> None:
    _syncing(site, last_error="link lost", lag_seconds=4000.0, backlog_bytes=3 << 20)
    site.test_passed()
    proc = twinsite_cmd(
        "status", "--config-dir", str(site.config), "--state-dir", str(site.state), env={"TWINSITE_HOST": "prod1"}
    )
    assert proc.returncode == 0, proc.stderr
    head, row, mode, sync, error = proc.stdout.splitlines()
    assert sum(w for _, w, _ in COLUMNS) + len(COLUMNS) - 1 <= 120
    assert max(len(line) for line in (head, row)) <= 120
    assert head.split() == ["SCENARIO", "ROLE", "STATE", "REPLICA", "SEQ", "LAG", "BACKLOG", "REWIND", "LAST", "TEST",
                            "ALERTS"]  # fmt: skip
    assert row.split()[:10] == ["app", "active", "syncing", "dr1", "5", "1.1", "h", "3.0", "MiB", "-"]
    assert "passed 15 min ago" in row
    assert mode.strip() == "consistency: file (each file copied as it is read; a database's copy can be torn)"
    assert sync.strip().startswith("sync: 40.0% - 4.0 MiB of 10.0 MiB, 4 of 10 files")
    assert error.strip() == "last error: link lost"


def test_a_start_from_the_kept_picture_is_said_under_its_row_then_in_json(site: Site) -> None:
    """While a restarted agent compares what changed since its kept picture, the line under the row says so
    (not the last sync's finished progress); once done, ``start`` in the JSON has the paths and seconds."""
    _syncing(site, start={"from": "kept picture"})
    proc = twinsite_cmd(
        "status", "--config-dir", str(site.config), "--state-dir", str(site.state), env={"TWINSITE_HOST": "prod1"}
    )
    assert proc.returncode == 0, proc.stderr
    lines = [line.strip() for line in proc.stdout.splitlines()]
    assert "start: comparing what changed at the source since the kept picture of the replica" in lines
    assert not any(line.startswith("sync:") for line in lines)
    site.sender(state="replicating", start={"from": "kept picture", "compared": 12, "seconds": 0.4})
    (row,) = status_json(site, "prod1")["result"]["scenarios"]
    assert row["start"] == {"from": "kept picture", "compared": 12, "seconds": 0.4}


def test_unreadable_state_is_named_and_the_rest_still_given(site: Site) -> None:
    site.standby()
    seg = site.place.receiver(0).rewind_log / f"{1:020d}.rwl"
    seg.write_bytes(b"TWG1" + b"\xff" * 60 + seg.read_bytes())  # a damaged header at the start
    (row,) = status_json(site, "dr1")["result"]["scenarios"]
    assert row["rewind"] is None and "corrupt rewind log" in row["problems"][0]
    assert row["last_test"]["result"] == "passed" and row["applied_seq"] == 30
    # a damaged applied position and event log too: named, and the scenario still shown
    site.place.receiver(0).applied.write_bytes(b"\x01" * 32)  # (damaged by hand)
    site.place.host.events.write_bytes(b"\xff\xfe not json\n")
    body = status_json(site, "dr1")
    (row,) = body["result"]["scenarios"]
    jsonschema.validate(body, SCHEMA, cls=jsonschema.Draft202012Validator)
    assert any("the applied position of root 0" in p for p in row["problems"]), row["problems"]
    assert row["last_test"]["result"] == "passed"


def test_status_never_cuts_the_group_a_receiver_is_appending(site: Site) -> None:
    site.standby()
    seg = site.place.receiver(0).rewind_log / f"{1:020d}.rwl"
    with open(seg, "ab") as f:
        f.write(b"TWG1" + b"\0" * 20)  # the first bytes of the next group
    size = seg.stat().st_size
    (row,) = status_json(site, "dr1")["result"]["scenarios"]
    assert row["rewind"]["newest_seq"] == 30 and seg.stat().st_size == size


def test_a_sender_that_stopped_writing_is_stale(site: Site) -> None:
    site.sender(state="replicating", updated_at=NOW - 120)
    assert status_json(site, "prod1")["result"]["scenarios"][0]["state"] == "stale"


# -- metrics -------------------------------------------------------------------------------------------------
def row_labels(site: Site, replica: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"scenario": "app", "root": str(site.root), "replica": replica}.items()))


def test_the_metrics_endpoint_on_loopback_serves_the_states_figures(site: Site) -> None:
    _syncing(site, lag_seconds=1.5, backlog_bytes=4096)
    exp = Exporter(site.config, site.state, "prod1", listen="127.0.0.1:0")
    exp.start()
    try:
        assert exp.address is not None
        with urllib.request.urlopen(f"http://127.0.0.1:{exp.address[1]}/metrics", timeout=10) as answer:
            assert answer.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
            got = parse(answer.read().decode())
    finally:
        exp.stop()
    labels, app = row_labels(site, "dr1"), (("scenario", "app"),)
    assert got[("twinsite_lag_seconds", labels)] == 1.5
    assert got[("twinsite_backlog_bytes", labels)] == 4096
    assert got[("twinsite_acked_seq", labels)] == 5
    assert got[("twinsite_sync_bytes_done", labels)] == 4 << 20
    assert got[("twinsite_switchovers_total", app)] == 2
    assert got[("twinsite_replication_info", tuple(sorted((*labels, ("role", "active"), ("state", "syncing")))))] == 1
    assert got[("twinsite_agent_up", ())] == 1
    assert ("twinsite_agent_info", (("host", "prod1"), ("version", "0.1.0"))) in got


def test_the_endpoint_listens_on_ipv6_loopback_and_a_port_in_use_does_not_stop_the_agent(site: Site) -> None:
    _syncing(site, lag_seconds=1.5, backlog_bytes=4096)
    six = Exporter(site.config, site.state, "prod1", listen="[::1]:0")
    six.start()
    try:
        assert six.address is not None
        with urllib.request.urlopen(f"http://[::1]:{six.address[1]}/metrics", timeout=10) as answer:
            assert parse(answer.read().decode())[("twinsite_agent_up", ())] == 1
        busy = Exporter(site.config, site.state, "prod1", listen=f"[::1]:{six.address[1]}")
        busy.start()  # (said on stderr; replication goes on without the endpoint)
        assert busy.address is None
        busy.stop()
    finally:
        six.stop()


def test_the_textfile_is_replaced_atomically_and_says_down_after_a_stop(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site.standby()
    out = tmp_path / "textfile"
    out.mkdir()
    renames: list[tuple[str, str]] = []
    real = os.replace

    def replace(src: Any, dst: Any) -> None:
        renames.append((str(src), str(dst)))
        assert Path(src).parent == out and Path(src).read_text().endswith("\n")  # complete before the rename
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    exp = Exporter(site.config, site.state, "dr1", textfile_dir=out, every=15)
    exp.start()
    exp.tick(now=100.0)
    exp.tick(now=110.0)  # (not due yet)
    assert len(renames) == 1 and renames[0][1] == str(out / TEXTFILE)
    assert sorted(p.name for p in out.iterdir()) == [TEXTFILE]  # no temporary file left
    got = parse((out / TEXTFILE).read_text())
    labels, app = row_labels(site, "dr1"), (("scenario", "app"),)
    assert got[("twinsite_applied_seq", labels)] == 30
    assert got[("twinsite_rewind_window_seconds", labels)] == pytest.approx(3009, abs=0.01)
    assert got[("twinsite_bookmarks", labels)] == 1
    assert got[("twinsite_recovery_test_passed", app)] == 1
    assert got[("twinsite_recovery_test_timestamp_seconds", app)] == pytest.approx(site.test_ended, abs=0.01)
    assert got[("twinsite_alerts_open", app)] == 1
    exp.stop()
    assert parse((out / TEXTFILE).read_text())[("twinsite_agent_up", ())] == 0


@pytest.mark.parametrize(
    ("listen", "says"),
    [
        ("0.0.0.0:9810", "is not a loopback address"),
        ("10.77.0.12:9810", "is not a loopback address"),
        ("[::]:9810", "is not a loopback address"),
        ("prod1:9810", "with an IP address"),
        ("127.0.0.1", "with an IP address"),
    ],
)
def test_a_listen_address_that_is_not_loopback_is_refused(listen: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        loopback(listen)


def test_loopback_addresses_are_taken() -> None:
    assert [loopback(a) for a in ("127.0.0.1:9810", "localhost:1", "[::1]:0")] == [
        ("127.0.0.1", 9810),
        ("127.0.0.1", 1),
        ("::1", 0),
    ]


def test_the_agent_refuses_to_start_with_metrics_on_a_public_address(tmp_path: Path) -> None:
    proc = twinsite_cmd(
        "agent", "--config-dir", str(tmp_path), "--state-dir", str(tmp_path), "--metrics-listen", "0.0.0.0:9810"
    )
    assert proc.returncode == 3
    assert "0.0.0.0 is not a loopback address" in proc.stderr and "twinsite agent" not in proc.stdout


# -- progress bars --------------------------------------------------------------------------------------------
def test_watch_prints_progress_until_the_sync_ends(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWINSITE_HOST", "prod1")
    _syncing(site)
    out = io.StringIO()  # not a terminal: plain lines
    answer: list[Any] = []
    t = threading.Thread(target=lambda: answer.append(watch(site.config, site.state, interval=0.05, out=out)))
    t.start()
    wait_until(lambda: "\n" in out.getvalue(), timeout=10, what="watch printing the sync's progress")
    assert t.is_alive()
    p = SyncProgress(files_total=10, bytes_total=10 << 20, files_done=10, bytes_done=10 << 20, started_at=NOW - 10)
    p.finished_at = NOW
    site.sender(state="replicating", acked_seq=9, planned_seq=9, sync=p.as_dict())
    t.join(timeout=10)
    assert not t.is_alive()
    lines = out.getvalue().splitlines()
    assert lines and all("app " + str(site.root) + " -> dr1: [#########" in line for line in lines)
    assert "40.0% - 4.0 MiB of 10.0 MiB, 4 of 10 files" in lines[0] and "\x1b" not in out.getvalue()
    result, text = answer[0]
    assert result["syncs"][0]["state"] == "replicating"
    assert text.endswith("done in 10.0 s, 0 B sent")


def test_watch_with_nothing_syncing_ends_at_once(site: Site) -> None:
    site.sender(state="replicating")
    assert watch(site.config, site.state, out=io.StringIO()) == ({"syncs": []}, "no sync is running here")


def test_the_supervised_agent_is_restarted_when_its_metrics_options_change(site: Site, tmp_path: Path) -> None:
    """`twinsite service start` (what the agent role runs) keeps a supervisor that runs with the same options,
    and replaces one that runs with others: the real supervisor and agent, writing their real textfile."""
    from twinsite.agent import service

    site.standby()
    out = tmp_path / "metrics"  # (node-exporter's directory: made by the agent role)
    try:
        assert service.start(site.config, site.state) is True
        first = service.status(site.state)["supervisor_pid"]
        assert service.start(site.config, site.state) is False  # the same options: left running
        assert service.status(site.state)["supervisor_pid"] == first
        out.mkdir()
        assert service.start(site.config, site.state, ["--metrics-textfile", str(out)]) is True
        assert service.status(site.state)["supervisor_pid"] not in (None, first)
        eventually((out / TEXTFILE).exists, timeout=30, interval=0.1, what="the textfile")
        got = parse((out / TEXTFILE).read_text())
        assert got[("twinsite_agent_up", ())] == 1
        assert got[("twinsite_applied_seq", row_labels(site, socket.gethostname()))] == 30
        assert service.start(site.config, site.state, ["--metrics-textfile", str(out)]) is False
    finally:
        service.stop(site.state)
    assert service.status(site.state)["running"] is False


def test_with_points_each_side_shows_the_last_complete_point_and_its_age(tmp_path: Path) -> None:
    site = Site(tmp_path, consistency="points")
    site.sender(state="replicating", acked_seq=41, point_id=1700000000123, point_ts=NOW - 2.5, updated_at=time.time())
    (row,) = status_json(site, "prod1")["result"]["scenarios"]
    assert (row["consistency"], row["point_id"]) == ("points", 1700000000123)
    assert row["point_age_seconds"] == pytest.approx(time.time() - NOW + 2.5, abs=5)
    # dr1: two complete points (groups ending at a POINT) and an open one; only the complete ones are
    # rewind points, and the last is what a failover gets
    recv = site.place.receiver(0)
    log = RewindLog(recv.rewind_log)
    for first, end in ((1, 10), (11, 20), (21, 25)):
        recs = [Record(seq, NOW - 60 + seq, Op.WRITE, b"f", data=b"x") for seq in range(first, end)]
        if end != 25:
            recs.append(Record(end, NOW - 60 + end, Op.POINT, b"", offset=end))
        log.append(make_group(recs, [Record(first, NOW, Op.TRUNCATE, b"f")]))
    log.close()
    applied = AppliedFile(recv.applied)
    applied.write(24, NOW - 36)
    applied.close()
    point.write(recv.point, point.Point(id=20, seq=20, ts=NOW - 40))
    (row,) = status_json(site, "dr1")["result"]["scenarios"]
    assert (row["consistency"], row["point"]["id"], row["point"]["seq"]) == ("points", 20, 20)
    assert row["point"]["age_seconds"] == pytest.approx(time.time() - NOW + 40, abs=5)
    rw = row["rewind"]
    assert (rw["oldest_seq"], rw["newest_seq"], rw["points"]) == (10, 20, 2)
    proc = twinsite_cmd(
        "status", "--config-dir", str(site.config), "--state-dir", str(site.state), env={"TWINSITE_HOST": "dr1"}
    )
    assert "consistency: points; last complete here: " in proc.stdout and "(point 20, seq 20)" in proc.stdout

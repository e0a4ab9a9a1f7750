"""Assured-recovery tests of the lab's real PostgreSQL (scenario `db`) on dr1 while a load generator commits
on prod1: the test database starts on the replica and takes writes that vanish afterwards; the replica ends
byte for byte equal to the source; replication is not slowed; a failing check fails loudly and harms
nothing; a test killed at any step is cleaned up by dr1's agent; the agent's schedule runs tests and survives
its own kill -9 in the middle of one."""

from __future__ import annotations

import json
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
import yaml
from pyVim.connect import Disconnect
from pyVmomi import vim

from harness.cli import ansible
from harness.db import (
    Latency,
    Load,
    commits_on,
    psql,
    restore_db,
    role,
    scenario_file,
    set_mode,
    wait_replicating,
)
from harness.hosts import TWINSITE, agent_log, events, log_size, on_host, twinsite_on, wait_logged
from harness.points import held_point, rsync_differences
from harness.scenarios import ensure_configured
from harness.vcenter import by_name, connect, wait_task
from harness.wait import eventually
from twinsite import lab as labmod
from twinsite.lab.topology import Lab
from twinsite.proc import read_pid
from twinsite.recovery.steps import STEPS
from twinsite.redirect.dns import resolve_addresses
from twinsite.state import runs, stopped
from twinsite.state.layout import ScenarioState
from twinsite.vsphere.snapshot import snapshots

pytestmark = pytest.mark.lab

STEP_NAMES = [name for name, _does, _fn in STEPS]


@pytest.fixture(scope="module", autouse=True)
def replica_vm(lab: Lab) -> Iterator[None]:
    """The VM `dr1` (the replica VM) in the vCenter simulator, for the post-test snapshot. configure.yml
    declares it; made here if it is missing after configure.yml ran, and then removed again afterwards."""
    ensure_configured(lab)
    made = ensure_replica_vm(lab)
    yield
    if made:
        destroy_vm(lab, "dr1")


@pytest.fixture
def scenario_on_dr1(db: Lab) -> Iterator[dict[str, Any]]:
    """dr1's scenario file as a mapping; what a test changes in it is written back as it was."""
    path = scenario_file(db, "dr1")
    original = path.read_text()
    yield yaml.safe_load(original)
    path.write_text(original)


def write_scenario(lab: Lab, doc: dict[str, Any]) -> None:
    scenario_file(lab, "dr1").write_text(yaml.safe_dump(doc, sort_keys=False))


def ensure_replica_vm(lab: Lab) -> bool:
    si = connect(lab)
    try:
        content = si.RetrieveContent()
        if "dr1" in by_name(content, vim.VirtualMachine):
            return False
        cluster = by_name(content, vim.ClusterComputeResource)["DR-Cluster"]
        spec = vim.vm.CloneSpec(location=vim.vm.RelocateSpec(pool=cluster.resourcePool), powerOn=True)
        template = by_name(content, vim.VirtualMachine)["linux-template"]
        wait_task(template.CloneVM_Task(folder=cluster.parent.parent.vmFolder, name="dr1", spec=spec))
        return True
    finally:
        Disconnect(si)


def destroy_vm(lab: Lab, name: str) -> None:
    si = connect(lab)
    try:
        vm = by_name(si.RetrieveContent(), vim.VirtualMachine)[name]
        if vm.runtime.powerState == "poweredOn":
            wait_task(vm.PowerOffVM_Task())
        wait_task(vm.Destroy_Task())
    finally:
        Disconnect(si)


def snapshot_names(lab: Lab, vm_name: str) -> list[str]:
    si = connect(lab)
    try:
        return [s["name"] for s, _o in snapshots(by_name(si.RetrieveContent(), vim.VirtualMachine)[vm_name])]
    finally:
        Disconnect(si)


def overlay_mounted_on_dr1(lab: Lab) -> bool:
    return "twinsite-test" in on_host(lab, "dr1", "cat", "/proc/self/mountinfo").stdout


def on_dr1(lab: Lab) -> ScenarioState:
    """dr1's state of the scenario db."""
    return ScenarioState(lab.host("dr1").private_dir("/var/lib/twinsite"), "db")


def pg_running_on_dr1(lab: Lab) -> bool:
    p = on_host(lab, "dr1", "runuser", "-u", "postgres", "--", "/usr/lib/postgresql/15/bin/pg_ctl", "-D",
                "/srv/db/data", "status")  # fmt: skip
    return p.returncode == 0


def source_equals_replica(lab: Lab) -> dict[str, Any]:
    """With PostgreSQL stopped on prod1 (nothing changes), everything replicated: `twinsite verify` compares
    every entry of the source with the replica, content hashes included."""
    assert on_host(lab, "prod1", TWINSITE, "app", "db", "stop").returncode == 0
    try:
        wait_replicating(lab, "prod1")
        body = twinsite_on(lab, "prod1", "verify", "db")
        assert body["ok"], body
        return dict(body["result"])
    finally:
        assert on_host(lab, "prod1", TWINSITE, "app", "db", "start").returncode == 0


def test_a_test_under_load_proves_the_replica_and_leaves_it_equal_to_the_source(db: Lab) -> None:
    latency = Latency(db)
    latency.start()
    load = Load(db)
    load.start()
    try:
        load.wait_for(200)
        t0 = time.time()
        time.sleep(12)  # a duration, not a wait: the baseline is 12 s of acknowledgements without a test
        t1 = time.time()
        body = twinsite_on(db, "dr1", "recover-test", "db")
        t2 = time.time()
        time.sleep(8)  # without a test again: the baseline is taken on both sides of it
        t3 = time.time()
    finally:
        load.stop()
        latency.stopping.set()
    assert body["ok"], body
    r = body["result"]
    assert r["result"] == "passed" and [s["state"] for s in r["steps"]] == ["done"] * len(STEP_NAMES), r
    checks = {c["name"]: c for c in r["checks"]}
    assert set(checks) == {"accepting connections", "query", "consistent", "script postgresql-write"}
    assert all(c["ok"] for c in checks.values()), checks
    assert "probe rows: 1" in checks["script postgresql-write"]["output"]  # the test database took a write
    assert "rows in" in checks["consistent"]["output"]  # every row of every table read
    tested = r["tested"][0]
    assert tested["root"] == "/srv/db" and tested["seq"] > 0 and 0 <= tested["age_seconds"] < 30
    assert r["rto_seconds"] and 0 < r["rto_seconds"] < 60
    assert [d["equal"] for d in r["digests"]] == [True]  # the replica below the overlay did not change
    assert r["spool"]["records"] > 0 and r["spool"]["applied"] and not r["spool"]["full"]  # commits kept coming
    actions = {a["type"]: a for a in r["actions"]}
    assert actions["archive"]["ok"] and actions["snapshot"]["ok"], r["actions"]
    archive = db.host("dr1").private_dir("/srv") / Path(actions["archive"]["archive"]).relative_to("/srv")
    manifest = json.loads(Path(str(archive).removesuffix(".tar.gz") + ".manifest.json").read_text())
    assert archive.stat().st_size == actions["archive"]["bytes"] and manifest["tested"] == r["tested"]
    assert any(f["path"] == "data/PG_VERSION" for f in manifest["files"])
    assert f"twinsite-test-{r['id']}" in snapshot_names(db, "dr1")
    # The evidence is kept and listed.
    history = twinsite_on(db, "dr1", "recover-test", "db", "--history")["result"]["tests"]
    assert history[-1]["id"] == r["id"] and history[-1]["result"] == "passed"
    # Afterwards: no overlay, the spool applied and gone, no test database running, the test's writes gone,
    # and the replica equals the source, every entry.
    assert not overlay_mounted_on_dr1(db) and not on_dr1(db).receiver(0).spool_records.exists()
    assert not pg_running_on_dr1(db)
    verified = source_equals_replica(db)
    assert verified["equal"] and verified["roots"][0]["entries"] > 1000, verified
    probe = psql(db, "prod1", "select to_regclass('twinsite_recovery_probe') is null")
    assert probe.stdout.strip() == "t", probe  # (and the replica equals prod1)
    # Production did not notice: the age of a change when dr1 acknowledged it stayed within twice what it
    # was without a test, in the same run (before and after it: medians of a few milliseconds drift).
    # (the test's window ends where its spool starts being applied: the receiver acknowledges nothing new while
    # it applies what it spooled, a point at a time, then catches up)
    applying = next(s["seconds"] for s in r["steps"] if s["step"] == "apply-spool")
    t_test = t2 - applying
    before, during = latency.between(t0, t1) + latency.between(t2 + 1, t3), latency.between(t1, t_test)
    print(f"acknowledgements: {len(before)} without a test, {len(during)} in the test's {t_test - t1:.1f} s; steps:")
    for s in r["steps"]:
        print(f"  {s['step']:<18} {s['seconds']:.3f} s")
    # (prod1's status shows at most 5 acknowledgements a second, STATUS_EVERY, and with consistency points one
    # per point, a second apart: the acknowledgements kept coming when the test's window saw at least half as
    # many a second as the rest of the run did)
    rate = len(before) / ((t1 - t0) + (t3 - t2 - 1))
    window = t_test - t1
    assert len(before) >= 10 and len(during) >= max(3, 0.5 * rate * window), (len(before), len(during), window)
    base, test = statistics.median(before), statistics.median(during)
    print(f"ack latency median without a test {base:.3f} s, during one {test:.3f} s")
    assert test <= 2 * base, (base, test)


def test_a_failing_check_fails_the_test_alerts_and_leaves_the_replica_intact(
    db: Lab, scenario_on_dr1: dict[str, Any]
) -> None:
    doc = scenario_on_dr1
    doc["assured_recovery"]["checks"] = [*doc["assured_recovery"]["checks"], {"type": "tcp", "port": 1, "timeout": 1}]
    doc["assured_recovery"]["start_timeout"] = 3
    write_scenario(db, doc)
    since = time.time()
    p = on_host(db, "dr1", TWINSITE, "recover-test", "db", "--json")
    assert p.returncode == 22, p.stdout + p.stderr
    err = json.loads(p.stdout.strip().splitlines()[-1])["error"]
    record = err["evidence"]
    assert record["result"] == "failed" and "tcp 127.0.0.1:1" in record["reason"], record
    assert [d["equal"] for d in record["digests"]] == [True]
    assert {c["name"]: c["ok"] for c in record["checks"]}["tcp 127.0.0.1:1"] is False
    assert record["actions"] == []  # nothing is archived or snapshotted after a failure
    alerts = [e for e in events(db, "dr1", since) if e["kind"] == "recovery-test-failed"]
    assert alerts and record["id"] in alerts[0]["what"], events(db, "dr1", since)
    assert not overlay_mounted_on_dr1(db) and not pg_running_on_dr1(db)
    assert not on_dr1(db).receiver(0).spool_marker.exists()
    assert source_equals_replica(db)["equal"]


def test_refusals_on_the_active_host_during_a_switchover_and_with_replication_stopped(db: Lab) -> None:
    on_prod1 = twinsite_on(db, "prod1", "recover-test", "db")
    assert not on_prod1["ok"] and "is the active host" in on_prod1["error"]["message"]
    plan = twinsite_on(db, "dr1", "recover-test", "db", "--dry-run")["result"]
    assert plan["ready"] and [s["step"] for s in plan["steps"]] == STEP_NAMES
    unfinished = on_dr1(db).switchover_run
    runs.store(unfinished, runs.RunState("x", "switchover", {}, 0.0, []))
    try:
        refused = twinsite_on(db, "dr1", "recover-test", "db")
    finally:
        unfinished.unlink()
    assert not refused["ok"] and "switchover of db is unfinished" in refused["error"]["message"], refused
    prod1_config = db.host("prod1").private_dir("/etc/twinsite") / "scenarios"
    stopped.mark(prod1_config, "db", True)  # replication stops on prod1: the replica is no longer kept consistent
    try:

        def refused_as_stopped() -> bool:
            nonlocal refused
            refused = twinsite_on(db, "dr1", "recover-test", "db")
            return not refused["ok"] and "is stopped" in refused["error"]["message"]

        eventually(refused_as_stopped, timeout=30, interval=1, what="a refusal: replication is stopped")
        assert not refused["ok"] and "not a consistent copy" in refused["error"]["message"], refused
    finally:
        stopped.mark(prod1_config, "db", False)
    wait_replicating(db, "prod1")
    assert not overlay_mounted_on_dr1(db) and not on_dr1(db).receiver(0).spool_marker.exists()


def wait_cleaned_up(lab: Lab, run_id: str, timeout: float = 90) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    def recorded() -> bool:
        tests = twinsite_on(lab, "dr1", "recover-test", "db", "--history")["result"]["tests"]
        found[:] = [t for t in tests if t["id"] == run_id]
        return bool(found)

    if not eventually(recorded, timeout=timeout, interval=0.5, what=f"the evidence of test {run_id}"):
        raise AssertionError(f"dr1's agent did not clean up test {run_id} within {timeout} s")
    return found[0]


def run_state(lab: Lab) -> dict[str, Any]:
    run = runs.load(on_dr1(lab).recovery.run)
    return asdict(run) if run is not None else {}


def test_a_test_killed_after_each_step_is_cleaned_up_by_the_agent(db: Lab) -> None:
    load = Load(db)
    load.start()
    try:
        load.wait_for(100)
        for step in STEP_NAMES:
            p = on_host(db, "dr1", TWINSITE, "recover-test", "db", env={"TWINSITE_CRASH_AFTER": step})
            assert p.returncode in (-9, 137), (step, p.returncode, p.stderr[-2000:])
            run = run_state(db)
            assert run["finished"] is None, run  # killed before its step was recorded as done
            got = wait_cleaned_up(db, run["id"])  # dr1's agent finds it within seconds
            assert got["result"] == "interrupted" and step in got["reason"], got
            eventually(  # the receiver applies the spool at its next batch or keep-alive
                lambda: not on_dr1(db).receiver(0).spool_records.exists(),
                timeout=30,
                interval=0.2,
                what="the spool applied",
            )
            assert not overlay_mounted_on_dr1(db), step
            assert not pg_running_on_dr1(db), step
            assert not on_dr1(db).receiver(0).spool_marker.exists(), step
            assert not on_dr1(db).receiver(0).spool_records.exists(), step
            if step == STEP_NAMES[-1]:  # killed after its last step's work: run again, it passes
                assert twinsite_on(db, "dr1", "recover-test", "db")["result"]["result"] == "passed"
        load.wait_for(len(load.acked) + 50)  # production went on the whole time
    finally:
        load.stop()
    assert source_equals_replica(db)["equal"]


def test_the_agent_runs_a_scheduled_test_and_cleans_up_after_its_own_kill_9(
    db: Lab, scenario_on_dr1: dict[str, Any]
) -> None:
    doc = scenario_on_dr1
    doc["assured_recovery"]["schedule"] = "* * * * *"
    doc["assured_recovery"]["after_pass"] = []
    write_scenario(db, doc)
    run: dict[str, Any] = {}

    def checking() -> bool:
        run.clear()
        run.update(run_state(db))
        running = [s["name"] for s in run.get("steps", []) if s["state"] == "running"]
        return run.get("finished") is None and "check-application" in running

    killed = None
    if eventually(checking, timeout=90, interval=0.05, what="a scheduled test checking the application"):
        pid = read_pid(on_dr1(db).host.agent_pid)  # (the agent, in dr1's namespace: not our child)
        assert pid is not None, "dr1's agent does not run"
        subprocess.run(["kill", "-9", str(pid)], check=True)
        killed = run["id"]
    assert killed, "no scheduled test reached check-application within 90 s"
    got = wait_cleaned_up(db, killed)  # by the agent the supervisor started again
    assert got["result"] == "interrupted" and got["scheduled"] is True, got
    assert not overlay_mounted_on_dr1(db) and not pg_running_on_dr1(db)
    assert not on_dr1(db).receiver(0).spool_marker.exists()
    doc["assured_recovery"].pop("schedule")
    dr1_log = agent_log(db, "dr1")
    end = log_size(dr1_log)
    write_scenario(db, doc)
    wait_logged(dr1_log, "twinsite agent: scenario db changed", after=end, timeout=30)  # no schedule from here on
    eventually(  # (a test the schedule started in the meantime ends first)
        lambda: run_state(db).get("finished") is not None, timeout=60, interval=0.5, what="the last test's end"
    )


def test_a_test_ends_at_once_when_the_active_host_fails_and_the_switchover_proceeds(
    db: Lab, scenario_on_dr1: dict[str, Any]
) -> None:
    """Automatic mode (witness client1, vCenter fence): prod1's site is cut while a test runs on dr1. The test
    ends, dr1's monitor switches over, and dr1 is active on its real replica, holding every commit acknowledged
    during the test up to a second before the cut (the spool's). configure.yml puts the lab back."""
    doc = scenario_on_dr1
    doc["assured_recovery"]["checks"] = [{"type": "tcp", "port": 1, "timeout": 1}]  # keeps it checking
    doc["assured_recovery"]["start_timeout"] = 300
    write_scenario(db, doc)
    set_mode(db, interval="2s", misses=2, timeout="2s")  # (rewrites both hosts' files, the check included)
    load = Load(db)
    load.start()
    test: dict[str, subprocess.CompletedProcess[str]] = {}
    runner = threading.Thread(target=lambda: test.update(p=on_host(db, "dr1", TWINSITE, "recover-test", "db")))
    try:
        load.wait_for(200)
        earlier = run_state(db).get("id")  # (the last test's run, finished, may have stopped in any step)
        runner.start()

        def checking() -> bool:
            run = run_state(db)
            return (
                run.get("id") != earlier
                and run.get("finished") is None
                and any(s["name"] == "check-application" and s["state"] == "running" for s in run.get("steps", []))
            )

        eventually(checking, timeout=60, interval=0.1, what="the test checking the application")
        assert overlay_mounted_on_dr1(db), run_state(db)
        time.sleep(2)  # commits keep arriving into the spool
        cut_at = time.time()
        labmod.cut(db, "prod1")
        load.stop()
        eventually(lambda: role(db, "dr1")["active"] == "dr1", timeout=120, interval=0.5, what="dr1 active")
        assert role(db, "dr1")["active"] == "dr1"
        runner.join(timeout=120)
        assert test["p"].returncode == 22, test["p"].stdout + test["p"].stderr
        record = twinsite_on(db, "dr1", "recover-test", "db", "--report")["result"]
        assert record["result"] == "failed", record
        assert "stopped answering" in record["reason"] or "switchover" in record["reason"], record["reason"]
        assert not overlay_mounted_on_dr1(db)
        assert not on_dr1(db).receiver(0).spool_marker.exists() and not on_dr1(db).receiver(0).spool_records.exists()
        report = twinsite_on(db, "dr1", "switchover", "db", "--report")["result"]
        assert report["result"] == "done" and all(c["ok"] for c in report["checks"]), report
        promote = next(s for s in report["steps"] if s["step"] == "promote")
        assert promote["seconds"] < 5, promote  # the test in the way costs the failover no waiting
        have = commits_on(db, "dr1")  # on the real replica, with what was spooled during the test applied
        # every commit acknowledged during the test, up to a second before the cut (replication takes ~10 ms)
        spooled = {c.n for c in load.acked if record["started_ts"] < c.at < cut_at - 1.0}
        assert len(spooled) > 50 and spooled <= have, sorted(spooled - have)[:20]
    finally:
        load.stop()
        runner.join(timeout=120)
        labmod.heal(db, "prod1")
        restore_db(db)
        ensure_configured(db)  # declared settings back


def playbook(lab: Lab, *extra: str) -> subprocess.CompletedProcess[str]:
    """playbooks/interactive_test.yml for db, as an operator runs it from the controller."""
    done = ansible("ansible-playbook", "playbooks/interactive_test.yml", "-e", "scenario=db", *extra, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:]
    return done


def test_an_interactive_test_serves_testers_under_its_own_name_and_leaves_nothing_of_theirs(db: Lab) -> None:
    """client1 writes through db-test.dr.test to dr1's test copy while production keeps committing through
    db.dr.test to prod1; after --end the name is gone, every production commit is on prod1 and on dr1, the
    replica equals prod1's snapshot of its point byte for byte (rsync -c), and the testers' table exists
    nowhere."""
    dr1, prod1 = db.host("dr1").address, db.host("prod1").address
    table = f"tester_{int(time.time())}"
    load = Load(db)
    load.start()
    try:
        load.wait_for(50)
        playbook(db, "-e", "hold=10m", "-e", "expose=db-test.dr.test")
        names = on_host(db, "client1", "getent", "hosts", "db-test.dr.test", "db.dr.test").stdout.split()
        assert names == [dr1, "db-test.dr.test", prod1, "db.dr.test"], names
        sql = f"create table {table}(n int); insert into {table} select generate_series(1, 100);"
        sql += f" select inet_server_addr(), count(*) from {table}"  # noqa: S608 (its own name)
        wrote = on_host(db, "client1", "psql", "-h", "db-test.dr.test", "-U", "postgres", "-d", "shop", "-qAtc", sql)
        assert wrote.stdout.split()[-1] == f"{dr1}|100", wrote.stdout + wrote.stderr
        during = len(load.acked)
        load.wait_for(during + 100)  # (production goes on meanwhile, to prod1: dr1 spools it)
        assert {c.server for c in load.acked} == {prod1}
        ended = playbook(db, "-e", "end=true")
        committed = {c.n for c in load.acked}
    finally:
        load.stop()
    [r] = [t for t in twinsite_on(db, "dr1", "recover-test", "db", "--history")["result"]["tests"][-1:]]
    assert r["result"] == "passed" and r["id"] in ended.stdout, r
    hold = r["hold"]
    assert hold["ended"].startswith("asked to end: ended by") and not hold["cut_short"], hold
    assert hold["exposed"] == {"name": "db-test.dr.test", "address": dr1, "ttl": 30, "removed": True}, hold
    assert 0 < hold["held_seconds"] < 600 and hold["requested_seconds"] == 600
    assert r["who"]["asked_by"] and r["who"]["from"].startswith("10.77.0."), r["who"]  # (the controller)
    assert r["spool"]["records"] > 0 and r["spool"]["applied"], r["spool"]  # production's commits, kept
    assert [d["equal"] for d in r["digests"]] == [True]
    assert resolve_addresses(server=db.ctl_address, name="db-test.dr.test") == []  # the name is gone
    assert not overlay_mounted_on_dr1(db) and not pg_running_on_dr1(db)
    # every production commit is on prod1; the testers' table is not
    assert committed <= commits_on(db, "prod1")
    assert psql(db, "prod1", f"select to_regclass('{table}') is null").stdout.strip() == "t"
    # dr1's replica is prod1's data at a point: equal byte for byte, so without the testers' table too
    wait_replicating(db, "prod1")
    with held_point(db, "db", "/srv/db") as h:
        excluded = ["/postgresql.log", "/data/postmaster.pid", "/data/postmaster.opts", "/data/.s.PGSQL.*"]
        assert rsync_differences(h, excluded) == [], f"dr1 differs from prod1's point {h.point}"


def test_the_spools_cap_ends_a_hold_early_with_an_alert(db: Lab, scenario_on_dr1: dict[str, Any]) -> None:
    """An interactive test that holds while production writes more than the spool may keep: the cap ends it
    at once (before its hold), with a warning alert; testers lose the copy, replication applies again."""
    doc = scenario_on_dr1
    doc.setdefault("assured_recovery", {})["spool"] = {"max_size": "256KiB"}
    write_scenario(db, doc)
    since = time.time()
    body = twinsite_on(db, "dr1", "recover-test", "db", "--hold", "10m", "--expose", "db-test.dr.test", "--background")
    assert body["ok"], body
    load = Load(db)
    load.start()
    try:
        ended = eventually(
            lambda: twinsite_on(db, "dr1", "recover-test", "db", "--dry-run")["result"]["running"] is False,
            timeout=120, interval=0.5, what="the hold to end",
        )  # fmt: skip
    finally:
        load.stop()
    assert ended, "the spool's cap did not end the hold"
    r = twinsite_on(db, "dr1", "recover-test", "db", "--report", body["result"]["id"])["result"]
    hold = r["hold"]
    assert hold["cut_short"] and "the spool of /srv/db reached its cap" in hold["ended"], hold
    assert hold["held_seconds"] < 120 and hold["exposed"]["removed"], hold
    assert r["spool"]["full"] and r["spool"]["applied"], r["spool"]
    assert r["actions"] == []  # (after-pass skipped: the replica must be itself again at once)
    [alert] = [e for e in events(db, "dr1", since) if e["kind"] == "recovery-hold-ended"]
    assert alert["severity"] == "warning" and body["result"]["id"] in alert["what"], alert
    assert resolve_addresses(server=db.ctl_address, name="db-test.dr.test") == []
    wait_replicating(db, "prod1")

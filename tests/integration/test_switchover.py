"""Switchover and switch-back of the lab's real PostgreSQL (scenario `db`), with a load generator committing
through db.dr.test the whole time: planned (zero loss, proved), unplanned by the monitor with a witness and
a fence (a prefix of the commits, the RPO measured), the split-brain guard, divergent writes set aside, and
a switchover killed after each of its steps that still ends right."""

from __future__ import annotations

import time
from typing import Any

import pytest

from harness.db import (
    DB_NAME,
    Load,
    commits_on,
    notes_on,
    psql,
    role,
    set_mode,
    wait_replicating,
)
from harness.hosts import on_host, ssh, twinsite_on, wait_event
from harness.vcenter import power_state
from harness.wait import eventually
from tests.fsops import live_bytes
from twinsite import lab as labmod
from twinsite.config.scenario import POINT_STORE
from twinsite.lab.topology import Lab
from twinsite.state import runs, sender_status, set_aside
from twinsite.state.layout import ScenarioState

pytestmark = pytest.mark.lab


def resolves_from_client1(lab: Lab) -> str:
    got = ssh(lab, "client1", f"getent ahostsv4 {DB_NAME} | head -1")
    return got.stdout.split()[0] if got.stdout.split() else ""


def check_report(r: dict[str, Any], *, mode: str, old: str, new: str) -> None:
    assert (r["mode"], r["from"], r["to"], r["result"]) == (mode, old, new, "done"), r
    assert [s["state"] for s in r["steps"]] == ["done"] * len(r["steps"])
    names = {c["name"]: c["ok"] for c in r["checks"]}
    assert names == {"accepting connections": True, "query": True, "consistent": True}, r["checks"]
    assert r["verify"]["probes"] and all(p["ok"] and p["connected"] for p in r["verify"]["probes"])
    print(
        f"{r['kind']} {old} -> {new} ({mode}): outage {r['rto']['outage_seconds']} s, switchover "
        f"{r['rto']['switchover_seconds']} s (application {r['rto']['application_seconds']} s), "
        f"RPO {r['rpo']['seconds']}"
    )
    for s in r["steps"]:
        print(f"  {s['step']:<18} {s['seconds']:.3f} s")


def test_planned_switchover_and_switchback_under_load_lose_no_commit(db: Lab) -> None:
    lab = db
    prod, dr = lab.host("prod1").address, lab.host("dr1").address
    load = Load(lab)
    load.start()
    try:
        load.wait_for(200)
        plan = twinsite_on(lab, "dr1", "switchover", "db", "--dry-run")
        assert plan["ok"] and plan["result"]["mode"] == "planned" and plan["result"]["changed"], plan
        assert role(lab, "dr1")["active"] == "prod1"  # a dry run changes nothing
        epoch = role(lab, "dr1")["epoch"]

        over = twinsite_on(lab, "dr1", "switchover", "db")
        assert over["ok"], over
        r = over["result"]
        check_report(r, mode="planned", old="prod1", new="dr1")
        assert r["rpo"]["seconds"] == 0.0 and r["rpo"]["proof"]
        assert resolves_from_client1(lab) == dr
        assert (role(lab, "prod1")["active"], role(lab, "prod1")["epoch"]) == ("dr1", epoch + 1)
        assert (role(lab, "dr1")["active"], role(lab, "dr1")["epoch"]) == ("dr1", epoch + 1)
        load.wait_for(100, on=dr)  # users followed DNS to dr1 and commit there
        on_prod = [c.n for c in load.acked if c.server == prod]
        missing = set(on_prod) - commits_on(lab, "dr1")
        assert not missing, f"{len(missing)} acknowledged commits of prod1 are not on dr1: {sorted(missing)[:10]}"
        again = twinsite_on(lab, "dr1", "switchover", "db")
        assert again["ok"] and again["result"]["changed"] is False  # already active: nothing to do

        wait_replicating(lab, "dr1")  # prod1 is dr1's standby now
        back = twinsite_on(lab, "prod1", "switchback", "db")
        assert back["ok"], back
        b = back["result"]
        check_report(b, mode="planned", old="dr1", new="prod1")
        assert b["set_aside"] == {"skipped": "already a standby of the active host"}
        assert resolves_from_client1(lab) == prod
        assert (role(lab, "prod1")["active"], role(lab, "prod1")["epoch"]) == ("prod1", epoch + 2)
        load.wait_for(len(load.acked) + 100, on=None)
    finally:
        load.stop()
    have = commits_on(lab, "prod1")
    missing = [c.n for c in load.acked if c.n not in have]
    assert not missing, f"{len(missing)} acknowledged commits lost: {missing[:10]}"
    assert {c.server for c in load.acked} == {prod, dr}
    assert on_host(lab, "dr1", "/opt/twinsite/bin/twinsite", "app", "db", "status").stdout.strip().endswith("stopped")


def test_a_switchover_killed_after_each_step_ends_as_one_that_was_not(db: Lab) -> None:
    lab = db
    load = Load(lab)
    load.start()
    try:
        load.wait_for(50)
        names = [s["step"] for s in twinsite_on(lab, "dr1", "switchover", "db", "--dry-run")["result"]["steps"]]
        for name in names[:-1]:
            p = on_host(
                lab, "dr1", "/opt/twinsite/bin/twinsite", "switchover", "db", env={"TWINSITE_CRASH_AFTER": name}
            )
            assert p.returncode in (-9, 137), (name, p.returncode, p.stderr[-2000:])
            run = runs.load(ScenarioState(lab.host("dr1").private_dir("/var/lib/twinsite"), "db").switchover_run)
            assert run is not None
            states = {s.name: s.state for s in run.steps}
            assert states[name] == "running" and run.finished is None, states  # killed before it was recorded
        done = twinsite_on(lab, "dr1", "switchover", "db")
        assert done["ok"], done
        r = done["result"]
        check_report(r, mode="planned", old="prod1", new="dr1")
        attempts = {s["step"]: s["attempts"] for s in r["steps"]}
        assert all(attempts[n] == 2 for n in names[:-1]) and attempts[names[-1]] == 1, attempts
        assert resolves_from_client1(lab) == lab.host("dr1").address
        load.wait_for(50, on=lab.host("dr1").address)
        wait_replicating(lab, "dr1")
        back_names = [s["step"] for s in twinsite_on(lab, "prod1", "switchback", "db", "--dry-run")["result"]["steps"]]
        for name in back_names[:5]:  # the switch-back's own steps, before its switchover part
            p = on_host(
                lab, "prod1", "/opt/twinsite/bin/twinsite", "switchback", "db", env={"TWINSITE_CRASH_AFTER": name}
            )
            assert p.returncode in (-9, 137), (name, p.returncode, p.stderr[-2000:])
        back = twinsite_on(lab, "prod1", "switchback", "db")
        assert back["ok"], back
        check_report(back["result"], mode="planned", old="dr1", new="prod1")
    finally:
        load.stop()
    have = commits_on(lab, "prod1")
    assert [c.n for c in load.acked if c.n not in have] == []
    assert resolves_from_client1(lab) == lab.host("prod1").address


def test_the_split_brain_guard_then_an_unplanned_failover_and_a_switchback_that_sets_divergence_aside(
    db: Lab,
) -> None:
    lab = db
    prod, dr = lab.host("prod1").address, lab.host("dr1").address
    set_mode(lab, interval="2s", misses=2, timeout="2s")  # (returns once the agents reloaded it)

    # 1. only the link between prod1 and dr1 is cut; the witness client1 still reaches prod1: no switchover
    t0 = time.time()
    labmod.partition(lab, "prod1", "dr1")
    try:
        withheld = wait_event(lab, "dr1", "switchover-withheld", t0, timeout=40)
        assert "witness client1 reaches prod1" in withheld["what"], withheld
        time.sleep(4)
        assert role(lab, "dr1")["active"] == "prod1" and role(lab, "prod1")["active"] == "prod1"
        assert resolves_from_client1(lab) == prod
    finally:
        labmod.heal(lab, "prod1")
    wait_replicating(lab, "prod1")

    # 2. prod1's site fails under load: the witness cannot reach it either, dr1 fences it and takes over
    load = Load(lab)
    load.start()
    try:
        load.wait_for(300)
        cut_at = time.time()
        labmod.cut(lab, "prod1")
        deadline = time.monotonic() + 90
        eventually(lambda: role(lab, "dr1")["active"] == "dr1", timeout=90, interval=0.5, what="dr1 active")
        promoted_at = time.time()
        assert role(lab, "dr1")["active"] == "dr1", "no automatic switchover within 90 s"
        report = None

        def finished() -> bool:
            nonlocal report
            body = twinsite_on(lab, "dr1", "switchover", "db", "--report")
            if body["ok"] and body["result"]["finished"]:
                report = body["result"]
            return report is not None

        eventually(finished, timeout=deadline - time.monotonic(), interval=0.5, what="the switchover's end")
        assert report is not None, "the automatic switchover did not finish"
        check_report(report, mode="unplanned", old="prod1", new="dr1")
        print(
            f"unplanned: promoted {promoted_at - cut_at:.1f} s after the cut, users back "
            f"{report['rto']['outage_seconds']} s after the failure was noticed"
        )
        fence = next(s for s in report["steps"] if s["step"] == "fence")["result"]
        assert fence["fenced"] and fence["vm"] == "prod1-vm"
        assert power_state(lab, "prod1-vm") == "poweredOff"
        before_cut = [c for c in load.acked if c.server == prod]
        load.wait_for(50, on=dr)
        have = commits_on(lab, "dr1")
        kept = [c for c in before_cut if c.n in have]
        assert kept == before_cut[: len(kept)], "dr1 holds no prefix of prod1's acknowledged commits"
        lost = before_cut[len(kept) :]
        rpo = report["rpo"]
        last_applied = promoted(report)["last_applied_at"]
        failure = promoted(report)["failure_at"]
        assert promoted(report)["last_heard_at"] and failure <= promoted(report)["failure_noticed_at"]
        print(
            f"RPO {rpo['seconds']} s; {len(lost)} acknowledged commit(s) lost, the newest "
            f"{cut_at - lost[-1].at if lost else 0:.2f} s before the cut"
        )
        assert last_applied <= failure and rpo["seconds"] == pytest.approx(failure - last_applied, abs=0.01)
        for c in lost:  # every lost commit falls in the window the report names
            assert last_applied - 1.0 <= c.at <= failure + 0.5, (c, last_applied, failure)
        # and the window is not much wider than what was lost: the load committed every few milliseconds,
        # so the newest commit dr1 kept was made just before the failure
        assert rpo["seconds"] <= (cut_at - kept[-1].at) + 1.5, (rpo, cut_at - kept[-1].at)

        # 3. prod1 kept running during the split and took a write of its own
        divergent = f"divergent on prod1 {time.time_ns()}"
        w = psql(lab, "prod1", f"insert into switchover_load(note) values ('{divergent}')")  # noqa: S608
        assert w.returncode == 0, w.stderr
        t1 = time.time()
        labmod.heal(lab, "prod1")
        split = wait_event(lab, "prod1", "split-brain", t1, timeout=60)  # dr1 refuses prod1's stream
        assert "refuses its changes" in split["what"]
        load.wait_for(len([c for c in load.acked if c.server == dr]) + 50, on=dr)
        rejoined = twinsite_on(lab, "prod1", "rejoin", "db", timeout=600)  # first only a standby again
        assert rejoined["ok"], rejoined
        j = rejoined["result"]
        aside = j["set_aside"]
        assert aside["paths"] > 0 and aside["written_here_unreplicated"], aside
        assert any(p.startswith("data/") for p in aside["written_here_unreplicated"])
        manifest = set_aside.read(
            ScenarioState(lab.host("prod1").private_dir("/var/lib/twinsite"), "db").set_aside(j["id"])
        )
        assert manifest is not None and len(manifest["items"]) == aside["paths"]
        assert wait_event(lab, "prod1", "divergent-changes-set-aside", t1, timeout=5)["severity"] == "warning"
        assert role(lab, "prod1")["active"] == "dr1" and role(lab, "dr1")["active"] == "dr1"
        wait_replicating(lab, "dr1")  # dr1 resynchronised prod1 and replicates to it
        sender = sender_status.read(
            ScenarioState(lab.host("dr1").private_dir("/var/lib/twinsite"), "db").sender(0, "prod1").status
        )
        assert sender is not None
        data = live_bytes(lab.host("dr1").private_dir("/srv") / "db", skip=(POINT_STORE,))
        print(f"resync of prod1: {sender.bytes_sent} bytes on the wire for {data} bytes of data")
        assert sender.bytes_sent < data / 2, (sender.bytes_sent, data)  # by delta, not a copy
        back = twinsite_on(lab, "prod1", "switchback", "db", timeout=600)
        assert back["ok"], back
        b = back["result"]
        check_report(b, mode="planned", old="dr1", new="prod1")
        assert b["set_aside"] == {"skipped": "already a standby of the active host"}
        load.wait_for(len(load.acked) + 50)
    finally:
        load.stop()
    have = commits_on(lab, "prod1")
    assert divergent not in notes_on(lab, "prod1")  # set aside, not merged
    on_dr = [c.n for c in load.acked if c.server == dr]
    assert on_dr and not [i for i in on_dr if i not in have], "commits made on dr1 were lost by the switch-back"
    assert resolves_from_client1(lab) == prod


def promoted(report: dict[str, Any]) -> dict[str, Any]:
    return dict(next(s for s in report["steps"] if s["step"] == "promote")["result"])

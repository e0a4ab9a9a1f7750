"""A site's recovery plan through playbooks/site_failover.yml, site_test.yml and site_switchback.yml: real
ansible runs on the lab's plan (`db`, then `app` which needs it), real switchovers on dr1 and prod1 over SSH.

The order is judged from the scenarios' own switchover reports on their hosts (start and end), not from the
plan's; "never switched twice" from the switchover reports each host keeps; failures are real ones (a
scenario the controller declares but no host knows, refused by twinsite on dr1)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.cli import ansible, recap
from harness.hosts import TWINSITE, on_host, twinsite_on
from twinsite.lab.topology import Lab

pytestmark = pytest.mark.lab

PLAN = "site-a"


def active(lab: Lab, scenario: str) -> dict[str, str]:
    """Who each lab host believes is active for ``scenario``."""
    return {h: twinsite_on(lab, h, "role", scenario)["result"]["active"] for h in ("prod1", "dr1")}


def reports(lab: Lab, host: str, scenario: str, since: float) -> list[dict[str, Any]]:
    """The switchover reports ``host`` keeps for ``scenario`` (made at or after ``since``), oldest first."""
    d = lab.host(host).private_dir("/var/lib/twinsite") / scenario / "switchovers"
    found = [json.loads(f.read_text()) for f in d.glob("*.json")] if d.is_dir() else []
    return sorted((r for r in found if r.get("started_ts", 0) >= since), key=lambda r: r["started_ts"])


@pytest.fixture
def site(db: Lab, tmp_path: Path) -> Iterator[tuple[Lab, Path]]:
    """The lab with db and app active on prod1; the controller's plan state in a directory of the test's own.
    Afterwards app is put back on prod1 whatever the test did (the db fixture puts db back)."""
    yield db, tmp_path / "controller"
    if active(db, "app")["dr1"] == "dr1":
        on_host(db, "prod1", TWINSITE, "switchback", "app", timeout=600)


def play(name: str, state: Path, *extra: str, env_crash: str | None = None) -> tuple[int, str]:
    args = ["ansible-playbook", f"playbooks/{name}.yml", "-e", f"plan={PLAN}"]
    args += ["-e", f"twinsite_controller_state_dir={state}", *extra]
    if env_crash:  # (the controller's module process kills itself right after the group's work)
        import os

        os.environ["TWINSITE_CRASH_AFTER"] = env_crash
        try:
            proc = ansible(*args, timeout=900)
        finally:
            del os.environ["TWINSITE_CRASH_AFTER"]
    else:
        proc = ansible(*args, timeout=900)
    return proc.returncode, proc.stdout


def last_report(state: Path) -> dict[str, Any]:
    found = sorted((state / "plans" / PLAN / "reports").glob("*.json"), key=lambda p: p.stat().st_mtime)
    return dict(json.loads(found[-1].read_text()))


def test_site_failover_killed_after_each_group_then_test_and_switchback_in_the_plans_order(
    site: tuple[Lab, Path],
) -> None:
    lab, state = site
    code, out = play("site_failover", state, "--check")
    assert code == 0, out[-4000:]
    assert "plan site-a: fail over" in out and "1. databases" in out and "2. applications" in out
    assert "db: prod1 -> dr1: planned" in out and "app: prod1 -> dr1: planned [needs db]" in out, out[-3000:]
    assert active(lab, "db") == active(lab, "app") == {"prod1": "prod1", "dr1": "prod1"}  # changed nothing

    code, out = play("site_test", state)  # the DR site's replicas tested where they are
    assert code == 0, out[-4000:]
    t = last_report(state)
    assert (t["action"], t["result"], t["scenarios_done"]) == ("test", "done", 2), t
    assert {o["result"] for g in t["groups"] for o in g["scenarios"]} == {"passed"}
    assert active(lab, "db") == active(lab, "app") == {"prod1": "prod1", "dr1": "prod1"}  # a test moves nothing

    # the controller dies (SIGKILL) right after each group's work, before it is recorded; each run continues
    for group, moved in (("databases", "db"), ("applications", "app")):
        code, out = play("site_failover", state, "-e", "confirm=true", env_crash=group)
        assert code != 0, out[-3000:]
        run = json.loads((state / "plans" / PLAN / "run.json").read_text())
        assert run["finished"] is None and {st["name"]: st["state"] for st in run["steps"]}[group] == "running"
        assert active(lab, moved)["dr1"] == "dr1"  # the group's work was done before the kill
    code, out = play("site_failover", state, "-e", "confirm=true")
    assert code == 0, out[-4000:]
    assert active(lab, "db") == active(lab, "app") == {"prod1": "dr1", "dr1": "dr1"}
    r = last_report(state)
    assert (r["id"], r["result"], r["scenarios_done"], r["failed"]) == (run["id"], "done", 2, []), r
    began = run["created"]
    [db] = reports(lab, "dr1", "db", began)  # each switched once, whatever was killed
    [app] = reports(lab, "dr1", "app", began)
    # the scenarios' own reports: db's switchover had ended before app's began (the plan's order)
    assert db["result"] == app["result"] == "done" and db["ended_ts"] <= app["started_ts"], (db, app)
    rows = {o["scenario"]: o for g in r["groups"] for o in g["scenarios"]}
    assert rows["db"]["report"] == db["id"] and rows["app"]["report"] == app["id"]
    assert rows["db"]["earlier"] is rows["app"]["earlier"] is True  # found switched, not switched again
    assert rows["db"]["rpo_seconds"] == 0 and rows["db"]["rto_seconds"] is not None
    # the plan's RTO: from its start to the last scenario's users back (each from its own report)
    start = dt.datetime.fromisoformat(r["started"].replace("Z", "+00:00")).timestamp()
    assert abs(start + r["rto_seconds"] - max(rows[n]["users_back_ts"] for n in rows)) < 0.01, r
    assert [(e["scenario"], e["event"]) for e in r["order"]] == [
        ("db", "started"), ("db", "done"), ("app", "started"), ("app", "done"),
    ]  # fmt: skip
    assert "# Site failover: plan site-a" in out and "| databases | db | dr1 | done (earlier attempt)" in out

    code, out = play("site_failover", state, "-e", "confirm=true")  # again: a new run, and nothing moves
    assert code == 0 and recap(out)["localhost"]["changed"] == 0, out[-3000:]
    again = last_report(state)
    assert again["id"] != r["id"] and {o["state"] for g in again["groups"] for o in g["scenarios"]} == {"nothing to do"}
    assert len(reports(lab, "dr1", "db", began)) == 1

    code, out = play("site_switchback", state, "--check")
    assert code == 0 and "db: dr1 -> prod1: planned" in out, out[-3000:]
    code, out = play("site_switchback", state, "-e", "confirm=true")
    assert code == 0, out[-4000:]
    assert active(lab, "db") == active(lab, "app") == {"prod1": "prod1", "dr1": "prod1"}
    back = last_report(state)
    assert (back["action"], back["result"]) == ("switchback", "done")
    [db_back] = reports(lab, "prod1", "db", began)
    [app_back] = reports(lab, "prod1", "app", began)
    assert db_back["kind"] == "switchback" and db_back["ended_ts"] <= app_back["started_ts"]


def plans_file(tmp_path: Path, on_failure: str) -> Path:
    """The lab's scenarios plus `ghost` (declared to the controller only: dr1 refuses to switch it over),
    and a plan: ghost first, then app, then db which needs ghost."""
    doc = yaml.safe_load(Path("inventories/lab/group_vars/all.yml").read_text())
    scenarios = doc["twinsite_scenarios"] + [
        {"name": "ghost", "master": "prod1", "replicas": ["dr1"], "roots": [{"path": "/srv/ghost"}]}
    ]
    plan = {
        "name": PLAN,
        "on_failure": on_failure,
        "groups": [
            {"name": "first", "scenarios": ["ghost"]},
            {"name": "second", "scenarios": ["app"]},
            {"name": "third", "scenarios": [{"scenario": "db", "needs": ["ghost"]}]},
        ],
    }
    f = tmp_path / "plans.yml"
    f.write_text(yaml.safe_dump({"twinsite_scenarios": scenarios, "twinsite_recovery_plans": [plan]}))
    return f


@pytest.mark.parametrize("on_failure", ["stop", "continue"])
def test_a_failing_scenario_stops_the_plan_or_not(site: tuple[Lab, Path], on_failure: str) -> None:
    lab, state = site
    extra = plans_file(state.parent, on_failure)
    code, out = play("site_failover", state, "-e", f"@{extra}", "-e", "confirm=true")
    assert code != 0, out[-3000:]  # a failure fails the play either way, after the report is shown
    r = last_report(state)
    [failure] = [f for f in r["failed"] if f["scenario"] == "ghost"]
    assert failure["state"] == "failed" and "ghost" in failure["error"], failure
    assert "| first | ghost | dr1 | failed" in out
    if on_failure == "stop":
        assert "group first stopped the plan" in out
        assert r["result"] == "stopped" and [g["state"] for g in r["groups"]] == ["failed", "pending", "pending"]
        assert active(lab, "app")["dr1"] == "prod1" and active(lab, "db")["dr1"] == "prod1"
    else:
        assert r["result"] == "done with failures" and [g["state"] for g in r["groups"]] == ["done"] * 3
        rows = {o["scenario"]: o for g in r["groups"] for o in g["scenarios"]}
        assert rows["app"]["state"] == "done" and active(lab, "app")["dr1"] == "dr1"
        assert rows["db"]["state"] == "skipped" and "needs ghost" in rows["db"]["error"]
        assert active(lab, "db")["dr1"] == "prod1"  # skipped: not switched

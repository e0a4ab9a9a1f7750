"""The lab-scale site (inventories/lab-scale: the white paper's 14 servers, each a scenario from prod1 to dr1,
and its recovery plan in dependency order) failed over with one command and switched back with another,
under its users' writes through each server's own name (harness.site.round_trip).

Judged from outside the plan: each host's own view of who is active, the lab's DNS server, every write
acknowledged to a user found byte for byte where the server is active afterwards, each replica compared with
its source file by file, and the order from the scenarios' own switchover reports (kept on their hosts)."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from harness.cli import on_controller
from harness.site import PROFILE, names, plan_order, play, prepare, remove, round_trip, wait_replicating
from twinsite.lab.topology import Lab

pytestmark = pytest.mark.lab

GROUPS = ["directory", "data", "applications", "web"]


def _in_order(report: dict[str, Any], action: str) -> None:
    """Each group began after the one before it ended, by the scenarios' own reports; a group's scenarios ran
    side by side; each one was switched, planned, with nothing lost."""
    assert [g["group"] for g in report["groups"]] == GROUPS
    ended = 0.0
    for g in report["groups"]:
        rows = g["scenarios"]
        assert all(o["state"] == "done" and o["mode"] == "planned" for o in rows), (action, rows)
        assert all(o["rpo_seconds"] == 0 for o in rows), (action, rows)
        assert min(o["began"] for o in rows) >= ended, (action, g["group"])
        if len(rows) > 1:  # side by side: the last to begin began before the first to end ended
            assert max(o["began"] for o in rows) < min(o["finished_at"] for o in rows), (action, g["group"])
        ended = max(o["finished_at"] for o in rows)


def whole_site_at_a_glance(wanted: list[str]) -> float:
    """``twinsite site status`` of the profile: every server's scenario, replicating to dr1; how long it took."""
    t0 = time.monotonic()
    proc = on_controller("site", "status", "-i", str(PROFILE), "--json")
    took = time.monotonic() - t0
    view = json.loads(proc.stdout.strip().splitlines()[-1])["result"]
    declared = {s["scenario"]: s for s in view["scenarios"] if s["declared"]}
    assert set(declared) == set(wanted)
    assert all(s["active"] == "prod1" and [b["host"] for b in s["standbys"]] == ["dr1"] for s in declared.values())
    assert {b["state"] for s in declared.values() for b in s["standbys"]} == {"replicating"}
    return took


def test_the_lab_scale_site_fails_over_and_back_by_its_plan_under_its_users_writes(lab: Lab) -> None:
    wanted = names()
    assert sorted(wanted) == sorted(plan_order())
    state = Path(tempfile.mkdtemp(prefix="tw-site-", dir="/tmp"))  # (short: the plan's ssh sockets live in it)
    prepare(lab, wanted)
    try:
        play("playbooks/configure.yml", timeout=900)
        wait_replicating(lab, wanted)
        site_took = whole_site_at_a_glance(wanted)
        got = round_trip(lab, wanted, state)
        sockets = list((state / "ssh").iterdir())  # (the plan reached the hosts over persistent connections)
    finally:
        remove(lab, wanted)
        shutil.rmtree(state, ignore_errors=True)
    _in_order(got["failover"], "failover")
    _in_order(got["switchback"], "switch-back")
    assert got["failover"]["rto_seconds"] < got["failover_s"]
    assert sockets
    print(f"\ntwinsite site status of the {len(wanted)} servers' profile: {site_took:.1f} s")
    assert set(got["users_outage_s"]) == set(wanted)  # (every server's users were served by dr1, then prod1)

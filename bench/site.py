"""A whole site failed over by its recovery plan (issue 20): the lab's scale profile (inventories/lab-scale:
the white paper's 14 protected servers, each a scenario from prod1 to dr1) and its plan `site-a` (four groups
in dependency order), against the same 14 switchovers run one by one, as an on-call engineer would without a
plan, in the same run.

* one by one: ``ansible-playbook -i inventories/lab-scale playbooks/switchover.yml -e scenario=S
  -e confirm=true`` for each of the 14 in the plan's order, each timed from its start to its end; their sum
  (the site is then switched back by its plan);
* the plan, under the site's users' writes (harness.users: every server written through its own name,
  through its application): ``ansible-playbook -i inventories/lab-scale playbooks/site_failover.yml
  -e plan=site-a -e confirm=true``,
  timed the same way, and its report's RTO (from the plan's start to the last scenario's users back);
  afterwards every scenario is active on dr1, its users' name (``<scenario>.dr.test``) resolves to dr1, and
  every write acknowledged to a user is there byte for byte; then the site switched back by its plan
  (``site_switchback.yml``, timed for information): every scenario active on prod1 again with every
  acknowledged write, and each replica equal to its source file by file (harness.site.round_trip). What
  the users saw is reported too: for each server, from its last write taken on prod1 to its first on dr1.

Also against the white paper's product's default detection alone: 5 minutes before a failover even starts.
The scenarios are removed again at the end; the lab's own (app, db) are left as they were.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
from pathlib import Path
from typing import Any

from harness.site import (
    PLAN,
    active_everywhere,
    names,
    plan_order,
    play,
    prepare,
    remove,
    require,
    round_trip,
    wait_replicating,
)
from twinsite.lab.topology import Lab

#: the white paper's product: the default time before an unreachable master is declared failed
DETECTION_S = 300.0


def run(lab: Lab, *, quick: bool = False) -> list[dict[str, Any]]:
    del quick  # (14 scenarios or nothing: the comparison is the point)
    wanted, order = names(), plan_order()
    require(sorted(wanted) == sorted(order), f"the plan names {order}, the profile declares {wanted}")
    prepare(lab, wanted)
    play("playbooks/configure.yml")
    state = Path(tempfile.mkdtemp(prefix="bench-site-"))
    plan = ["-e", f"plan={PLAN}", "-e", "confirm=true", "-e", f"twinsite_controller_state_dir={state}"]
    try:
        wait_replicating(lab, wanted)
        one_by_one: dict[str, float] = {}
        for n in order:
            one_by_one[n] = play("playbooks/switchover.yml", "-e", f"scenario={n}", "-e", "confirm=true")
        active_everywhere(lab, wanted, "dr1")
        back_plan = play("playbooks/site_switchback.yml", *plan)
        active_everywhere(lab, wanted, "prod1")
        wait_replicating(lab, wanted)
        got = round_trip(lab, wanted, state)
    finally:
        remove(lab, wanted)
        shutil.rmtree(state, ignore_errors=True)
    plan_wall, report = got["failover_s"], got["failover"]
    outage = got["users_outage_s"]
    total = sum(one_by_one.values())
    rows = {o["scenario"]: o for g in report["groups"] for o in g["scenarios"]}
    tw = {
        "value": plan_wall,
        "plan_rto_s": report["rto_seconds"],
        "scenarios": len(wanted),
        "groups": len(report["groups"]),
        "longest_scenario_rto_s": max((o.get("rto_seconds") or 0.0) for o in rows.values()),
        "site_switchback_s": round(got["switchback_s"], 1),
        "site_switchback_rto_s": got["switchback"]["rto_seconds"],
        "users_writes_acknowledged": got["writes_acknowledged"],
        "users_writes_refused": got["writes_refused"],
        "users_outage_max_s": round(max(outage.values()), 1),
        "users_outage_median_s": round(statistics.median(outage.values()), 1),
        "site_switchback_after_one_by_one_s": round(back_plan, 1),
    }
    return [
        {
            "name": f"site failover of {len(wanted)} scenarios by the recovery plan ({len(report['groups'])} groups)",
            "unit": "s",
            "twinsite": tw,
            "peer": {
                "name": f"the same {len(wanted)} switchovers one by one (switchover.yml each)",
                "value": total,
                "each_s": {n: round(v, 1) for n, v in one_by_one.items()},
            },
            "ratio": plan_wall / total,
            "ratio_meaning": "time, lower is better (target <= 0.3)",
        },
        {
            "name": f"site failover of {len(wanted)} scenarios: the plan's RTO (its start to the last users back)",
            "unit": "s",
            "twinsite": {"value": report["rto_seconds"]},
            "peer": {
                "name": "the white paper's product's default detection alone (before any failover)",
                "value": DETECTION_S,
            },
            "ratio": report["rto_seconds"] / DETECTION_S,
            "ratio_meaning": "time, lower is better",
        },
    ]

"""A whole site failed over by its recovery plan (issue 20): the lab's scale profile (inventories/lab-scale:
the white paper's 14 protected servers, each a scenario from prod1 to dr1) and its plan `site-a` (four groups
in dependency order), against the same 14 switchovers run one by one, as an on-call engineer would without a
plan, in the same run.

* one by one: ``ansible-playbook playbooks/switchover.yml -e scenario=S -e confirm=true`` for each of the 14
  in the plan's order, each timed from its start to its end; their sum;
* the plan: ``ansible-playbook playbooks/site_failover.yml -e plan=site-a -e confirm=true``, timed the same
  way, and its report's RTO (from the plan's start to the last scenario's users back);
* afterwards every scenario is active on dr1, its users' name (``<scenario>.dr.test``) resolves to dr1, and
  each replica (now on prod1) equals its source byte for byte;
  a file is written in each root on dr1, and the site switched back by the plan (``site_switchback.yml``,
  timed for information): every scenario is active on prod1 again, with those files, byte for byte. (The
  switch-backs after the one-by-one switchovers are made by the plan too.)

Also against the white paper's product's default detection alone: 5 minutes before a failover even starts.
The scenarios are removed again at the end; the lab's own (app, db) are left as they were.
"""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.scale import PROFILE, _require, _roots, _wait_replicating, names, prepare, remove
from harness.cli import ansible
from harness.hosts import twinsite_on
from harness.users import SiteUsers
from twinsite.lab.topology import DNS_ZONE, Lab
from twinsite.redirect.dns import resolve_addresses

#: the white paper's product: the default time before an unreachable master is declared failed
DETECTION_S = 300.0


def _play(*args: str) -> float:
    t0 = time.monotonic()
    done = ansible("ansible-playbook", "-i", str(PROFILE), *args, timeout=1800)
    _require(done.returncode == 0, done.stdout[-3000:])
    return time.monotonic() - t0


def _order() -> list[str]:
    """The scenarios in the plan's order (group by group)."""
    import yaml

    doc = yaml.safe_load((PROFILE / "group_vars" / "all" / "scale.yml").read_text())
    [plan] = [p for p in doc["twinsite_recovery_plans"] if p["name"] == "site-a"]
    return [s if isinstance(s, str) else s["scenario"] for g in plan["groups"] for s in g["scenarios"]]


def _active_everywhere(lab: Lab, wanted: list[str], host: str) -> None:
    """Every scenario active on ``host`` by both hosts' view, and its users' name (``<scenario>.dr.test`` at
    the lab's DNS server) pointing there."""
    for n in wanted:
        for h in ("prod1", "dr1"):
            got = twinsite_on(lab, h, "role", n)["result"]["active"]
            _require(got == host, f"{n}: {h} says {got} is active, not {host}")
        name = f"{n}.{DNS_ZONE}"
        addresses = resolve_addresses(server=lab.ctl_address, name=name)
        _require(addresses == [lab.host(host).address], f"{name} resolves to {addresses}, not to {host}")


def _report(state: Path) -> dict[str, Any]:
    """The newest report of the plan's runs."""
    newest = max((state / "plans" / "site-a" / "reports").glob("*.json"), key=os.path.getmtime)
    got: dict[str, Any] = json.loads(newest.read_text())
    return got


def _each_wrote(users: SiteUsers, host: str, since: float, timeout: float = 60) -> None:
    """Until every server has acknowledged a write on ``host`` since ``since``."""
    deadline = time.monotonic() + timeout
    while min(users.on(host, since).values()) == 0:
        _require(time.monotonic() < deadline, f"no write acknowledged on {host} for {users.on(host, since)}")
        _require(users.is_alive(), f"the users' load stopped: {users.error!r}")
        time.sleep(0.2)


def _users_outage(users: SiteUsers, old: str, new: str) -> dict[str, float]:
    """For each server, what its users saw: from their last write acknowledged on ``old`` to their first on
    ``new``."""
    out = {}
    for n in users.scenarios:
        last = max(w.at for w in users.acked if w.scenario == n and w.host == old)
        out[n] = min(w.at for w in users.acked if w.scenario == n and w.host == new and w.at > last) - last
    return out


def _same(lab: Lab, wanted: list[str], active: str) -> None:
    """Every replica equals its source byte for byte, once the active host has shipped everything."""
    _wait_replicating(lab, wanted, timeout=300, host=active)
    for n in wanted:
        a, b = _roots(lab, n)
        src, dst = (a, b) if active == "prod1" else (b, a)
        cmp = filecmp.dircmp(src, dst)
        _require(not (cmp.left_only or cmp.right_only), f"{n}: not the same names: {cmp.left_only} {cmp.right_only}")
        for f in cmp.common_files:
            _require((src / f).read_bytes() == (dst / f).read_bytes(), f"{n}/{f} differs")


def run(lab: Lab, *, quick: bool = False) -> list[dict[str, Any]]:
    del quick  # (14 scenarios or nothing: the comparison is the point)
    wanted, order = names(), _order()
    _require(sorted(wanted) == sorted(order), f"the plan names {order}, the profile declares {wanted}")
    prepare(lab, wanted)
    _play("playbooks/configure.yml")
    state = Path(tempfile.mkdtemp(prefix="bench-site-"))
    plan = ["-e", "plan=site-a", "-e", "confirm=true", "-e", f"twinsite_controller_state_dir={state}"]
    users = SiteUsers(lab, wanted)
    try:
        _wait_replicating(lab, wanted)
        one_by_one: dict[str, float] = {}
        for n in order:
            one_by_one[n] = _play("playbooks/switchover.yml", "-e", f"scenario={n}", "-e", "confirm=true")
        _active_everywhere(lab, wanted, "dr1")
        back_plan = _play("playbooks/site_switchback.yml", *plan)
        _active_everywhere(lab, wanted, "prod1")
        users.start()  # the site's users write to every server through its name, from now to the end
        _each_wrote(users, "prod1", 0.0)
        plan_wall = _play("playbooks/site_failover.yml", *plan)
        _active_everywhere(lab, wanted, "dr1")
        report = _report(state)
        _require(report["result"] == "done" and report["scenarios_done"] == len(wanted), report)
        _each_wrote(users, "dr1", 0.0)  # the users followed their servers' names
        lost = users.missing_on("dr1")
        _require(not lost, f"{len(lost)} acknowledged write(s) are not on dr1: {lost[:5]}")
        outage = _users_outage(users, "prod1", "dr1")
        back_started = time.time()
        back_again = _play("playbooks/site_switchback.yml", *plan)
        _active_everywhere(lab, wanted, "prod1")
        _each_wrote(users, "prod1", back_started)
        users.stop()
        lost = users.missing_on("prod1")
        _require(not lost, f"{len(lost)} acknowledged write(s) are not on prod1: {lost[:5]}")
        _same(lab, wanted, "prod1")
    finally:
        users.stopping.set()
        remove(lab, wanted)
        shutil.rmtree(state, ignore_errors=True)
    total = sum(one_by_one.values())
    rows = {o["scenario"]: o for g in report["groups"] for o in g["scenarios"]}
    tw = {
        "value": plan_wall,
        "plan_rto_s": report["rto_seconds"],
        "scenarios": len(wanted),
        "groups": len(report["groups"]),
        "longest_scenario_rto_s": max((o.get("rto_seconds") or 0.0) for o in rows.values()),
        "site_switchback_s": round(back_again, 1),
        "users_writes_acknowledged": len(users.acked),
        "users_writes_refused": users.refused,
        "users_outage_max_s": round(max(outage.values()), 1),
        "users_outage_median_s": round(sorted(outage.values())[len(outage) // 2], 1),
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

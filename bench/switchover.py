"""Switchover of the lab's PostgreSQL (scenario `db`) under a commit load: how long users are without it.

* planned: the outage (application stopped on prod1 until client1 reaches it on dr1), without the
  application's own start and checks, against the target of 5 s; each step's time; then the switch-back;
* unplanned, default monitoring settings (automatic mode, witness client1, fence by vCenter): from the cut
  of prod1's cable to users verified on dr1, against the target of 30 s and the white paper's product
  (about 5 minutes by default); broken into detection (cut to the switchover's start) and switchover.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import yaml

from harness.cli import ansible
from harness.db import Load, create_table, restore_db, role, scenario_file, wait_replicating
from harness.hosts import twinsite_on
from harness.vcenter import power_on
from twinsite import lab as labmod
from twinsite.lab.topology import Lab


def _configure() -> None:
    done = ansible("ansible-playbook", "playbooks/configure.yml", timeout=900)
    _require(done.returncode == 0, done.stdout[-2000:])


def _require(ok: bool, what: object) -> None:
    if not ok:
        raise RuntimeError(f"benchmark failed: {what}")


def _ts(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _steps(r: dict[str, Any]) -> dict[str, float]:
    return {s["step"]: round(s["seconds"], 3) for s in r["steps"] if s["seconds"] is not None}


def _planned(lab: Lab) -> dict[str, Any]:
    over = twinsite_on(lab, "dr1", "switchover", "db")
    _require(over["ok"], over)
    wait_replicating(lab, "dr1")
    back = twinsite_on(lab, "prod1", "switchback", "db")
    _require(back["ok"], back)
    r, b = over["result"], back["result"]
    outage = r["rto"]["outage_seconds"] - r["rto"]["application_seconds"]
    return {
        "name": "planned switchover prod1 -> dr1 under a commit load: outage without the application's own start",
        "unit": "s",
        "twinsite": {
            "value": outage,
            "outage_s": r["rto"]["outage_seconds"],
            "application_s": r["rto"]["application_seconds"],
            **{f"step_{k}": v for k, v in _steps(r).items()},
            "switchback_outage_s": b["rto"]["outage_seconds"],
            "switchback_resync_s": _steps(b).get("resync"),
        },
        "peer": {"name": "target", "value": 5.0},
        "ratio": outage / 5.0,
        "ratio_meaning": "outage over the target of 5 s, lower is better (<= 1 meets it)",
    }


def _unplanned(lab: Lab) -> list[dict[str, Any]]:
    for h in ("prod1", "dr1"):  # automatic mode, default monitoring
        f = scenario_file(lab, h)
        doc = yaml.safe_load(f.read_text())
        doc["switchover"]["mode"] = "automatic"
        doc.pop("monitoring", None)
        f.write_text(yaml.safe_dump(doc, sort_keys=False))
    time.sleep(12)  # the agents reload it; a few healthy rounds
    cut = time.time()
    labmod.cut(lab, "prod1")
    try:
        deadline = time.monotonic() + 180
        report = None
        while time.monotonic() < deadline:
            body = twinsite_on(lab, "dr1", "switchover", "db", "--report")
            if body["ok"] and body["result"]["finished"] and _ts(body["result"]["started_at"]) > cut:
                report = body["result"]
                break
            time.sleep(0.5)
        _require(report is not None, "no automatic switchover within 180 s")
    finally:
        labmod.heal(lab, "prod1")
    users_back = _ts(report["rto"]["users_back_at"])
    total = users_back - cut
    detection = _ts(report["started_at"]) - cut
    time.sleep(5)
    back = twinsite_on(lab, "prod1", "switchback", "db", timeout=900)
    _require(back["ok"], back)
    labmod_vm_on(lab)
    figures = {
        "value": total,
        "detection_s": round(detection, 2),
        "switchover_s": round(users_back - _ts(report["started_at"]), 2),
        "rpo_s": report["rpo"]["seconds"],
        **{f"step_{k}": v for k, v in _steps(report).items()},
    }
    return [
        {
            "name": "unplanned: prod1's cable cut to users verified on dr1, default settings (automatic, witness)",
            "unit": "s",
            "twinsite": figures,
            "peer": {"name": "target", "value": 30.0},
            "ratio": total / 30.0,
            "ratio_meaning": "time over the target of 30 s, lower is better (<= 1 meets it)",
        },
        {
            "name": "unplanned failover, default settings, against the white paper's product",
            "unit": "s",
            "twinsite": {"value": total},
            "peer": {"name": "the white paper's product (about 5 minutes by default)", "value": 300.0},
            "ratio": total / 300.0,
            "ratio_meaning": "time, lower is better for twinsite",
        },
    ]


def labmod_vm_on(lab: Lab) -> None:
    power_on(lab, "prod1-vm")  # fenced by the unplanned switchover


def run(lab: Lab, *, quick: bool = False) -> list[dict[str, Any]]:
    _configure()
    restore_db(lab)
    create_table(lab)
    wait_replicating(lab, "prod1")
    load = Load(lab)
    load.start()
    try:
        load.wait_for(200)
        out = [_planned(lab)]
        if not quick:
            out += _unplanned(lab)
        _require(role(lab, "prod1")["active"] == "prod1", "prod1 is not active again")
    finally:
        load.stop()
        restore_db(lab)
        _configure()  # back to the declared settings (manual mode)
    return out

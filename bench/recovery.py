"""Assured recovery of the lab's PostgreSQL (scenario `db`) on dr1, while a load generator commits on prod1:

* production's replication latency (the age of a change when dr1 acknowledges it, sampled from prod1's
  sender status) during a test, against the same without a test, in the same run (target: within 2x);
* the time of one test, broken into its steps, against the application's own part of it (its start and
  checks: the time to a healthy application), so the ratio is what the test's own machinery adds.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from bench.switchover import _configure, _require, _steps
from harness.db import Latency, Load, create_table, restore_db, wait_replicating
from harness.hosts import twinsite_on
from twinsite.lab.topology import Lab


def run(lab: Lab, *, quick: bool = False) -> list[dict[str, Any]]:
    _configure()
    restore_db(lab)
    create_table(lab)
    wait_replicating(lab, "prod1")
    latency = Latency(lab)
    latency.start()
    load = Load(lab)
    load.start()
    try:
        load.wait_for(200)
        t0 = time.time()
        time.sleep(10 if quick else 20)
        t1 = time.time()
        body = twinsite_on(lab, "dr1", "recover-test", "db")
        t2 = time.time()
        time.sleep(5 if quick else 10)  # the baseline is taken on both sides of the test
        t3 = time.time()
    finally:
        load.stop()
        latency.stopping.set()
    _require(body["ok"] and body["result"]["result"] == "passed", body)
    r = body["result"]
    before, during = latency.between(t0, t1) + latency.between(t2 + 1, t3), latency.between(t1, t2)
    _require(len(before) > 10 and len(during) > 10, (len(before), len(during)))
    base, test = statistics.median(before), statistics.median(during)
    steps = _steps(r)
    own = steps["start-application"] + steps["check-application"] + steps["stop-application"]
    return [
        {
            "name": "production replication latency (median, change to dr1's acknowledgement) during a test",
            "unit": "ms",
            "twinsite": {
                "value": test * 1000,
                "p95_ms": sorted(during)[int(len(during) * 0.95)] * 1000,
                "commits_during_test": r["spool"]["records"],
            },
            "peer": {"name": "without a test, same run (before and after it)", "value": base * 1000},
            "ratio": test / base if base else 1.0,
            "ratio_meaning": "latency during a test over without one, lower is better (<= 2 meets the target)",
        },
        {
            "name": "one assured-recovery test of the lab's PostgreSQL under load",
            "unit": "s",
            "twinsite": {
                "value": r["seconds"],
                "rto_s": r["rto_seconds"],
                "data_age_s": r["tested"][0]["age_seconds"],
                **{f"step_{k}": v for k, v in steps.items()},
            },
            "peer": {"name": "the application's own start, checks and stop", "value": own},
            "ratio": r["seconds"] / own,
            "ratio_meaning": "whole test over the application's own part: what the test machinery adds",
        },
    ]

"""playbooks/drill.yml, as `make demo` runs it, on the lab: every phase passes, and the report's figures are
the measurements the hosts themselves recorded (the switchover reports, the test's evidence, the bookmark),
not constants. Afterwards prod1 is active again with every order, and replicates to dr1."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from typing import Any

import jsonschema
import pytest

from harness.cli import REPO, ansible
from harness.db import psql, restore_db, role, wait_replicating
from harness.hosts import on_host, twinsite_on
from harness.vcenter import power_state
from harness.wait import eventually
from tests.views import SCHEMA
from tests.views import parse as metrics
from twinsite.lab.topology import Lab

pytestmark = pytest.mark.lab
PHASES = ["lab", "configure", "replicate", "bookmark", "assured-recovery", "interactive-test", "mariadb",
          "corrupt-rewind",
          "failover", "switchback"]  # fmt: skip


def _ts(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _on(lab: Lab, host: str, *args: str) -> dict[str, Any]:
    body = twinsite_on(lab, host, *args)
    assert body["ok"], body
    return dict(body["result"])


def test_the_drill_tells_the_whole_story_and_reports_what_was_measured(lab: Lab) -> None:
    restore_db(lab)  # the drill starts from prod1 active, as configure.yml leaves the lab
    t0 = time.monotonic()
    proc = ansible("ansible-playbook", "playbooks/drill.yml", timeout=1500)  # (as `make demo` runs it)
    took = time.monotonic() - t0
    assert proc.returncode == 0, proc.stdout[-6000:]
    print(f"the drill took {took:.0f} s")
    # the report where `make demo` leaves it: build/drill in the repository
    [drill_id] = set(re.findall(r"drill (\d{8}T\d{6}Z): PASSED", proc.stdout))
    report_file = REPO / "build" / "drill" / f"drill-{drill_id}.json"
    report = json.loads(report_file.read_text())
    assert report_file.with_suffix(".md").read_text().startswith(f"# DR drill {report['id']}: PASSED")
    assert report["result"] == "passed" and report["not_run"] == []
    assert [p["name"] for p in report["phases"]] == PHASES
    assert all(p["ok"] and p["error"] is None for p in report["phases"])
    f = {p["name"]: p["figures"] for p in report["phases"]}
    assert "PASSED" in proc.stdout and "RPO of the failover" in proc.stdout

    # the test's figures are dr1's evidence of that test
    evidence = _on(lab, "dr1", "recover-test", "db", "--report", f["assured-recovery"]["test"])
    assert evidence["result"] == "passed"
    assert float(f["assured-recovery"]["rto_seconds"]) == evidence["rto_seconds"]
    assert float(f["assured-recovery"]["data_age_seconds"]) == max(t["age_seconds"] for t in evidence["tested"])
    # the interactive test: the tester reached dr1 through the test name and saw every order; the end removed
    # the name, and the tester's write is not on prod1 (the evidence is dr1's)
    held = _on(lab, "dr1", "recover-test", "db", "--report", f["interactive-test"]["test"])
    assert held["result"] == "passed" and held["hold"]["exposed"]["removed"] and not held["hold"]["cut_short"]
    assert float(f["interactive-test"]["held_seconds"]) == held["hold"]["held_seconds"]
    assert f["interactive-test"]["tester_reached"] == lab.host("dr1").address
    assert int(f["interactive-test"]["orders_seen_by_tester"]) == 1001  # every order, and its own write
    assert f["interactive-test"]["tester_writes_on_prod1"] == "0"
    # MariaDB's test, as dr1's evidence has it
    maria = _on(lab, "dr1", "recover-test", "mariadb", "--report", f["mariadb"]["test"])
    assert maria["result"] == "passed" and {c["name"] for c in maria["checks"] if c["ok"]} >= {"ping", "tables"}
    # the rewind went back to the bookmark, from past the damage
    assert int(f["corrupt-rewind"]["rewound_to_seq"]) == int(f["bookmark"]["seq"])
    assert int(f["corrupt-rewind"]["rewound_from_seq"]) >= int(f["corrupt-rewind"]["damage_acked_seq"])
    assert int(f["corrupt-rewind"]["files"]) > 0

    # the failover's RTO and RPO are dr1's switchover report; its data was the bookmark's point, so the RPO
    # runs from the bookmark's time to the failure
    failover = _on(lab, "dr1", "switchover", "db", "--report", f["failover"]["switchover"])
    assert (failover["mode"], failover["result"]) == ("unplanned", "done")
    assert float(f["failover"]["rto_seconds"]) == failover["rto"]["outage_seconds"]
    assert float(f["failover"]["rpo_seconds"]) == failover["rpo"]["seconds"]
    rpo_from_bookmark = _ts(failover["rpo"]["failure_at"]) - _ts(f["bookmark"]["time"])
    assert abs(rpo_from_bookmark - failover["rpo"]["seconds"]) < 0.01, (rpo_from_bookmark, failover["rpo"])
    assert f["failover"]["users_reach"] == lab.host("dr1").address
    assert int(f["failover"]["orders_seen_by_users"]) == 1000  # the deleted orders are back

    # the switch-back: prod1's report; its damaged copy was set aside; users are back on prod1
    back = _on(lab, "prod1", "switchover", "db", "--report", f["switchback"]["switchover"])
    assert (back["kind"], back["mode"], back["result"]) == ("switchback", "planned", "done")
    assert float(f["switchback"]["rto_seconds"]) == back["rto"]["outage_seconds"]
    assert back["rpo"]["seconds"] == 0.0
    assert int(f["switchback"]["set_aside_paths"]) == back["set_aside"]["paths"] > 0
    assert f["switchback"]["users_reach"] == lab.host("prod1").address

    # and the lab is as the drill promises: prod1 active with every order, replicating to dr1, prod1-vm on
    assert role(lab, "prod1")["active"] == role(lab, "dr1")["active"] == "prod1"
    assert psql(lab, "prod1", "select count(*) from drill_orders").stdout.strip() == "1000"
    wait_replicating(lab, "prod1")
    assert power_state(lab, "prod1-vm") == "poweredOn"

    # the operator views say so too: status --json (valid against its published schema) and the agents'
    # metrics, prod1's from its loopback port and dr1's from its node-exporter textfile (the lab inventory's)
    epoch = int(role(lab, "prod1")["epoch"])
    for host in ("prod1", "dr1"):  # the whole answer, as the hosts' installed twinsite gives it
        jsonschema.validate(twinsite_on(lab, host, "status"), SCHEMA, cls=jsonschema.Draft202012Validator)
    served = on_host(lab, "prod1", "curl", "-sf", "http://127.0.0.1:9810/metrics")
    assert served.returncode == 0, served.stderr
    prod1 = metrics(served.stdout)
    assert prod1[("twinsite_switchovers_total", (("scenario", "db"),))] == epoch  # the two of the drill counted
    assert prod1[("twinsite_agent_up", ())] == 1
    [lag] = [
        v for (name, labels), v in prod1.items() if name == "twinsite_lag_seconds" and ("scenario", "db") in labels
    ]
    assert 0 <= lag < 30
    textfile = lab.host("dr1").private_dir("/var/lib/twinsite") / "metrics" / "twinsite.prom"
    dr1: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

    def counted() -> bool:  # (rewritten every 15 s: the switch-back's epoch may not be in it yet)
        dr1.clear()
        dr1.update(metrics(textfile.read_text()))
        return dr1.get(("twinsite_switchovers_total", (("scenario", "db"),))) == epoch

    eventually(counted, timeout=30, interval=1, what="the switch-back in dr1's textfile")
    assert dr1[("twinsite_switchovers_total", (("scenario", "db"),))] == epoch
    assert dr1[("twinsite_recovery_test_passed", (("scenario", "db"),))] == 1  # the drill's test

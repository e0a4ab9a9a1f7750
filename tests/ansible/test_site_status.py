"""`twinsite site status -i inventories/lab` on the controller, against the lab: every scenario as its hosts
report it (checked against each host's own `twinsite status`), a cut host as a row saying so within its timeout
while the others are right, and an answer at every moment of a switchover (`db`, through the playbooks)."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from importlib import resources
from typing import Any

import jsonschema
import pytest

from harness.cli import ansible, on_controller
from harness.db import role, wait_replicating
from harness.hosts import on_host, twinsite_on
from harness.scenarios import ensure_configured
from twinsite import lab as labmod
from twinsite.lab.topology import Lab
from twinsite.state.layout import DEFAULT_STATE_DIR, ScenarioState

pytestmark = pytest.mark.lab
HISTORY = ScenarioState(DEFAULT_STATE_DIR, "db").history
SCHEMA = json.loads(resources.files("twinsite").joinpath("schemas/site-status.schema.json").read_text())


def site_status(*extra: str, inventory: str = "inventories/lab", timeout: float = 120) -> tuple[dict[str, Any], float]:
    t0 = time.monotonic()
    proc = on_controller("site", "status", "-i", inventory, "--json", *extra, timeout=timeout)
    elapsed = time.monotonic() - t0
    body = json.loads(proc.stdout.strip().splitlines()[-1])
    assert body["ok"], body
    jsonschema.validate(body["result"], SCHEMA, cls=jsonschema.Draft202012Validator)
    return body["result"], elapsed


def scenario(view: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in view["scenarios"] if s["scenario"] == name)


def test_every_scenario_of_the_lab_as_its_hosts_report_it(lab: Lab) -> None:
    ensure_configured(lab)
    view, elapsed = site_status()
    assert {h["host"]: h["answered"] for h in view["hosts"]} == {"prod1": True, "dr1": True, "dr2": True}
    assert [s["scenario"] for s in view["scenarios"] if s["declared"]] == ["app", "db", "share", "mariadb", "web"]
    share = scenario(view, "share")
    assert share["active"] == "prod1" and [b["host"] for b in share["standbys"]] == ["dr1", "dr2"]
    # each standby's figures are its hosts' own: the sender's rows on prod1, the standby's own on dr1
    own = {(r["scenario"], r["replica"]): r for r in twinsite_on(lab, "prod1", "status")["result"]["scenarios"]
           if r["role"] == "active"}  # fmt: skip
    db = scenario(view, "db")
    [dr1] = db["standbys"]
    assert dr1["state"] == own[("db", "dr1")]["state"]
    assert db["epoch"] == int(role(lab, "prod1")["epoch"])
    standby = next(r for r in twinsite_on(lab, "dr1", "status")["result"]["scenarios"] if r["scenario"] == "db")
    assert dr1["bookmarks"] == standby["rewind"]["bookmarks"]
    print(f"site status of the lab: {elapsed:.1f} s")


def test_a_cut_host_is_a_row_saying_so_within_its_timeout_and_the_others_are_right(healed: Lab) -> None:
    lab = healed
    ensure_configured(lab)
    labmod.cut(lab, "prod1")
    view, elapsed = site_status("--timeout", "3")
    hosts = {h["host"]: h for h in view["hosts"]}
    assert hosts["prod1"]["reachable"] is False and not hosts["prod1"]["answered"] and hosts["prod1"]["error"]
    assert hosts["prod1"]["seconds"] < 3 + 2, hosts["prod1"]
    assert hosts["dr1"]["answered"] and hosts["dr2"]["answered"]
    assert elapsed < 30, f"site status took {elapsed:.1f} s with prod1 cut"  # (Ansible's settings run included)
    db = scenario(view, "db")
    assert (db["active"], db["active_answered"]) == ("prod1", False)
    assert db["standbys"][0]["state"] == "unknown (active host not answering)"
    assert db["standbys"][0]["applied_seq"] is not None  # (dr1's own figures are still there)


def test_site_status_answers_at_every_moment_of_a_switchover(db: Lab) -> None:
    lab = db
    started = time.time()
    seen: list[tuple[str, int | None, bool]] = []
    errors: list[str] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            try:
                view, elapsed = site_status("--timeout", "5")
                s = scenario(view, "db")
                seen.append((s["active"], s["epoch"], elapsed < 60))
            except Exception as exc:  # (every failure is collected, and reported below)
                errors.append(repr(exc))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        epoch = int(role(lab, "dr1")["epoch"])
        switched = ansible("ansible-playbook", "playbooks/switchover.yml", "-e", "scenario=db", "-e", "confirm=true",
                           timeout=900)  # fmt: skip
        assert switched.returncode == 0, switched.stdout[-3000:]
        time.sleep(5)
    finally:
        stop.set()
        watcher.join()
    assert errors == []
    assert len(seen) >= 3 and all(fast for _, _, fast in seen), seen
    assert {(a, e) for a, e, _ in seen} <= {("prod1", epoch), ("dr1", epoch + 1)}
    assert seen[-1][:2] == ("dr1", epoch + 1)
    wait_replicating(lab, "dr1")
    back = ansible("ansible-playbook", "playbooks/switchback.yml", "-e", "scenario=db", "-e", "confirm=true",
                   timeout=900)  # fmt: skip
    assert back.returncode == 0, back.stdout[-3000:]
    wait_replicating(lab, "prod1")
    report_after_a_switchover_and_two_tests(lab, started)


def report_after_a_switchover_and_two_tests(lab: Lab, started: float) -> None:
    """After the switchover and switch-back above and two tests through the playbooks, ``twinsite report`` has
    each as the hosts recorded it (RTO, RPO, results), with the controller's user and host as who asked."""
    for _ in range(2):
        tested = ansible("ansible-playbook", "playbooks/assured_recovery.yml", "-e", "scenario=db", timeout=900)
        assert tested.returncode == 0, tested.stdout[-3000:]
    me = f"{subprocess.check_output(['id', '-un'], text=True).strip()}@{socket.gethostname()}"
    since = f"{time.time() - started + 600:.0f}s"  # (from before the test: the hosts' records say which are its)
    r = json.loads(report_text("--since", since, "--format", "json"))
    db = next(s for s in r["scenarios"] if s["scenario"] == "db")
    # the switchover (run on dr1) and the switch-back (on prod1), each as its host's report says
    over = twinsite_on(lab, "dr1", "switchover", "db", "--report")["result"]
    back = twinsite_on(lab, "prod1", "switchback", "db", "--report")["result"]
    got = {o["id"]: o for o in db["switchovers"]}
    for host, own in (("dr1", over), ("prod1", back)):
        o = got[own["id"]]
        assert (o["host"], o["kind"], o["from"], o["to"]) == (host, own["kind"], own["from"], own["to"])
        assert (o["rto_seconds"], o["rpo_seconds"]) == (own["rto"]["outage_seconds"], own["rpo"]["seconds"])
        assert o["asked_by"].startswith(f"{me} (root from 10.77.0."), o["asked_by"]
    # the two tests as dr1 keeps their evidence, asked for by the same controller
    kept = [t for t in twinsite_on(lab, "dr1", "recover-test", "db", "--history")["result"]["tests"]
            if t["started_ts"] >= started]  # fmt: skip
    assert len(kept) >= 2
    mine = [t for t in db["tests"]["list"] if t["started_ts"] >= started]
    assert {t["id"]: t["result"] for t in mine} == {t["id"]: t["result"] for t in kept}
    # (each host takes the period from its own clock when it answers, up to the report's timeout after the
    # controller's `since`: a test begun in between may or may not be in it)
    every = twinsite_on(lab, "dr1", "recover-test", "db", "--history")["result"]["tests"]
    surely = [t for t in every if t["started_ts"] >= r["since"] + 30]
    maybe = [t for t in every if t["started_ts"] >= r["since"]]
    assert len(surely) <= db["tests"]["run"] <= len(maybe)
    passed = db["tests"]["passed"]
    assert sum(t["result"] == "passed" for t in surely) <= passed <= sum(t["result"] == "passed" for t in maybe)
    assert all(t["asked_by"].startswith(me) for t in mine), mine
    # the audit: the switchover's change event on dr1 says who and from where
    [change] = [c for c in db["changes"] if c.get("ref") == over["id"]]
    assert (change["host"], change["action"], change["outcome"]) == ("dr1", "switchover", "done")
    assert change["who"]["asked_by"] == me and change["who"]["from"].startswith("10.77.0.")
    assert db["rpo_target_seconds"] == 30.0
    md = report_text("--since", since)
    assert [f for f in ("## db", over["id"], back["id"], me) if f not in md] == [], md
    assert "<svg" in report_text("--since", since, "--format", "html")
    # the lag over the last hour: the minutes each host was active, as its own history files have them
    # (the agents go on writing a line a minute: the hosts read their files between the two reads here, so the
    # report has at least the first read's lines of the period's end and at most the second's of its start)
    first = wait_for_history(lab, started)
    before = time.time()
    r = json.loads(report_text("--since", "1h", "--format", "json"))
    after = time.time()
    second = wait_for_history(lab, started)
    lag = next(s for s in r["scenarios"] if s["scenario"] == "db")["lag"]

    def minutes(samples: list[tuple[float, float]], since: float, over: float = -1.0) -> float:
        return 60.0 * sum(1 for ts, worst in samples if ts >= since and worst > over)

    assert minutes(first, after - 3600) <= lag["observed_seconds"] <= minutes(second, before - 3600), r["hosts"]
    assert minutes(first, after - 3600, 30.0) <= lag["over_target_seconds"] <= minutes(second, before - 3600, 30.0)


def wait_for_history(lab: Lab, started: float) -> list[tuple[float, float]]:
    """Each minute prod1 or dr1 was active for db in the last hour and its worst lag, from their own history
    files (once the minute the test began in has been written)."""
    deadline = time.monotonic() + 90
    while True:
        out: list[tuple[float, float]] = []
        for host in ("prod1", "dr1"):
            text = on_host(lab, host, "sh", "-c", f"cat {HISTORY}/*.jsonl").stdout
            for line in text.splitlines():
                s = json.loads(line)
                lags = [r["lag"] for r in s["rows"] if r.get("lag") is not None]
                if s["role"] == "active" and lags and s["ts"] >= time.time() - 3700:
                    out.append((s["ts"], max(lags)))
        if any(ts >= started - 60 for ts, _ in out) or time.monotonic() > deadline:  # (the minute it began in)
            assert out, "no history of db on prod1 or dr1"
            return out
        time.sleep(5)


def report_text(*args: str) -> str:
    proc = on_controller("report", "-i", "inventories/lab", *args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout

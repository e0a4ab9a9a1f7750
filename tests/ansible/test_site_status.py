"""`twinsite site status -i inventories/lab` on the controller, against the lab: every scenario as its hosts
report it (checked against each host's own `twinsite status`), a cut host as a row saying so within its timeout
while the others are right, and an answer at every moment of a switchover (`db`, through the playbooks)."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from importlib import resources
from typing import Any

import jsonschema
import pytest

from harness.cli import REPO, VENV_BIN, ansible
from harness.db import role, wait_replicating
from harness.hosts import twinsite_on
from harness.scenarios import ensure_configured
from twinsite import lab as labmod
from twinsite.lab.topology import Lab

pytestmark = pytest.mark.lab
SCHEMA = json.loads(resources.files("twinsite").joinpath("schemas/site-status.schema.json").read_text())


def site_status(*extra: str, timeout: float = 120) -> tuple[dict[str, Any], float]:
    t0 = time.monotonic()
    proc = subprocess.run(
        [str(VENV_BIN / "twinsite"), "site", "status", "-i", "inventories/lab", "--json", *extra],
        cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False,
        env={"PATH": f"{VENV_BIN}:/usr/bin:/bin", "HOME": "/root", "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")},
    )  # fmt: skip
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
    assert [s["scenario"] for s in view["scenarios"] if s["declared"]] == ["app", "db", "share"]
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

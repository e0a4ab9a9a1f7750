"""The lab-scale site (inventories/lab-scale: the white paper's 14 servers, each a scenario from prod1 to dr1,
and its recovery plan ``site-a``): declaring it on the lab and removing it again, waiting for it, and
failing it over and back by its plan under its users' writes (harness.users), judged from outside twinsite:
each host's own role, the lab's DNS server, every acknowledged write found byte for byte, and the replicas
compared with their sources file by file. Used by ``python -m bench scale``, ``python -m bench site`` and
tests/ansible/test_site_scale.py."""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import yaml

from harness.cli import ansible
from harness.hosts import TWINSITE, on_host, twinsite_on
from harness.users import SiteUsers, gate, gate_lock, scale_dir
from twinsite.lab.topology import DNS_ZONE, Lab
from twinsite.redirect.dns import TsigKey, resolve_addresses, update_address
from twinsite.state.layout import ScenarioState

PROFILE = Path(__file__).resolve().parent.parent / "inventories" / "lab-scale"
PLAN = "site-a"
HOSTS = ("prod1", "dr1")


class SiteCheckFailed(AssertionError):
    """What the lab-scale site did is not what it should have (the message says what)."""


def require(ok: bool, what: object) -> None:
    if not ok:
        raise SiteCheckFailed(str(what))


def _profile() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((PROFILE / "group_vars" / "all" / "scale.yml").read_text())
    return doc


def names() -> list[str]:
    """The profile's scenarios, as declared."""
    return [str(s["name"]) for s in _profile()["twinsite_scenarios"]]


def plan_order() -> list[str]:
    """The scenarios in the plan's order (group by group)."""
    [plan] = [p for p in _profile()["twinsite_recovery_plans"] if p["name"] == PLAN]
    return [s if isinstance(s, str) else s["scenario"] for g in plan["groups"] for s in g["scenarios"]]


def roots(lab: Lab, name: str) -> tuple[Path, Path]:
    """The scenario's root on prod1 and on dr1, seen from the controller."""
    return scale_dir(lab, "prod1") / name, scale_dir(lab, "dr1") / name


def prepare(lab: Lab, wanted: list[str]) -> None:
    """Each scenario's root on prod1 with small data (20 files of 4 KiB per server), nothing on dr1; each
    server's application running on prod1 only, and its users' name pointing there. Whatever an earlier run
    left (an interrupted benchmark: the scenarios still declared, some active on dr1) is removed first."""
    remove(lab, wanted)
    key = TsigKey.load(lab.tsig_file)
    for n in wanted:
        name, prod1 = f"{n}.{DNS_ZONE}", [lab.host("prod1").address]
        update_address(server=lab.ctl_address, zone=DNS_ZONE, name=name, addresses=prod1, ttl=30, key=key)
        src, dst = roots(lab, n)
        for p in (src, dst):
            shutil.rmtree(p, ignore_errors=True)
        src.mkdir(parents=True)
        for i in range(20):
            (src / f"file{i}").write_bytes(os.urandom(4096))
        dst.parent.mkdir(parents=True, exist_ok=True)
        gate(lab, "dr1", n).unlink(missing_ok=True)
        gate(lab, "prod1", n).touch()


def play(*args: str, timeout: float = 1800) -> float:
    """``ansible-playbook -i inventories/lab-scale ARGS``: how long it took (it must succeed)."""
    t0 = time.monotonic()
    done = ansible("ansible-playbook", *args, inventory=PROFILE, timeout=timeout)
    require(done.returncode == 0, done.stdout[-3000:])
    return time.monotonic() - t0


def remove(lab: Lab, wanted: list[str]) -> None:
    """The scenarios undeclared on both hosts, their roots, gates and state removed."""
    for h in HOSTS:
        for n in wanted:
            on_host(lab, h, TWINSITE, "scenario", n, "--state", "absent")
    time.sleep(5)  # the agents let go of them (they read their configuration every 2 s)
    for n in wanted:
        states = (ScenarioState(lab.host(h).private_dir("/var/lib/twinsite"), n).dir for h in HOSTS)
        for p in (*roots(lab, n), *states):
            shutil.rmtree(p, ignore_errors=True)
        for h in HOSTS:
            gate(lab, h, n).unlink(missing_ok=True)
            gate_lock(lab, h, n).unlink(missing_ok=True)


def wait_replicating(lab: Lab, wanted: list[str], timeout: float = 300, host: str = "prod1") -> float:
    """Seconds until every scenario of ``wanted`` replicates from ``host`` with everything acknowledged."""
    t0 = time.monotonic()
    rows: list[dict[str, Any]] = []
    while time.monotonic() - t0 < timeout:
        rows = [
            r
            for r in twinsite_on(lab, host, "status")["result"]["scenarios"]
            if r["scenario"] in wanted and r.get("role", "active") == "active"
        ]
        done = [r for r in rows if r["state"] == "replicating" and r["acked_seq"] == r["planned_seq"]]
        if len(done) == len(wanted):
            return time.monotonic() - t0
        time.sleep(0.5)
    raise SiteCheckFailed(f"not all replicating from {host}: {[(r['scenario'], r['state']) for r in rows]}")


def active_everywhere(lab: Lab, wanted: list[str], host: str) -> None:
    """Every scenario active on ``host`` by both hosts' view, and its users' name (``<scenario>.dr.test`` at
    the lab's DNS server) pointing there."""
    for n in wanted:
        for h in HOSTS:
            got = twinsite_on(lab, h, "role", n)["result"]["active"]
            require(got == host, f"{n}: {h} says {got} is active, not {host}")
        name = f"{n}.{DNS_ZONE}"
        addresses = resolve_addresses(server=lab.ctl_address, name=name)
        require(addresses == [lab.host(host).address], f"{name} resolves to {addresses}, not to {host}")


def same(lab: Lab, wanted: list[str], active: str) -> None:
    """Every replica equals its source byte for byte, once the active host has shipped everything."""
    wait_replicating(lab, wanted, timeout=300, host=active)
    for n in wanted:
        a, b = roots(lab, n)
        src, dst = (a, b) if active == "prod1" else (b, a)
        cmp = filecmp.dircmp(src, dst)
        require(not (cmp.left_only or cmp.right_only), f"{n}: not the same names: {cmp.left_only} {cmp.right_only}")
        for f in cmp.common_files:
            require((src / f).read_bytes() == (dst / f).read_bytes(), f"{n}/{f} differs")


def plan_report(state: Path) -> dict[str, Any]:
    """The newest report of the plan's runs kept in the controller's state directory ``state``."""
    newest = max((state / "plans" / PLAN / "reports").glob("*.json"), key=os.path.getmtime)
    got: dict[str, Any] = json.loads(newest.read_text())
    return got


def each_wrote(users: SiteUsers, host: str, since: float, timeout: float = 60) -> None:
    """Until every server has acknowledged a write on ``host`` since ``since``."""
    deadline = time.monotonic() + timeout
    while min(users.on(host, since).values()) == 0:
        require(time.monotonic() < deadline, f"no write acknowledged on {host}: {users.on(host, since)}")
        require(users.is_alive(), f"the users' load stopped: {users.error!r}")
        time.sleep(0.2)


def users_outage(users: SiteUsers, old: str, new: str) -> dict[str, float]:
    """For each server, what its users saw: from their last write acknowledged on ``old`` to their first on
    ``new`` after it."""
    out = {}
    for n in users.scenarios:
        last = max(w.at for w in users.acked if w.scenario == n and w.host == old)
        out[n] = min(w.at for w in users.acked if w.scenario == n and w.host == new and w.at > last) - last
    return out


def round_trip(lab: Lab, wanted: list[str], state: Path) -> dict[str, Any]:
    """With every scenario active on prod1 and replicating: the users start writing to every server; the site
    fails over by its plan (one command, confirmed on the command line) and must be active on dr1 with the
    names there and every acknowledged write; then it switches back by its plan and must be active on prod1
    with every acknowledged write, each replica equal to its source. The figures: each playbook's time, the
    plan's own report, and what the users saw."""
    plan = ["-e", f"plan={PLAN}", "-e", "confirm=true", "-e", f"twinsite_controller_state_dir={state}"]
    users = SiteUsers(lab, wanted)
    users.start()
    try:
        each_wrote(users, "prod1", 0.0)
        failover_s = play("playbooks/site_failover.yml", *plan)
        active_everywhere(lab, wanted, "dr1")
        failover = plan_report(state)
        require(failover["result"] == "done" and failover["scenarios_done"] == len(wanted), failover)
        each_wrote(users, "dr1", 0.0)  # the users followed their servers' names
        lost = users.missing_on("dr1")
        require(not lost, f"{len(lost)} acknowledged write(s) are not on dr1: {lost[:5]}")
        outage = users_outage(users, "prod1", "dr1")
        back_started = time.time()
        switchback_s = play("playbooks/site_switchback.yml", *plan)
        active_everywhere(lab, wanted, "prod1")
        switchback = plan_report(state)
        require(switchback["result"] == "done" and switchback["scenarios_done"] == len(wanted), switchback)
        each_wrote(users, "prod1", back_started)
    finally:
        users.stop()
    lost = users.missing_on("prod1")
    require(not lost, f"{len(lost)} acknowledged write(s) are not on prod1: {lost[:5]}")
    same(lab, wanted, "prod1")
    return {
        "failover_s": failover_s,
        "failover": failover,
        "switchback_s": switchback_s,
        "switchback": switchback,
        "writes_acknowledged": len(users.acked),
        "writes_refused": users.refused,
        "users_outage_s": outage,
    }

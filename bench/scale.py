"""One agent serving many scenarios: the lab's scale profile (inventories/lab-scale: the white paper's 14
protected servers, 3 two-node clusters and 8 standalone, each a scenario from prod1 to the one DR host dr1),
declared by configure.yml, under a light write load on every scenario at once.

* lag: every 0.5 s a marker file and a 16 KiB append go into each scenario's root on prod1, and each marker
  is timed until it is on dr1 with its content; p50 and p99 over all scenarios, against the same load on one
  scenario alone in the same run (the ratio: what serving 14 costs each one);
* the agents while all 14 are loaded: CPU (seconds per second) of prod1's agent (the 14 senders), of dr1's
  agent (the 14 monitors) and of dr1's receivers, and their peak memory.

The scenarios are removed again at the end; the lab's own (app, db) are left as they were.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from bench.replication import _cpu_of, _peak_rss_mib, pct
from harness.cli import ansible
from harness.hosts import on_host, twinsite_on
from twinsite.lab import netns
from twinsite.lab.topology import Lab
from twinsite.state.layout import ScenarioState

PROFILE = Path(__file__).resolve().parent.parent / "inventories" / "lab-scale"
TW = "/opt/twinsite/bin/twinsite"


def _require(ok: bool, what: object) -> None:
    if not ok:
        raise RuntimeError(f"benchmark failed: {what}")


def names() -> list[str]:
    doc = yaml.safe_load((PROFILE / "group_vars" / "all" / "scale.yml").read_text())
    return [str(s["name"]) for s in doc["twinsite_scenarios"]]


def _roots(lab: Lab, name: str) -> tuple[Path, Path]:
    return lab.host("prod1").private_dir("/srv") / "scale" / name, lab.host("dr1").private_dir("/srv") / "scale" / name


def prepare(lab: Lab, wanted: list[str]) -> None:
    """Each scenario's root on prod1 with small data (20 files of 4 KiB per server), nothing on dr1."""
    for n in wanted:
        src, dst = _roots(lab, n)
        for p in (src, dst):
            shutil.rmtree(p, ignore_errors=True)
        src.mkdir(parents=True)
        for i in range(20):
            (src / f"file{i}").write_bytes(os.urandom(4096))


def remove(lab: Lab, wanted: list[str]) -> None:
    """The scenarios undeclared on both hosts, their roots and state removed."""
    for h in ("prod1", "dr1"):
        for n in wanted:
            on_host(lab, h, TW, "scenario", n, "--state", "absent")
    time.sleep(5)  # the agents let go of them (they read their configuration every 2 s)
    for n in wanted:
        states = (ScenarioState(lab.host(h).private_dir("/var/lib/twinsite"), n).dir for h in ("prod1", "dr1"))
        for p in (*_roots(lab, n), *states):
            shutil.rmtree(p, ignore_errors=True)


def _wait_replicating(lab: Lab, wanted: list[str], timeout: float = 300, host: str = "prod1") -> float:
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
    raise RuntimeError(f"benchmark failed: not all replicating: {[(r['scenario'], r['state']) for r in rows]}")


def _markers(lab: Lab, which: list[str], seconds: float) -> list[float]:
    """Markers every 0.5 s in each root of ``which`` (with a 16 KiB append), timed until on dr1."""
    roots = {n: _roots(lab, n) for n in which}
    pending: dict[tuple[str, int], tuple[float, bytes]] = {}
    lags: list[float] = []
    t0, k = time.monotonic(), 0
    while time.monotonic() - t0 < seconds or (pending and time.monotonic() - t0 < seconds + 30):
        if time.monotonic() - t0 < seconds and time.monotonic() >= t0 + k * 0.5:
            for n, (src, _dst) in roots.items():
                token = os.urandom(16)
                with open(src / "log", "ab") as f:
                    f.write(os.urandom(16384))
                (src / f"marker{k}").write_bytes(token)
                pending[(n, k)] = (time.monotonic(), token)
            k += 1
        for (n, i), (t, token) in list(pending.items()):
            try:
                if (roots[n][1] / f"marker{i}").read_bytes() == token:
                    lags.append(time.monotonic() - t)
                    del pending[(n, i)]
            except FileNotFoundError:
                pass
        time.sleep(0.002)
    _require(not pending, f"{len(pending)} marker(s) never arrived")
    return lags


def _usage(lab: Lab, seconds: float, run: Any) -> tuple[Any, dict[str, float]]:
    """``run()``'s result, and the CPU share (seconds per second) and peak memory of the agents meanwhile."""
    where = {h: set(netns.pids(lab.host(h).netns)) for h in ("prod1", "dr1")}
    parts = {"prod1_agent": (b"agent", "prod1"), "dr1_agent": (b"agent", "dr1"), "dr1_receivers": (b"receive", "dr1")}
    before = {k: _cpu_of(word, where[h]) for k, (word, h) in parts.items()}
    t0 = time.monotonic()
    result = run()
    wall = time.monotonic() - t0
    where = {h: set(netns.pids(lab.host(h).netns)) for h in ("prod1", "dr1")}
    usage = {f"{k}_cpu": round((_cpu_of(w, where[h]) - before[k]) / wall, 3) for k, (w, h) in parts.items()}
    usage |= {f"{k}_peak_rss_mib": _peak_rss_mib(w, where[h]) for k, (w, h) in parts.items()}
    return result, usage


def run(lab: Lab, *, quick: bool = False) -> list[dict[str, Any]]:
    seconds = 10 if quick else 30
    all_names = names()
    prepare(lab, all_names)
    done = ansible("ansible-playbook", "-i", str(PROFILE), "playbooks/configure.yml", timeout=900)
    _require(done.returncode == 0, done.stdout[-3000:])
    try:
        synced = _wait_replicating(lab, all_names)
        one = _markers(lab, all_names[:1], seconds)
        many, usage = _usage(lab, seconds, lambda: _markers(lab, all_names, seconds))
    finally:
        remove(lab, all_names)
    ms = 1000.0
    tw = {
        "value": pct(many, 0.5) * ms,
        "p99_ms": pct(many, 0.99) * ms,
        "markers": len(many),
        "scenarios": len(all_names),
        "all_replicating_after_configure_s": round(synced, 2),
        **usage,
    }
    return [
        {
            "name": f"{len(all_names)} scenarios (prod1 -> dr1) at once, a marker and 16 KiB every 0.5 s in each: "
            "replication lag p50",
            "unit": "ms",
            "twinsite": tw,
            "peer": {"name": "the same load on 1 scenario", "value": pct(one, 0.5) * ms, "p99_ms": pct(one, 0.99) * ms},
            "ratio": pct(many, 0.5) / pct(one, 0.5) if one else float("nan"),
            "ratio_meaning": f"lag with {len(all_names)} scenarios over lag with one, lower is better (1: no cost)",
        }
    ]


if __name__ == "__main__":
    print(json.dumps(run(Lab.from_env(), quick="--quick" in sys.argv), indent=2))

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
import sys
import time
from typing import Any

from bench.replication import _cpu_of, _peak_rss_mib, pct
from harness.site import names, play, prepare, remove, require, roots, wait_replicating
from twinsite.lab import netns
from twinsite.lab.topology import Lab


def _markers(lab: Lab, which: list[str], seconds: float) -> list[float]:
    """Markers every 0.5 s in each root of ``which`` (with a 16 KiB append), timed until on dr1."""
    where = {n: roots(lab, n) for n in which}
    pending: dict[tuple[str, int], tuple[float, bytes]] = {}
    lags: list[float] = []
    t0, k = time.monotonic(), 0
    while time.monotonic() - t0 < seconds or (pending and time.monotonic() - t0 < seconds + 30):
        if time.monotonic() - t0 < seconds and time.monotonic() >= t0 + k * 0.5:
            for n, (src, _dst) in where.items():
                token = os.urandom(16)
                with open(src / "log", "ab") as f:
                    f.write(os.urandom(16384))
                (src / f"marker{k}").write_bytes(token)
                pending[(n, k)] = (time.monotonic(), token)
            k += 1
        for (n, i), (t, token) in list(pending.items()):
            try:
                if (where[n][1] / f"marker{i}").read_bytes() == token:
                    lags.append(time.monotonic() - t)
                    del pending[(n, i)]
            except FileNotFoundError:
                pass
        time.sleep(0.002)
    require(not pending, f"{len(pending)} marker(s) never arrived")
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
    play("playbooks/configure.yml", timeout=900)
    try:
        synced = wait_replicating(lab, all_names)
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

"""Crash consistency of the `db` scenario under pgbench's TPC-B load (issue 17), on the lab.

* the oracle (harness.cuts): prod1's site cut at seeded moments, dr1's copy judged by PostgreSQL itself;
  with consistency points (target: every cut consistent) beside file mode on the same load (how many
  copies file-level replication leaves torn: the oracle shown to catch what it is for);
* pgbench TPS with points every second over TPS with db's replication stopped, same run, the modes in turn
  (target >= 0.9), and file mode's for context;
* at that load, the RPO a failover would have at any moment (the age of the last point dr1 acknowledged,
  sampled) and the replication lag: p50 and p99 (targets: p50 <= interval + 0.2 s, p99 <= 2 s);
* wire bytes per point over the bytes btrfs listed as changed (target <= 1.1).
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from harness.cuts import Cut, declare, one_cut, settled, workload
from harness.db import prepare_db
from harness.hosts import TWINSITE, on_host
from harness.pgoracle import Database, init_workload, pgbench_argv, write_script
from harness.wait import eventually
from twinsite.lab import pg
from twinsite.lab.topology import Lab
from twinsite.state import sender_status
from twinsite.state.layout import ScenarioState
from twinsite.state.sender_status import SenderStatus


def _quantile(values: list[float], q: float) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1]


def _status(lab: Lab) -> SenderStatus | None:
    return sender_status.read(
        ScenarioState(lab.host("prod1").private_dir("/var/lib/twinsite"), "db").sender(0, "dr1").status
    )


def _tps(db: Database, work: Path, seconds: int, lab: Lab | None = None) -> dict[str, Any]:
    """pgbench for ``seconds``; with ``lab``, prod1's sender sampled meanwhile (RPO, lag, bytes)."""
    run = Path(tempfile.mkdtemp(prefix="tps-", dir=work))
    run.chmod(0o755)
    argv = pgbench_argv(pg.bin_dir(), db, write_script(run / "tpcb.sql"), run / "pgbench", duration=seconds)
    rpo: list[float] = []
    lag: list[float] = []
    stop = threading.Event()
    first: list[SenderStatus] = []

    def sample() -> None:
        while not stop.is_set():
            st = _status(lab) if lab else None
            if st is not None:
                if not first:
                    first.append(st)
                now = time.time()
                if st.point_ts:
                    rpo.append(now - st.point_ts)
                lag.append(st.lag_seconds)
            stop.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120, cwd=run, check=True).stdout
    stop.set()
    sampler.join()
    found = re.search(r"tps = ([0-9.]+)", out)
    if found is None:
        raise AssertionError(f"no tps in pgbench's output: {out[-2000:]}")
    result: dict[str, Any] = {"tps": float(found.group(1)), "rpo": rpo, "lag": lag}
    last = _status(lab) if lab else None
    if first and last is not None:
        result["points"] = last.points - first[0].points
        result["wire_bytes"] = last.bytes_sent - first[0].bytes_sent
        result["extent_bytes"] = last.point_extent_bytes - first[0].point_extent_bytes
    return result


def _throughput(lab: Lab, db: Database, work: Path, seconds: int, rounds: int) -> dict[str, list[dict[str, Any]]]:
    """pgbench runs in turn without replication, with points and in file mode, ``rounds`` times (in turn, so
    that a slow moment of the machine does not fall on one mode only), each on fresh tables."""
    out: dict[str, list[dict[str, Any]]] = {"off": [], "points": [], "file": []}
    for _ in range(rounds):
        for mode in out:
            if mode == "off":
                stop = on_host(lab, "prod1", TWINSITE, "scenario", "db", "--state", "stopped")
                if stop.returncode != 0:
                    raise AssertionError(stop.stdout + stop.stderr)
                try:
                    stopped = eventually(
                        lambda: getattr(_status(lab), "state", None) == "stopped", timeout=60, what="db stopped"
                    )
                    if not stopped:
                        raise AssertionError(f"db's sender on prod1 did not stop: {_status(lab)}")
                    init_workload(pg.bin_dir(), db, scale=1)
                    out[mode].append(_tps(db, work, seconds))
                finally:
                    on_host(lab, "prod1", TWINSITE, "scenario", "db", "--state", "started")
                continue
            declare(lab, mode)
            init_workload(pg.bin_dir(), db, scale=1)
            settled(lab, mode, timeout=600)
            out[mode].append(_tps(db, work, seconds, lab))
    declare(lab, "points")
    settled(lab, "points", timeout=600)
    return out


def _cuts(lab: Lab, db: Database, work: Path, mode: str, seeds: range) -> list[Cut]:
    out = []
    for seed in seeds:
        cut = one_cut(lab, db, seed=seed, mode=mode, work=work)
        print(cut.line(), flush=True)
        out.append(cut)
    return out


def run(lab: Lab, *, quick: bool = False) -> list[dict[str, Any]]:
    prepare_db(lab)
    work = Path(tempfile.mkdtemp(prefix="twinsite-bench-consistency-", dir="/var/tmp"))
    work.chmod(0o755)
    try:
        declare(lab, "points")
        db = workload(lab)
        n = 10 if quick else 50
        points = _cuts(lab, db, work, "points", range(2000, 2000 + n))
        declare(lab, "file")
        files = _cuts(lab, db, work, "file", range(3000, 3000 + (5 if quick else 20)))
        seconds, rounds = (20, 1) if quick else (30, 3)
        tps = _throughput(lab, db, work, seconds, rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ok_points = sum(c.verdict.ok for c in points)
    ok_files = sum(c.verdict.ok for c in files)
    broken = [c.line() for c in points if not c.verdict.ok]
    on = statistics.median(r["tps"] for r in tps["points"])
    off = statistics.median(r["tps"] for r in tps["off"])
    rpo = [x for r in tps["points"] for x in r["rpo"]]
    lag = [x for r in tps["points"] for x in r["lag"]]
    counted = {k: sum(r.get(k, 0) for r in tps["points"]) for k in ("points", "wire_bytes", "extent_bytes")}
    return [
        {
            "name": f"consistent copies of PostgreSQL under pgbench at {len(points)} seeded cuts of prod1's site",
            "unit": "% of cuts",
            "twinsite": {
                "value": 100.0 * ok_points / len(points),
                "consistent": ok_points,
                "cuts": len(points),
                "broken_seeds": [c.seed for c in points if not c.verdict.ok],
                "undone_records_median": statistics.median(c.undone for c in points),
                "broken": broken,
            },
            "peer": {
                "name": f"twinsite consistency: file, same load ({len(files)} cuts)",
                "value": 100.0 * ok_files / len(files),
                "consistent": ok_files,
                "broken_seeds": [c.seed for c in files if not c.verdict.ok],
            },
            "ratio": (ok_points / len(points)) / max(ok_files / len(files), 1e-9),
            "ratio_meaning": "share of consistent copies, points over file mode (target: points 100%)",
        },
        {
            "name": f"pgbench TPS (TPC-B, 4 clients, median of {rounds} runs of {seconds} s) with consistency "
            "points every 1 s",
            "unit": "tps",
            "twinsite": {
                "value": on,
                "runs": [round(r["tps"], 1) for r in tps["points"]],
                "file_mode_tps": statistics.median(r["tps"] for r in tps["file"]),
                "file_mode_runs": [round(r["tps"], 1) for r in tps["file"]],
                "rpo_p50_s": _quantile(rpo, 0.5),
                "rpo_p99_s": _quantile(rpo, 0.99),
                "lag_p50_s": _quantile(lag, 0.5),
                "lag_p99_s": _quantile(lag, 0.99),
                "points": counted["points"],
                "wire_bytes_per_point": counted["wire_bytes"] / max(counted["points"], 1),
                "extent_bytes_per_point": counted["extent_bytes"] / max(counted["points"], 1),
                "wire_over_extents": counted["wire_bytes"] / max(counted["extent_bytes"], 1),
            },
            "peer": {
                "name": "the same pgbench with db's replication stopped",
                "value": off,
                "runs": [round(r["tps"], 1) for r in tps["off"]],
            },
            "ratio": on / off,
            "ratio_meaning": "throughput, higher is better (target >= 0.9)",
        },
    ]

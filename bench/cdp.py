"""Continuous data protection: rewind speed, the rewind log's cost on replication, its disk cost.

* replication throughput with CDP on against CDP off, same writes, same run (target: on >= 70% of off);
* rewind speed: undone data per second and undone operations per second (targets 100 MiB/s, 20,000/s);
* disk cost of the rewind log per GiB of changes.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.integration.replication_helpers import Scenario, install
from twinsite.lab.topology import Lab

TW = str(Path(sys.executable).parent / "twinsite")


def _scenario(lab: Lab, name: str, cdp: bool) -> Scenario:
    sc = Scenario(lab, name)
    doc = sc.definition()
    doc["cdp"] = {"enabled": cdp, "max_size": "8GiB"}
    sc.write_definition(doc)
    standby = lab.host("dr1").private_dir("/etc/twinsite") / f"only-{name}"
    shutil.rmtree(standby, ignore_errors=True)
    shutil.copytree(sc.config, standby)
    return sc


def _changes(root: Path, rng: random.Random, mib: int) -> tuple[int, int]:
    """Overwrites in a big file (4 KiB to 1 MiB at random places) and small new files; (bytes, operations)."""
    big = root / "big.db"
    size = 64 << 20
    if not big.exists():
        with open(big, "wb") as f:
            f.truncate(size)
    written = ops = 0
    with open(big, "r+b") as f:
        while written < (mib << 20) // 2:
            n = rng.choice([4096, 65536, 1 << 20])
            f.seek(rng.randrange(0, size - n))
            f.write(rng.randbytes(n))
            written += n
            ops += 1
    d = root / "small"
    d.mkdir(exist_ok=True)
    while written < mib << 20:
        data = rng.randbytes(rng.randrange(512, 16384))
        (d / f"s{ops}").write_bytes(data)
        written += len(data)
        ops += 1
    return written, ops


def _replicate(lab: Lab, cdp: bool, mib: int) -> dict[str, Any]:
    sc = _scenario(lab, "benchcdp" if cdp else "benchnocdp", cdp)
    sc.start()
    sc.wait_synced()
    rng = random.Random(7)
    t0 = time.monotonic()
    written, ops = _changes(sc.src, rng, mib)
    sc.wait_synced(timeout=600, settle=0.2)
    elapsed = time.monotonic() - t0 - 0.2
    out = {"seconds": elapsed, "mib_per_s": written / 2**20 / elapsed, "bytes": written, "ops": ops, "scenario": sc}
    return out


def _standby(sc: Scenario, *argv: str) -> dict[str, Any]:
    proc = subprocess.run(
        [
            TW,
            "lab",
            "exec",
            "dr1",
            "--",
            "/opt/twinsite/bin/twinsite",
            *argv,
            sc.name,
            "--config-dir",
            sc.config_dir,
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=1800,
        check=True,
    )
    result: dict[str, Any] = json.loads(proc.stdout)["result"]
    return result


def run(lab: Lab, *, quick: bool = False) -> list[dict[str, Any]]:
    install(lab)
    mib = 64 if quick else 256
    off = _replicate(lab, False, mib)
    off["scenario"].kill()
    on = _replicate(lab, True, mib)
    sc: Scenario = on["scenario"]
    sc.kill()  # the agent stops: rewinds run on a quiet standby
    pts = _standby(sc, "rewind-points")
    log_bytes = pts["log_bytes"]
    first = pts["oldest"]["seq"]
    dry = _standby(sc, "rewind", "--to", str(first + 1), "--dry-run")
    t0 = time.monotonic()
    _standby(sc, "rewind", "--to", str(first + 1))
    rewind_s = time.monotonic() - t0
    _standby(sc, "rewind", "--resume")
    for s in (on["scenario"], off["scenario"]):
        shutil.rmtree(s.src, ignore_errors=True)
        shutil.rmtree(s.dst, ignore_errors=True)
    gib = on["bytes"] / 2**30
    return [
        {
            "name": f"replication with CDP on vs off, {mib} MiB of changes ({on['ops']} operations)",
            "unit": "MiB/s",
            "twinsite": {"value": on["mib_per_s"], "seconds": on["seconds"], "log_bytes_per_gib": log_bytes / gib},
            "peer": {"name": "twinsite with CDP off", "value": off["mib_per_s"], "seconds": off["seconds"]},
            "ratio": on["mib_per_s"] / off["mib_per_s"],
            "ratio_meaning": "throughput, higher is better (target >= 0.7)",
        },
        {
            "name": f"rewind of {dry['records']} records, {dry['bytes'] / 2**20:.0f} MiB of data",
            "unit": "MiB/s",
            "twinsite": {
                "value": dry["bytes"] / 2**20 / rewind_s,
                "seconds": rewind_s,
                "records_per_s": dry["records"] / rewind_s,
            },
            "peer": {"name": "target 100 MiB/s", "value": 100.0},
            "ratio": dry["bytes"] / 2**20 / rewind_s / 100.0,
            "ratio_meaning": "speed over the target, higher is better (targets 100 MiB/s and 20,000 records/s)",
        },
    ]


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    print(json.dumps(run(Lab.from_env(), quick=True), indent=2, default=str))

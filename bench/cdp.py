"""Continuous data protection: rewind speed, the rewind log's cost on replication, its disk cost.

* replication throughput with CDP on against CDP off, same writes, same run (target: on >= 70% of off);
* rewind speed, from the same rewind log in two steps: undone data per second over overwrites in a big file
  (target 100 MiB/s), files removed per second over new small files, against a plain unlink loop removing as
  many files of the same sizes on the same filesystem in the same run (its limit; target 20,000 records/s);
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

from harness.scenarios import Scenario, install
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


def _overwrites(root: Path, rng: random.Random, nbytes: int) -> tuple[int, int]:
    """Overwrites of 4 KiB to 1 MiB at random places in a 64 MiB file; (bytes, operations)."""
    big = root / "big.db"
    size = 64 << 20
    if not big.exists():
        with open(big, "wb") as f:
            f.truncate(size)
    written = ops = 0
    with open(big, "r+b") as f:
        while written < nbytes:
            n = rng.choice([4096, 65536, 1 << 20])
            f.seek(rng.randrange(0, size - n))
            f.write(rng.randbytes(n))
            written += n
            ops += 1
    return written, ops


def _small_files(root: Path, rng: random.Random, nbytes: int) -> tuple[int, int]:
    """New files of 512 B to 16 KiB; (bytes, files)."""
    d = root / "small"
    d.mkdir(exist_ok=True)
    written = ops = 0
    while written < nbytes:
        data = rng.randbytes(rng.randrange(512, 16384))
        (d / f"s{ops}").write_bytes(data)
        written += len(data)
        ops += 1
    return written, ops


def _replicate(lab: Lab, cdp: bool, mib: int) -> dict[str, Any]:
    """Half the changes as overwrites, then (once those are applied) half as new small files."""
    sc = _scenario(lab, "benchcdp" if cdp else "benchnocdp", cdp)
    sc.start()
    sc.wait_synced()
    rng = random.Random(7)
    t0 = time.monotonic()
    data_bytes, data_ops = _overwrites(sc.src, rng, (mib << 20) // 2)
    between = int(sc.wait_synced(timeout=600, settle=0.2)["acked_seq"])
    file_bytes, files = _small_files(sc.src, rng, (mib << 20) // 2)
    sc.wait_synced(timeout=600, settle=0.2)
    elapsed = time.monotonic() - t0 - 0.4
    written, ops = data_bytes + file_bytes, data_ops + files
    return {
        "seconds": elapsed,
        "mib_per_s": written / 2**20 / elapsed,
        "bytes": written,
        "ops": ops,
        "between": between,
        "scenario": sc,
    }


def _rewind(sc: Scenario, to: int) -> dict[str, Any]:
    """Rewind the quiet standby to seq ``to``: what was undone, the time of the move (as the command reports
    it) and of the whole command (starting Python over ``lab exec``, opening the log, listing the points)."""
    t0 = time.monotonic()
    done = _standby(sc, "rewind", "--to", str(to))
    command = time.monotonic() - t0
    return {
        "records": done["records"],
        "bytes": done["bytes"],
        "paths": len(done["files"]),
        "seconds": done["seconds"],
        "command_seconds": command,
    }


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


UNLINK_LOOP = """
import os, random, subprocess, sys, time
d, n = sys.argv[1], int(sys.argv[2])
os.makedirs(d)
rng = random.Random(7)
for i in range(n):
    with open(f"{d}/s{i}", "wb") as f:
        f.write(rng.randbytes(rng.randrange(512, 16384)))
os.sync()
t0 = time.monotonic()
for i in range(n):
    os.unlink(f"{d}/s{i}")
subprocess.run(["sync", "--file-system", d], check=True)
print(time.monotonic() - t0)
os.rmdir(d)
"""


def _unlink_rate(lab: Lab, files: int) -> float:
    """Files per second a plain loop removes on dr1's /srv (the replica's filesystem), made durable at the end
    (one syncfs, as a rewind makes its steps durable): the same number of files of the same sizes as the
    rewind removed, made and synced first."""
    d = "/srv/benchunlink"
    shutil.rmtree(lab.host("dr1").private_dir("/srv") / "benchunlink", ignore_errors=True)
    proc = subprocess.run(
        [TW, "lab", "exec", "dr1", "--", "python3", "-c", UNLINK_LOOP, d, str(files)],
        capture_output=True,
        text=True,
        timeout=1800,
        check=True,
    )
    return files / float(proc.stdout.split()[-1])


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
    # newest first: undo the small files (operations: each undone creation is an unlink), then the
    # overwrites (data: each undone write puts the old bytes back)
    files = _rewind(sc, on["between"])
    unlinks = _unlink_rate(lab, files["paths"])  # the filesystem's own rate, in the same run
    data = _rewind(sc, pts["oldest"]["seq"] + 1)
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
            "name": f"rewind of overwrites: {data['bytes'] / 2**20:.0f} MiB of old data put back "
            f"({data['records']} records)",
            "unit": "MiB/s",
            "twinsite": {
                "value": data["bytes"] / 2**20 / data["seconds"],
                "seconds": data["seconds"],
                "command_seconds": data["command_seconds"],
                "records_per_s": data["records"] / data["seconds"],
            },
            "peer": {"name": "target", "value": 100.0},
            "ratio": data["bytes"] / 2**20 / data["seconds"] / 100.0,
            "ratio_meaning": "undone data per second over the target of 100 MiB/s, higher is better",
        },
        {
            "name": f"rewind of file creations: {files['paths']} files removed ({files['records']} records)",
            "unit": "files/s",
            "twinsite": {
                "value": files["paths"] / files["seconds"],
                "records_per_s": files["records"] / files["seconds"],
                "seconds": files["seconds"],
                "command_seconds": files["command_seconds"],
            },
            "peer": {"name": "a plain unlink loop on the same filesystem, one syncfs at the end", "value": unlinks},
            "ratio": files["paths"] / files["seconds"] / unlinks,
            "ratio_meaning": "files removed per second over the filesystem's own rate, higher is better (target: "
            "20,000 records/s, or the filesystem's limit)",
        },
    ]


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    print(json.dumps(run(Lab.from_env(), quick=True), indent=2, default=str))

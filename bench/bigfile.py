"""A big sparse file (issue 19): 200 GiB holding 2 GiB of data in 32 places (``--quick``: 20 GiB, 256 MiB in 8),
prod1 -> dr1 over real SSH.

* initial copy: twinsite's initial sync (to ``replicating``, everything acknowledged) against GNU tar with
  ``--sparse`` through ssh (``tar -cS | ssh dr1 tar -xS``: it finds the data with SEEK_DATA/SEEK_HOLE as
  twinsite does, so both read only the data; ``rsync -a --sparse`` would send the holes' zeros through ssh);
* a change: 500 blocks of 4 KiB rewritten at scattered places (some in holes) while the agent runs, until the
  standby has acknowledged them, against tar sending the file again (what a tool without block comparison
  does); twinsite's wire bytes against the bytes changed;
* memory: the agent's peak resident memory over both.

Afterwards the replica is compared with the source where either holds data (the kernel's SEEK_DATA on both,
and the bytes there), and its allocated size with the source's: holes stay holes.
"""

from __future__ import annotations

import os
import random
import shutil
import time
from typing import Any

from bench.replication import _peak_rss_mib, drop_caches, run_until_synced, sh
from harness.scenarios import Scenario, install
from tests.fsops import extents, same_bytes, sparse
from twinsite.lab.topology import Lab


def _require(ok: bool, what: object) -> None:
    if not ok:
        raise RuntimeError(f"benchmark failed: {what}")


def _tar(src_dir: str, name: str, dst_dir: str) -> float:
    """Seconds for ``tar -cS`` of ``src_dir/name`` on prod1 into ``dst_dir`` on dr1 through ssh."""
    t0 = time.monotonic()
    proc = sh(
        "prod1",
        f"tar -C {src_dir} -cSf - {name} | ssh -o BatchMode=yes dr1 'mkdir -p {dst_dir} && tar -C {dst_dir} -xSf -'",
    )
    elapsed = time.monotonic() - t0
    _require(proc.returncode == 0, proc.stderr)
    return elapsed


def run(lab: Lab, *, quick: bool = False) -> list[dict[str, Any]]:
    install(lab)
    size, pieces, piece = (20 << 30, 8, 32 << 20) if quick else (200 << 30, 32, 64 << 20)
    rng = random.Random(19)
    sc = Scenario(lab, "benchbig")
    tar_dst = lab.host("dr1").private_dir("/srv") / "benchbig-tar"
    shutil.rmtree(tar_dst, ignore_errors=True)
    big = sc.src / "huge.img"
    places = sorted(rng.sample(range(size // piece), pieces))
    sparse(big, size, {p * piece: rng.randbytes(piece) for p in places})
    data = pieces * piece
    replica = sc.dst / "huge.img"
    try:
        drop_caches()
        tar_t = _tar("/srv/benchbig", "huge.img", "/srv/benchbig-tar")
        drop_caches()
        tw_t, first = run_until_synced(sc, timeout=3600)
        sync_peak = _peak_rss_mib(b"agent")
        _require(extents(replica) == extents(big), "the replica's data is not where the source's is")
        same_bytes(big, replica)
        changed = 0
        t0 = time.monotonic()
        with open(big, "r+b") as f:
            for _ in range(500):
                f.seek(rng.randrange(0, size - 4096) // 4096 * 4096)
                changed += f.write(rng.randbytes(4096))
        st = sc.wait_synced(timeout=3600, settle=0.5)
        change_t = time.monotonic() - t0 - 0.5
        change_peak = _peak_rss_mib(b"agent")
        sc.kill()
        _require(extents(replica) == extents(big), "after the change, the replica's data is not where the source's is")
        same_bytes(big, replica)
        allocated = (os.stat(big).st_blocks * 512, os.stat(replica).st_blocks * 512)
        shutil.rmtree(tar_dst, ignore_errors=True)
        drop_caches()
        tar_again_t = _tar("/srv/benchbig", "huge.img", "/srv/benchbig-tar")
    finally:
        sc.kill()
        for p in (sc.src, sc.dst, tar_dst):
            shutil.rmtree(p, ignore_errors=True)
    sent = int(st["bytes_sent"]) - int(first["bytes_sent"])
    label = f"{size >> 30} GiB sparse file holding {data >> 20} MiB in {pieces} places"
    return [
        {
            "name": f"initial sync of a {label}",
            "unit": "s",
            "twinsite": {
                "value": tw_t,
                "wire_bytes": int(first["bytes_sent"]),
                "agent_peak_rss_mib": sync_peak,
            },
            "peer": {"name": "tar --sparse through ssh (reads only the data too)", "value": tar_t},
            "ratio": tw_t / tar_t,
            "ratio_meaning": "time, lower is better (target <= 1.0)",
        },
        {
            "name": f"500 scattered 4 KiB writes in the {label}, to acknowledged",
            "unit": "s",
            "twinsite": {
                "value": change_t,
                "wire_bytes": sent,
                "changed_bytes": changed,
                "wire_over_changed": sent / changed,
                "agent_peak_rss_mib": change_peak,
                "source_allocated_bytes": allocated[0],
                "replica_allocated_bytes": allocated[1],
            },
            "peer": {"name": "tar --sparse through ssh, the file again", "value": tar_again_t},
            "ratio": change_t / tar_again_t,
            "ratio_meaning": "time, lower is better (wire bytes <= 1.2x the changed bytes; holes stay holes)",
        },
    ]

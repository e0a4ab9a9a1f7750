"""A WAN path (issue 19): prod1 -> dr1 with a 50 ms round trip and 100 Mbit/s (``twinsite lab wan``: tc tbf for
the rate, a relay on dr1's port 2222 for the delay), twinsite against rsync over the same path in the same run.

* initial copy: 128 MiB (a 96 MiB file and 2,000 small files; ``--quick``: 24 MiB and 200) with twinsite's
  initial sync and with ``rsync -a`` through ``ssh -p 2222``; the share of the link's rate each reaches says
  whether the window in flight fills the link (the path holds 625 KB: 100 Mbit/s x 50 ms);
* a small change: one new 4 KiB file, from written to acknowledged by the standby (twinsite running) against
  ``rsync -a`` of the tree again (what a periodic copy pays to find and send it);
* continuous replication under a load of 4 MiB/s (a third of the link) for 20 s (``--quick``: 8 s): the lag of
  marker files written every 0.25 s, p50 and p99, against lsyncd (continuous rsync over ssh, its default
  delay) through the same path with the same load.

The replica is compared with the source byte for byte afterwards (the harness's tree comparison).
"""

from __future__ import annotations

import shutil
import threading
import time
from typing import Any

from bench.replication import lsyncd_lags, make_data, pct, run_until_synced, sh, write_load
from harness.cli import twinsite_cmd
from harness.scenarios import Scenario, install
from twinsite.lab.topology import Lab

RTT, RATE, RATE_BYTES = "50ms", "100mbit", 100e6 / 8
LOAD = 4 * 2**20  # bytes/s written during the continuous measurement


def _require(ok: bool, what: object) -> None:
    if not ok:
        raise RuntimeError(f"benchmark failed: {what}")


def _rsync(src: str, dst: str) -> float:
    t0 = time.monotonic()
    proc = sh("prod1", f"rsync -a -e 'ssh -p 2222 -o BatchMode=yes' {src}/ dr1:{dst}/")
    _require(proc.returncode == 0, proc.stderr)
    return time.monotonic() - t0


def run(lab: Lab, *, quick: bool = False) -> list[dict[str, Any]]:
    install(lab)
    big, small = (24, 200) if quick else (96, 2000)
    seconds = 8 if quick else 20
    sc = Scenario(lab, "benchwan", ssh_options={"Port": 2222})
    rs_dst = lab.host("dr1").private_dir("/srv") / "benchwan-rsync"
    shutil.rmtree(rs_dst, ignore_errors=True)
    total = make_data(sc.src, big_mib=big, small=small, seed=5)
    on = twinsite_cmd("lab", "wan", "dr1", "--rtt", RTT, "--rate", RATE)
    _require(on.returncode == 0, on.stderr)
    try:
        rs_t = _rsync("/srv/benchwan", "/srv/benchwan-rsync")
        tw_t, first = run_until_synced(sc, timeout=1800)
        sc.assert_equal()
        before = int(sc.status()["acked_seq"])
        t0 = time.monotonic()
        (sc.src / "new-4k").write_bytes(b"n" * 4096)
        while time.monotonic() - t0 < 120:  # until the standby has acknowledged it (and all else planned)
            st = sc.status()
            if int(st["acked_seq"]) > before and st["acked_seq"] == st["planned_seq"] and not st["unsettled"]:
                break
            time.sleep(0.005)
        tw_change = time.monotonic() - t0
        _require(tw_change < 120, "the change was not acknowledged within 120 s")
        lags: list[float] = []
        write_load(sc.src / "live", LOAD, seconds, threading.Event(), lags, sc.dst / "live")
        sc.wait_synced()  # (the last files written may still be settling: sync.planner)
        sc.kill()
        sc.assert_equal()
        shutil.rmtree(sc.src / "live")  # (the periodic copy's peer: the tree as it was, and the new file)
        rs_change = _rsync("/srv/benchwan", "/srv/benchwan-rsync")
        ls_lags = lsyncd_lags(lab, LOAD, seconds, ssh_port=2222)
        _require(len(lags) >= seconds * 3 and len(ls_lags) >= seconds * 3, (len(lags), len(ls_lags)))
    finally:
        sc.kill()
        twinsite_cmd("lab", "wan", "dr1", "--off")
        for p in (sc.src, sc.dst, rs_dst):
            shutil.rmtree(p, ignore_errors=True)
    return [
        {
            "name": f"initial sync of {total / 2**20:.0f} MiB over a WAN path ({RTT} round trip, {RATE})",
            "unit": "s",
            "twinsite": {
                "value": tw_t,
                "share_of_link_rate": total / tw_t / RATE_BYTES,
                "wire_bytes": int(first["bytes_sent"]),
            },
            "peer": {
                "name": "rsync -a over the same path",
                "value": rs_t,
                "share_of_link_rate": total / rs_t / RATE_BYTES,
            },
            "ratio": tw_t / rs_t,
            "ratio_meaning": "time, lower is better (target <= 1.0; the window in flight fills the link)",
        },
        {
            "name": f"one new 4 KiB file to the standby over the WAN path ({RTT}, {RATE})",
            "unit": "s",
            "twinsite": {"value": tw_change},
            "peer": {"name": "rsync -a of the tree again over the same path", "value": rs_change},
            "ratio": tw_change / rs_change,
            "ratio_meaning": "time, lower is better",
        },
        {
            "name": f"continuous, {LOAD / 2**20:.0f} MiB/s of writes for {seconds} s over the WAN path ({RTT}, "
            f"{RATE}): replication lag p50",
            "unit": "s",
            "twinsite": {"value": pct(lags, 0.5), "p99": pct(lags, 0.99), "markers": len(lags)},
            "peer": {
                "name": "lsyncd (default delay, rsyncssh) over the same path",
                "value": pct(ls_lags, 0.5),
                "p99": pct(ls_lags, 0.99),
                "markers": len(ls_lags),
            },
            "ratio": pct(lags, 0.5) / pct(ls_lags, 0.5),
            "ratio_meaning": "lag, lower is better",
        },
    ]

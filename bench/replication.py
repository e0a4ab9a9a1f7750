"""twinsite against rsync (over ssh) and lsyncd on the same data in the same run, between the lab's hosts.

* one replication channel: a 512 MiB file against ``ssh cat`` of it into the same disk (throughput);
* initial sync of ~1 GiB: one large file plus 10,000 small files (time; ratio = twinsite / rsync);
* resync after 1% scattered 4 KiB changes in the large file (time and wire bytes; rsync with its defaults);
* continuous replication at a steady write rate: lag p50/p99 of marker files (lsyncd at its default delay).

Everything runs inside the lab hosts (`twinsite lab exec`), prod1 -> dr1, over real SSH.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from harness.scenarios import Scenario, install
from twinsite.lab.topology import Lab
from twinsite.proc import argv_of

TW = str(Path(sys.executable).parent / "twinsite")


def sh(host: str, script: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TW, "lab", "exec", host, "--", "bash", "-c", script],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def make_data(root: Path, *, big_mib: int, small: int, seed: int = 1) -> int:
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "big.db", "wb") as f:
        for _ in range(big_mib):
            f.write(rng.randbytes(1 << 20))  # incompressible: compression must not flatter either tool
    total = big_mib << 20
    for i in range(small):
        d = root / f"d{i % 100:02d}"
        d.mkdir(exist_ok=True)
        data = rng.randbytes(rng.randrange(1024, 24 * 1024))
        (d / f"f{i:05d}").write_bytes(data)
        total += len(data)
    return total


def scatter(path: Path, fraction: float, seed: int) -> int:
    """Overwrite ``fraction`` of a file's 4 KiB blocks at random places; returns the bytes changed."""
    rng = random.Random(seed)
    size = path.stat().st_size
    blocks = rng.sample(range(size // 4096), int(size // 4096 * fraction))
    with open(path, "r+b") as f:
        for b in blocks:
            f.seek(b * 4096)
            f.write(rng.randbytes(4096))
    return len(blocks) * 4096


def rsync(src: str, dst: str, *extra: str) -> tuple[float, int]:
    t0 = time.monotonic()
    proc = sh("prod1", f"rsync -a --stats {' '.join(extra)} -e 'ssh -o BatchMode=yes' {src}/ dr1:{dst}/")
    elapsed = time.monotonic() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"rsync failed: {proc.stderr}")
    sent = int(re.search(r"Total bytes sent: ([\d,]+)", proc.stdout).group(1).replace(",", ""))  # type: ignore[union-attr]
    return elapsed, sent


def run_until_synced(sc: Scenario, timeout: float = 1800) -> tuple[float, dict[str, Any]]:
    """Start the agent: the seconds until it is replicating with everything acknowledged, and its status then."""
    t0 = time.monotonic()
    sc.start()
    st = sc.wait_synced(timeout=timeout, settle=0.5)
    return time.monotonic() - t0 - 0.5, st


def twinsite_sync(sc: Scenario) -> tuple[float, int]:
    elapsed, st = run_until_synced(sc)
    return elapsed, int(st["bytes_sent"])


def drop_caches() -> None:
    subprocess.run(["sync"], check=False)
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def initial_and_resync(lab: Lab, quick: bool) -> list[dict[str, Any]]:
    big, small = (64, 1000) if quick else (896, 10_000)
    sc = Scenario(lab, "benchsync")
    total = make_data(sc.src, big_mib=big, small=small)
    rs_dst = lab.host("dr1").private_dir("/srv") / "benchrsync"
    shutil.rmtree(rs_dst, ignore_errors=True)
    drop_caches()
    rs_t, rs_bytes = rsync("/srv/benchsync", "/srv/benchrsync")
    # rsync leaves what it wrote in the page cache; twinsite acknowledges only what is on disk. For
    # context, rsync made durable too (its --fsync): not the target's peer, reported beside it.
    drop_caches()
    rs_durable_dst = lab.host("dr1").private_dir("/srv") / "benchrsyncfsync"
    shutil.rmtree(rs_durable_dst, ignore_errors=True)
    rs_durable_t, _ = rsync("/srv/benchsync", "/srv/benchrsyncfsync", "--fsync")
    shutil.rmtree(rs_durable_dst, ignore_errors=True)
    drop_caches()
    try:
        tw_t, tw_bytes = twinsite_sync(sc)
        sc.assert_equal()
    finally:
        sc.kill()
    out = [
        {
            "name": f"initial sync, {total / 2**20:.0f} MiB ({big} MiB file + {small} small files)",
            "unit": "s",
            "twinsite": {"value": tw_t, "wire_bytes": tw_bytes},
            "peer": {"name": "rsync -a over ssh", "value": rs_t, "wire_bytes": rs_bytes},
            "peer_durable": {"name": "rsync -a --fsync over ssh", "value": rs_durable_t},
            "ratio": tw_t / rs_t,
            "ratio_durable": tw_t / rs_durable_t,
            "ratio_meaning": "time, lower is better for twinsite (target <= 1.0)",
        }
    ]
    changed = scatter(sc.src / "big.db", 0.01, seed=2)
    rs_t, rs_bytes = rsync("/srv/benchsync", "/srv/benchrsync")
    try:
        tw_t, tw_bytes = twinsite_sync(sc)
        sc.assert_equal()
    finally:
        sc.kill()
    out.append(
        {
            "name": f"resync after 1% scattered 4 KiB changes ({changed / 2**20:.1f} MiB) in the {big} MiB file",
            "unit": "s",
            "twinsite": {"value": tw_t, "wire_bytes": tw_bytes, "wire_over_changed": tw_bytes / changed},
            "peer": {
                "name": "rsync -a (defaults)",
                "value": rs_t,
                "wire_bytes": rs_bytes,
                "wire_over_changed": rs_bytes / changed,
            },
            "ratio": tw_t / rs_t,
            "ratio_meaning": "time, lower is better (target <= 1.0; wire bytes target <= 1.2x the changed bytes)",
        }
    )
    shutil.rmtree(sc.src, ignore_errors=True)
    shutil.rmtree(sc.dst, ignore_errors=True)
    shutil.rmtree(rs_dst, ignore_errors=True)
    return out


def write_load(root: Path, rate: float, seconds: float, stop: threading.Event, lags: list[float], dst: Path) -> None:
    """Write ``rate`` bytes/s as 256 KiB appends to 64 rotating files of up to 4 MiB (a log- or
    spool-like load), and a marker file every 0.25 s whose arrival on ``dst`` is timed."""
    chunk = os.urandom(256 * 1024)
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    written, n = 0, 0
    pending: dict[str, tuple[float, bytes]] = {}
    next_marker = t0
    while time.monotonic() - t0 < seconds and not stop.is_set():
        now = time.monotonic()
        if written < rate * (now - t0):
            k = written // len(chunk)
            with open(root / f"load{k % 64}", "ab" if (k // 64) % 16 else "wb") as f:
                f.write(chunk)
            written += len(chunk)
        if now >= next_marker:
            token = os.urandom(16)
            name = f"marker{n}"
            (root / name).write_bytes(token)
            pending[name] = (time.monotonic(), token)
            next_marker = now + 0.25
            n += 1
        _arrivals(pending, dst, lags)
        time.sleep(0.001)
    deadline = time.monotonic() + 60
    while pending and time.monotonic() < deadline:
        _arrivals(pending, dst, lags)
        time.sleep(0.002)


def _arrivals(pending: dict[str, tuple[float, bytes]], dst: Path, lags: list[float]) -> None:
    """Time the markers that have arrived on the replica with the right content."""
    for name, (t, token) in list(pending.items()):
        try:
            if (dst / name).read_bytes() == token:
                lags.append(time.monotonic() - t)
                del pending[name]
        except FileNotFoundError:
            pass


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * p))] if s else float("nan")


def continuous(lab: Lab, quick: bool) -> list[dict[str, Any]]:
    seconds = 10 if quick else 20
    rate = 20 * 2**20
    sc = Scenario(lab, "benchlive")
    sc.start()
    sc.wait_synced()
    lags: list[float] = []
    cpu0 = _cpu_of(b"agent")
    write_load(sc.src, rate, seconds, threading.Event(), lags, sc.dst)
    cpu = _cpu_of(b"agent") - cpu0
    peak = {"agent_peak_rss_mib": _peak_rss_mib(b"agent"), "receiver_peak_rss_mib": _peak_rss_mib(b"receive")}
    highest = _highest_bounded_rate(sc, quick)
    sc.kill()
    tw = {
        "p50": pct(lags, 0.5),
        "p99": pct(lags, 0.99),
        "markers": len(lags),
        "agent_cpu_s_per_gib": cpu / (rate * seconds / 2**30),
        **peak,
        "highest_bounded_rate_mib_s": highest,
    }
    # lsyncd at its default settings, replicating the same kind of load between the same hosts
    ls_lags = lsyncd_lags(lab, rate, seconds)
    for p in (sc.src, sc.dst):
        shutil.rmtree(p, ignore_errors=True)
    ls = {"p50": pct(ls_lags, 0.5), "p99": pct(ls_lags, 0.99), "markers": len(ls_lags)}
    return [
        {
            "name": f"continuous, {rate / 2**20:.0f} MiB/s of writes for {seconds} s: replication lag p50",
            "unit": "s",
            "twinsite": {"value": tw["p50"], **tw},
            "peer": {
                "name": "lsyncd (default delay, rsyncssh)",
                "value": ls["p50"],
                **ls,
            },
            "ratio": tw["p50"] / ls["p50"] if ls["p50"] == ls["p50"] and ls["p50"] else float("nan"),
            "ratio_meaning": "lag, lower is better (targets: p50 <= 0.1 s, p99 <= 1 s)",
        }
    ]


def lsyncd_lags(lab: Lab, rate: float, seconds: float, *, ssh_port: int | None = None) -> list[float]:
    """Marker lags of :func:`write_load` replicated by lsyncd at its default settings (rsyncssh, its 15 s
    delay) from prod1's /srv/benchlsync to dr1's (``ssh_port``: through that port of dr1)."""
    ls_src, ls_dst = (
        lab.host("prod1").private_dir("/srv") / "benchlsync",
        lab.host("dr1").private_dir("/srv") / "benchlsync",
    )
    for p in (ls_src, ls_dst):
        shutil.rmtree(p, ignore_errors=True)
        p.mkdir(parents=True)
    conf = lab.host("prod1").private_dir("/etc/twinsite") / "lsyncd.lua"
    port = f", ssh = {{ port = {ssh_port} }}" if ssh_port else ""
    conf.write_text(
        'settings { nodaemon = true, logfile = "/var/lib/twinsite/lsyncd.log" }\n'
        f'sync {{ default.rsyncssh, source = "/srv/benchlsync", host = "dr1", targetdir = "/srv/benchlsync"{port} }}\n'
    )
    lsyncd = subprocess.Popen(
        [TW, "lab", "exec", "prod1", "--", "lsyncd", "/etc/twinsite/lsyncd.lua"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(3)
        lags: list[float] = []
        write_load(ls_src, rate, seconds, threading.Event(), lags, ls_dst)
    finally:
        lsyncd.terminate()
        lsyncd.wait(timeout=30)
        for p in (ls_src, ls_dst):
            shutil.rmtree(p, ignore_errors=True)
    return lags


def _highest_bounded_rate(sc: Scenario, quick: bool) -> float:
    """The highest write rate (doubling from 20 MiB/s) at which marker lag p99 stays within 1 s."""
    best = 0.0
    rate = 20.0
    while rate <= 320:
        lags: list[float] = []
        write_load(sc.src, rate * 2**20, 4 if quick else 8, threading.Event(), lags, sc.dst)
        if not lags or pct(lags, 0.99) > 1.0:
            break
        best = rate
        rate *= 2
    return best


def _twinsite_pids(word: bytes, within: set[int] | None = None) -> list[int]:
    """Running twinsite processes with ``word`` in their argv (only those in ``within``, when given)."""
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit() and (within is None or int(pid) in within):
            argv = argv_of(int(pid)) or []
            if word in argv and any(b"twinsite" in a for a in argv):
                out.append(int(pid))
    return out


def _peak_rss_mib(word: bytes, within: set[int] | None = None) -> float:
    """The largest peak resident memory (VmHWM) among running twinsite processes running ``word``."""
    peak = 0
    for pid in _twinsite_pids(word, within):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except FileNotFoundError:
            continue
    return round(peak / 1024, 1)


def _cpu_of(word: bytes, within: set[int] | None = None) -> float:
    """CPU seconds (user and system) used so far by the running twinsite processes running ``word``."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in _twinsite_pids(word, within):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (FileNotFoundError, IndexError, ValueError):
            continue
    return total


def one_channel(lab: Lab, quick: bool, runs: int = 3) -> list[dict[str, Any]]:
    """One file through one replication channel against ``ssh cat`` of the same file into the same disk, made
    durable there too (``sync -f``: twinsite acknowledges only what is on disk), both from a cold cache; the
    median of ``runs`` runs in turn (the lab's disk varies by a third from one run to the next)."""
    mib = 64 if quick else 512
    cats: list[float] = []
    ours: list[float] = []
    wire = 0
    for _ in range(runs):
        sc = Scenario(lab, "benchchannel")
        make_data(sc.src, big_mib=mib, small=0, seed=3)
        drop_caches()
        t0 = time.monotonic()
        proc = sh(
            "prod1",
            "cat /srv/benchchannel/big.db | ssh -o BatchMode=yes dr1 'cat >/srv/c.tmp && sync -f /srv/c.tmp'",
        )
        cats.append(time.monotonic() - t0)
        (lab.host("dr1").private_dir("/srv") / "c.tmp").unlink(missing_ok=True)
        if proc.returncode != 0:
            raise RuntimeError(f"ssh cat failed: {proc.stderr}")
        drop_caches()
        try:
            tw_t, wire = twinsite_sync(sc)
            ours.append(tw_t)
            sc.assert_equal()
        finally:
            sc.kill()
        shutil.rmtree(sc.src, ignore_errors=True)
        shutil.rmtree(sc.dst, ignore_errors=True)
    tw_t, cat_t = sorted(ours)[runs // 2], sorted(cats)[runs // 2]
    return [
        {
            "name": f"one replication channel, a {mib} MiB file (initial sync, cold cache, durable; median of {runs})",
            "unit": "MiB/s",
            "twinsite": {
                "value": mib / tw_t,
                "seconds": tw_t,
                "runs_s": [round(t, 2) for t in ours],
                "wire_bytes": wire,
            },
            "peer": {
                "name": "ssh cat of the file into the same disk, then sync -f",
                "value": mib / cat_t,
                "seconds": cat_t,
                "runs_s": [round(t, 2) for t in cats],
            },
            "ratio": cat_t / tw_t,
            "ratio_meaning": "throughput, higher is better (target >= 0.7 of ssh cat)",
        }
    ]


def run(lab: Lab, *, quick: bool = False) -> list[dict[str, Any]]:
    install(lab)
    return one_channel(lab, quick) + initial_and_resync(lab, quick) + continuous(lab, quick)


if __name__ == "__main__":
    print(json.dumps(run(Lab.from_env(), quick="--quick" in sys.argv), indent=2))

"""A million files (issue 19): the initial copy, a restart, and memory, against rsync and lsyncd on the same tree
in the same run, prod1 -> dr1 over real SSH.

The tree: 1,000,000 small files (16 bytes each, all different) in 1,000 directories (``--quick``: 100,000).

* initial copy: twinsite's initial sync (to ``replicating``, everything acknowledged) against ``rsync -a``
  over ssh into an empty directory;
* restart: the agent killed (SIGKILL) and started again, the time until it is ``replicating`` with nothing
  left to acknowledge, and what it sent meanwhile (a resume must not send the data again), against lsyncd's
  startup on the same tree (lsyncd too must walk and watch everything, then rsync the whole tree before it
  is in its normal state: its log says "Startup of ... finished");
* memory: the agent's peak resident memory over the initial sync and over the restart, per million files;
* the walk's floor: a restart must look at every path (a change made while the agent was down leaves no other
  trace on filesystems without a change journal), so the restart is also set against ``find`` over the same
  tree from a cold page cache, once in one process and once in 16 processes over the top directories (what
  the machine's cores can get out of the filesystem): the filesystem's own limit, measured in the same run.

Afterwards the replica is compared with the source by ``rsync -a --omit-dir-times --dry-run --itemize-changes``
(sizes, file times, modes, owners: any difference is a line; directories' mtimes are not replicated, by
design), a check from outside twinsite's code.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.replication import TW, _peak_rss_mib, drop_caches, rsync, run_until_synced, sh
from harness.scenarios import Scenario, install
from twinsite.lab.topology import Lab


def _require(ok: bool, what: object) -> None:
    if not ok:
        raise RuntimeError(f"benchmark failed: {what}")


def make_tree(root: Path, files: int) -> None:
    """``files`` files of 16 bytes (each different) in directories of 1,000."""
    for d in range(files // 1000):
        top = root / f"d{d:04d}"
        top.mkdir(parents=True)
        for i in range(1000):
            (top / f"f{i:04d}").write_bytes(f"{d:07d}-{i:08d}".encode())


def _lsyncd_startup(lab: Lab, src: str, dst: str) -> float:
    """Seconds from lsyncd's start until its startup sync of ``src`` to dr1:``dst`` is finished."""
    log = lab.host("prod1").private_dir("/var/lib/twinsite") / "lsyncd-million.log"
    log.unlink(missing_ok=True)
    conf = lab.host("prod1").private_dir("/etc/twinsite") / "lsyncd-million.lua"
    conf.write_text(
        'settings { nodaemon = true, logfile = "/var/lib/twinsite/lsyncd-million.log", '
        "maxDelays = 1000, insist = false }\n"
        f'sync {{ default.rsyncssh, source = "{src}", host = "dr1", targetdir = "{dst}" }}\n'
    )
    started = time.monotonic()
    proc = subprocess.Popen(
        [TW, "lab", "exec", "prod1", "--", "lsyncd", "/etc/twinsite/lsyncd-million.lua"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while time.monotonic() - started < 3600:
            text = log.read_text(errors="replace") if log.exists() else ""
            if re.search(r"Startup of .* finished", text):
                return time.monotonic() - started
            _require(proc.poll() is None, f"lsyncd ended: {text[-2000:]}")
            time.sleep(0.2)
        raise RuntimeError("benchmark failed: lsyncd's startup did not finish within an hour")
    finally:
        proc.terminate()
        proc.wait(timeout=60)


#: find over a tree: every path's metadata read, as a restart must (stat), nothing else
_FIND = "find {} -printf '%T@ %s\\n' >/dev/null"
_FIND_PARALLEL = (
    "find {} -mindepth 1 -maxdepth 1 -print0 | "
    'xargs -0 -P 16 -n 16 sh -c \'exec find "$@" -printf "%T@ %s\\n"\' sh >/dev/null'
)


def _cold_walk(script: str) -> float:
    """Seconds ``script`` takes on prod1 from a cold page cache."""
    drop_caches()
    t0 = time.monotonic()
    proc = sh("prod1", script)
    elapsed = time.monotonic() - t0
    _require(proc.returncode == 0, proc.stderr)
    return elapsed


def _differences(src: str, dst: str) -> list[str]:
    argv = "rsync -a --omit-dir-times --dry-run --itemize-changes --delete -e 'ssh -o BatchMode=yes'"
    proc = sh("prod1", f"{argv} {src}/ dr1:{dst}/")
    _require(proc.returncode == 0, proc.stderr)
    return [line for line in proc.stdout.splitlines() if line.strip()]


def run(lab: Lab, *, quick: bool = False) -> list[dict[str, Any]]:
    install(lab)
    files = 100_000 if quick else 1_000_000
    per_million = 1_000_000 / files
    sc = Scenario(lab, "benchmillion")
    rs_dst = lab.host("dr1").private_dir("/srv") / "benchmillion-rsync"
    shutil.rmtree(rs_dst, ignore_errors=True)
    t0 = time.monotonic()
    make_tree(sc.src, files)
    made = time.monotonic() - t0
    try:
        drop_caches()
        rs_t, _ = rsync("/srv/benchmillion", "/srv/benchmillion-rsync")
        drop_caches()
        tw_t, first = run_until_synced(sc, timeout=3600)
        sync_peak = _peak_rss_mib(b"agent")
        sc.kill()
        drop_caches()
        restart_t, again = run_until_synced(sc, timeout=3600)
        restart_peak = _peak_rss_mib(b"agent")
        sc.kill()
        diffs = _differences("/srv/benchmillion", "/srv/benchmillion")
        _require(diffs == [], f"{len(diffs)} differences, first: {diffs[:5]}")
        walk_t = _cold_walk(_FIND.format("/srv/benchmillion"))
        walk_par_t = _cold_walk(_FIND_PARALLEL.format("/srv/benchmillion"))
        drop_caches()
        ls_t = _lsyncd_startup(lab, "/srv/benchmillion", "/srv/benchmillion-rsync")
    finally:
        sc.kill()
        for p in (sc.src, sc.dst, rs_dst):
            shutil.rmtree(p, ignore_errors=True)
    resent = int(again["bytes_sent"])
    return [
        {
            "name": f"initial sync of {files:,} small files in {files // 1000:,} directories",
            "unit": "s",
            "twinsite": {
                "value": tw_t,
                "files_per_s": files / tw_t,
                "agent_peak_rss_mib": sync_peak,
                "agent_peak_rss_mib_per_million_files": sync_peak * per_million,
                "wire_bytes": first["bytes_sent"],
                "tree_made_in_s": made,
            },
            "peer": {"name": "rsync -a over ssh", "value": rs_t},
            "ratio": tw_t / rs_t,
            "ratio_meaning": "time, lower is better (target <= 1.0; memory <= 200 MiB per million files)",
        },
        {
            "name": f"restart (agent killed) to replicating, {files:,} files",
            "unit": "s",
            "twinsite": {
                "value": restart_t,
                "agent_peak_rss_mib": restart_peak,
                "agent_peak_rss_mib_per_million_files": restart_peak * per_million,
                "bytes_sent_after_restart": resent,
                "records_after_restart": int(again["acked_seq"]) - int(first["acked_seq"]),
            },
            "peer": {"name": "lsyncd startup (walk, watch, initial rsync) on the same tree", "value": ls_t},
            "ratio": restart_t / ls_t,
            "ratio_meaning": "time, lower is better (target <= 0.1; nothing resent)",
        },
        {
            "name": f"restart against the filesystem's own walk of {files:,} files (cold page cache)",
            "unit": "s",
            "twinsite": {"value": restart_t},
            "peer": {
                "name": "find -printf (every path's stat), one process",
                "value": walk_t,
                "in_16_processes_s": walk_par_t,
                "in_16_processes_over_lsyncd_startup": walk_par_t / ls_t,
            },
            "ratio": restart_t / walk_t,
            "ratio_meaning": "time, lower is better (a restart that looks at every path cannot go below the walk)",
        },
    ]

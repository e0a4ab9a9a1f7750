"""Issue 17's oracle in CI: PostgreSQL under pgbench's TPC-B load (4 clients, a CHECKPOINT every 1-3 s) on
prod1, replicated to dr1 with consistency points; prod1's site is cut at seeded random moments, and each time
dr1's replica is taken at its last complete point (as an unplanned switchover takes it) and judged by
PostgreSQL itself: it must start (crash recovery), pg_amcheck --heapallindexed must find nothing (data
checksums are on), the TPC-B balances must agree, and the transactions present must be each client's
committed prefix as of the point's snapshot (harness.pgoracle). `python -m bench consistency` runs fifty
cuts, and file mode beside them."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.cuts import declare, one_cut, settled, workload
from harness.db import prepare_db
from harness.hosts import twinsite_on
from harness.pgoracle import Checkpointer, init_workload, pgbench_argv, write_script
from harness.points import held_point, rsync_differences
from twinsite.lab import pg
from twinsite.lab.topology import Lab

pytestmark = pytest.mark.lab

SEEDS = range(1700, 1710)  # 10 cuts (each seed: the load's length before the cut, the checkpoints' rhythm)


@pytest.fixture
def work() -> Iterator[Path]:
    """Where pgbench's logs and the copies go (readable by the postgres user, unlike pytest's tmp_path)."""
    path = Path(tempfile.mkdtemp(prefix="twinsite-consistency-", dir="/var/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_every_cut_leaves_dr1_a_crash_consistent_point(lab: Lab, work: Path) -> None:
    prepare_db(lab)
    declare(lab, "points")
    db = workload(lab)
    failed = []
    for seed in SEEDS:
        cut = one_cut(lab, db, seed=seed, mode="points", work=work)
        print(cut.line())
        assert sum(cut.verdict.found.values()) > 0, f"seed {seed}: no transaction reached dr1"
        if not cut.verdict.ok:
            failed.append(cut.line())
    assert not failed, "broken copies (seeds to rerun):\n" + "\n".join(failed)


KILL_SEEDS = range(1720, 1723)  # 3 cuts, each after 2 kill -9 of prod1's agent or dr1's receiver


def test_kill_9_of_agent_and_receiver_during_the_load_never_leaves_dr1_off_a_point(lab: Lab, work: Path) -> None:
    """SIGKILL at seeded moments, between and inside points: prod1's agent (its snapshots, its journal and a
    resync after it comes back) or dr1's receiver (a point half applied, its undo kept, the session gone).
    Then the cut: dr1's last complete point must still be one PostgreSQL accepts as a crash image."""
    prepare_db(lab)
    declare(lab, "points")
    db = workload(lab)
    failed = []
    killed = set()
    for seed in KILL_SEEDS:
        cut = one_cut(lab, db, seed=seed, mode="points", work=work, kills=2)
        print(cut.line())
        killed.update(cut.killed)
        assert sum(cut.verdict.found.values()) > 0, f"seed {seed}: no transaction reached dr1"
        if not cut.verdict.ok:
            failed.append(cut.line())
    assert not failed, "broken copies (seeds to rerun):\n" + "\n".join(failed)
    assert killed == {"agent", "receiver"}, f"the seeds killed only {killed}"


def test_verify_under_load_compares_dr1s_last_complete_point_with_its_snapshot(lab: Lab, work: Path) -> None:
    """`twinsite verify` while pgbench writes: dr1 is held at its last complete point (spooling meanwhile) and
    compared with the snapshot prod1 made of it. Judged from outside our code too: with the same hold and pin
    taken by hand, `rsync -a -c` finds nothing to change between prod1's snapshot and dr1's replica."""
    prepare_db(lab)
    declare(lab, "points")
    db = workload(lab)
    init_workload(pg.bin_dir(), db, scale=1)
    settled(lab, "points")
    script = write_script(work / "tpcb.sql")
    bench = subprocess.Popen(
        pgbench_argv(pg.bin_dir(), db, script, work / "pgbench", duration=40),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=work,
    )
    checkpoints = Checkpointer(db.connect, seed=17)
    checkpoints.start()
    try:
        time.sleep(3)
        seen = []
        for _ in range(3):
            body = twinsite_on(lab, "prod1", "verify", "db", timeout=120)
            assert body["ok"], body
            (report,) = body["result"]["roots"]
            assert report["equal"] and report["entries"] > 1000, report
            seen.append(report["point"]["id"])
            assert _rsync_finds_nothing(lab), "rsync -c found differences at a held point"
            assert bench.poll() is None, "pgbench ended before the comparisons did"
        assert seen == sorted(set(seen)), f"the same point twice, or out of order: {seen}"
    finally:
        checkpoints.stop()
        bench.wait(timeout=120)
    assert checkpoints.done, "no CHECKPOINT ran during the comparisons"
    settled(lab, "points")  # (let go: dr1 applied what it spooled)


def _rsync_finds_nothing(lab: Lab) -> bool:
    """Hold dr1 at its point and pin prod1's snapshots as verify does, and let rsync judge every file, link and
    name by content (-c) and attributes."""
    with held_point(lab, "db", "/srv/db") as h:
        excluded = ["/postgresql.log", "/data/postmaster.pid", "/data/postmaster.opts", "/data/.s.PGSQL.*"]
        found = rsync_differences(h, excluded)
    print("rsync:", found[:20])
    return not found

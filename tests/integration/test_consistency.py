"""Issue 17's oracle in CI: PostgreSQL under pgbench's TPC-B load (4 clients, a CHECKPOINT every 1-3 s) on
prod1, replicated to dr1 with consistency points; prod1's site is cut at seeded random moments, and each time
dr1's replica is taken at its last complete point (as an unplanned switchover takes it) and judged by
PostgreSQL itself: it must start (crash recovery), pg_amcheck --heapallindexed must find nothing (data
checksums are on), the TPC-B balances must agree, and the transactions present must be each client's
committed prefix as of the point's snapshot (harness.pgoracle). `python -m bench consistency` runs fifty
cuts, and file mode beside them."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.cuts import declare, one_cut, workload
from harness.db import prepare_db
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

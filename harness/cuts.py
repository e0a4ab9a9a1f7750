"""Issue 17's oracle on the lab: pgbench's TPC-B load (harness.pgoracle) on prod1's PostgreSQL, replicated by
the `db` scenario, prod1's site cut at a seeded moment, dr1's replica taken as an unplanned switchover takes
it, and the copy judged by PostgreSQL itself (crash recovery, pg_amcheck, the TPC-B balances, each client's
committed prefix).

With consistency points the replica is taken at its last complete point (``cdp.rewind.to_point``, what the
switchover runs under the same lock), and judged as of that point's snapshot; in file mode it is taken as it
stands, and judged as of the last change it applied. Used by tests/integration/test_consistency.py (a few
cuts) and ``python -m bench consistency`` (fifty, and file mode beside them)."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.db import scenario_file, wait_replicating
from harness.hosts import agent_log, kill_receivers, log_size, wait_logged
from harness.pgoracle import (
    DEFAULT_SLACK,
    Checkpointer,
    Database,
    Verdict,
    init_workload,
    judge,
    parse_logs,
    pgbench_argv,
    write_script,
)
from twinsite import lab as labmod
from twinsite.cdp.rewind import to_point
from twinsite.lab import pg
from twinsite.lab.topology import Lab
from twinsite.locks import held
from twinsite.proc import read_pid
from twinsite.state import applied, sender_status
from twinsite.state.layout import HostState, ScenarioState


@dataclass
class Cut:
    seed: int
    mode: str  # points | file
    load_seconds: float  # of load before the cut
    cut_at: float
    judged_at: float  # the source time the copy is judged as of (the point's snapshot, or the last change)
    slack: float
    undone: int  # records of the open point undone before the copy
    verdict: Verdict
    killed: tuple[str, ...] = ()  # what was killed with SIGKILL during the load, in order ("agent", "receiver")

    def line(self) -> str:
        found = sum(self.verdict.found.values())
        kills = f", after kill -9 of {' then '.join(self.killed)}" if self.killed else ""
        return (
            f"seed {self.seed} ({self.mode}): cut after {self.load_seconds:.2f} s of load{kills}, copy as of "
            f"{self.cut_at - self.judged_at:.2f} s before the cut, {self.undone} record(s) of the open point "
            f"undone, {found} transactions present: {self.verdict}"
        )


def kill_9(lab: Lab, victim: str) -> int:
    """SIGKILL to prod1's agent (its supervisor starts it again) or to every `twinsite receive` of db on dr1
    (the sender reconnects); how many processes were killed."""
    if victim != "agent":
        return kill_receivers(lab, "db")
    pid = read_pid(HostState(lab.host("prod1").private_dir("/var/lib/twinsite")).agent_pid, argv_has="agent")
    if pid is None:
        return 0
    with contextlib.suppress(ProcessLookupError):  # (it may have exited meanwhile)
        os.kill(pid, signal.SIGKILL)
    return 1


def workload(lab: Lab) -> Database:
    """The workload's database on prod1's PostgreSQL, reached over the lab network (made by each cut)."""
    return Database(host=lab.host("prod1").address, port=pg.PORT)


def _dr1(lab: Lab) -> tuple[Path, Any]:
    recv = ScenarioState(lab.host("dr1").private_dir("/var/lib/twinsite"), "db").receiver(0)
    return lab.host("dr1").private_dir("/srv") / "db", recv


def settled(lab: Lab, mode: str, timeout: float = 180) -> None:
    """Until prod1 replicates db with everything acknowledged (and, with points, a point acknowledged)."""
    wait_replicating(lab, "prod1", timeout=timeout)
    if mode == "points":
        status = ScenarioState(lab.host("prod1").private_dir("/var/lib/twinsite"), "db").sender(0, "dr1").status
        st = sender_status.read(status)
        if st is None or st.point_id is None:
            raise AssertionError(f"prod1 replicates db but dr1 acknowledged no point: {st}")


def one_cut(lab: Lab, db: Database, *, seed: int, mode: str, work: Path, kills: int = 0) -> Cut:
    """A fresh workload replicated; load, cut prod1's site at a seeded moment, take dr1's replica, heal, let
    pgbench end, judge the copy. (Fresh: each client numbers its transactions from 1 in every run.) With
    ``kills``, that many kill -9 of prod1's agent or dr1's receiver at seeded moments of the load first."""
    init_workload(pg.bin_dir(), db, scale=1)
    settled(lab, mode)
    rng = random.Random(seed)  # noqa: S311 (a seeded moment, not a secret)
    load = rng.uniform(3.0, 8.0)
    if kills:
        load += 6.0 * kills  # (time for the agent to come back and to make points again after each)
    moments = sorted(rng.uniform(0.5, load - 2.0) for _ in range(kills))
    victims = [rng.choice(("agent", "receiver")) for _ in moments]
    run = Path(tempfile.mkdtemp(prefix=f"cut-{seed}-", dir=work))
    run.chmod(0o755)  # (the judge's server runs as postgres)
    script = write_script(run / "tpcb.sql")
    argv = pgbench_argv(pg.bin_dir(), db, script, run / "pgbench", duration=int(load) + 10)
    out = open(run / "pgbench.out", "wb")  # noqa: SIM115 (closed below)
    bench = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=run)
    checkpoints = Checkpointer(db.connect, seed=seed)
    checkpoints.start()
    root, recv = _dr1(lab)
    copy = run / "data"
    killed: list[str] = []
    try:
        began = time.monotonic()
        for at, victim in zip(moments, victims, strict=True):
            time.sleep(max(0.0, began + at - time.monotonic()))
            if kill_9(lab, victim):
                killed.append(victim)
        time.sleep(max(0.0, began + load - time.monotonic()))  # (a length of load: the cut's moment is seeded)
        labmod.cut(lab, "prod1")
        cut_at = time.time()
        with held(recv.apply_lock):  # (the receiver applies nothing while the copy is taken)
            head = applied.read(recv.applied)
            point = to_point(root, recv) if mode == "points" else None
            shutil.copytree(root / "data", copy, symlinks=True)
        if mode == "points":
            if point is None:
                raise AssertionError(f"seed {seed}: dr1 has no complete point of db")
            begun = point.id / 1000  # the snapshot holds an instant between its asking and its being there
            judged_at, slack = (begun + point.ts) / 2, (point.ts - begun) / 2 + DEFAULT_SLACK
            undone = head.seq - point.seq
        else:
            judged_at, slack, undone = head.ts, DEFAULT_SLACK, 0
    finally:
        labmod.heal(lab, "prod1")
        try:
            bench.wait(timeout=load + 120)
        finally:
            bench.kill()
            out.close()
            checkpoints.stop()
    verdict = judge(copy, parse_logs(run / "pgbench"), judged_at, pg_bin=pg.bin_dir(), slack=slack)
    shutil.rmtree(copy)
    return Cut(seed, mode, round(load, 3), cut_at, judged_at, round(slack, 3), undone, verdict, tuple(killed))


def declare(lab: Lab, mode: str) -> None:
    """db replicated with ``mode`` on both hosts (file mode with the acknowledgement a database needs);
    returns once prod1's agent restarted its sender with it."""
    log = agent_log(lab, "prod1")
    end = log_size(log)
    changed = False
    for h in ("prod1", "dr1"):
        f = scenario_file(lab, h)
        doc = yaml.safe_load(f.read_text())
        rep = doc.setdefault("replication", {})
        want = {"consistency": mode, "accept_torn_database_copies": True} if mode == "file" else {"consistency": mode}
        new = {**{k: v for k, v in rep.items() if k != "accept_torn_database_copies"}, **want}
        if new != rep:
            doc["replication"] = new
            f.write_text(yaml.safe_dump(doc, sort_keys=False))
            changed = True
    if changed:
        wait_logged(log, "twinsite agent: started db/0/dr1/", after=end, timeout=60)

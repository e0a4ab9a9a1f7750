"""The crash-consistency oracle of issue 17 (harness.pgoracle) against a real local cluster, no lab.

One seeded run: the TPC-B workload on 4 clients with a CHECKPOINT every 1-3 s, pgbench_accounts' heap copied
while it runs, then every process of the server killed at once at a seeded moment; the directory it left is
the crash image. A copy of the image must be judged consistent, with every client's transactions found; a
copy damaged as a torn file-by-file copy would be (an older accounts heap beside newer WAL and pg_control,
the WAL's end lost) must not be, naming the check that failed; a copy whose pg_control is garbage did not
start. The prefix check's own logic is tested on made-up numbers and logs, without a server."""

from __future__ import annotations

import os
import pwd
import random
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.pgoracle import (
    DEFAULT_SLACK,
    Checkpointer,
    Database,
    Server,
    Txn,
    init_workload,
    judge,
    parse_logs,
    pgbench_argv,
    prefix_findings,
    write_script,
)
from harness.wait import eventually
from twinsite.proc import run

BIN = Path("/usr/lib/postgresql/15/bin")
SEED = 17
CLIENTS = 4
WAL_SEGMENT = 16 * 1024 * 1024
WAL_PAGE = 8192


@dataclass(frozen=True)
class Crash:
    base: Path  # where the test's copies go (readable by postgres, unlike tmp_path)
    image: Path  # the data directory as the crash left it: judged only through copies
    accounts: str  # pgbench_accounts' heap, relative to the data directory
    older_accounts: Path  # that file, copied while the workload ran, before at least one later checkpoint
    logs: dict[int, list[Txn]]
    cut: float  # when the server was killed
    live: list[tuple[int, int, float]]  # (client, n, mtime) of the history rows read just before the kill


@pytest.fixture(scope="module")
def crash() -> Iterator[Crash]:
    if os.geteuid() != 0 or not (BIN / "postgres").exists():
        pytest.fail("these tests need PostgreSQL 15 (make setup installs it) and root")
    base = Path("/var/tmp") / f"twinsite-test-pgoracle-{secrets.token_hex(4)}"
    base.mkdir()
    pw = pwd.getpwnam("postgres")
    os.chown(base, pw.pw_uid, pw.pw_gid)
    try:
        yield crashed_run(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def crashed_run(base: Path) -> Crash:
    data = base / "data"
    run(["runuser", "-u", "postgres", "--", str(BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
         "-E", "UTF8", "--locale=C.UTF-8", "--data-checksums", "--no-sync"])  # fmt: skip
    rng = random.Random(SEED)
    with Server(data, BIN, settings={"min_wal_size": "32MB"}) as server:  # (fewer WAL files to copy)
        server.start()
        db = server.database()
        init_workload(BIN, db, scale=1)
        accounts = one_value(db, "select pg_relation_filepath('pgbench_accounts')")
        prefix = base / "pgbench-log"
        argv = pgbench_argv(BIN, db, write_script(base / "tpcb.sql"), prefix, clients=CLIENTS)
        with open(base / "pgbench.out", "wb") as out:
            pgbench = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        checkpointer = Checkpointer(db.connect, seed=SEED)
        checkpointer.start()
        try:
            assert eventually(lambda: checkpointer.done, timeout=10, what="a first checkpoint"), checkpointer.error
            shutil.copyfile(data / accounts, base / "accounts.older")
            assert eventually(lambda: len(checkpointer.done) >= 2, timeout=10, what="a checkpoint after the copy")
            time.sleep(rng.uniform(0.3, 0.8))  # the moment of the crash (not a wait for anything)
            live = history(db)
            cut = server.crash()
            image = base / "image"
            shutil.copytree(data, image, symlinks=True)
            assert pgbench.wait(timeout=30) != 0  # its clients lost their server: it ends by itself
        finally:
            checkpointer.stop()
            if pgbench.poll() is None:
                pgbench.kill()
                pgbench.wait()
    print(f"{len(checkpointer.done)} checkpoints; pgbench: {(base / 'pgbench.out').read_text()[-300:]}")
    return Crash(base, image, accounts, base / "accounts.older", parse_logs(prefix), cut, live)


def one_value(db: Database, sql: str) -> str:
    conn = db.connect()
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql)
            return str(cur.fetchone()[0])
    finally:
        conn.close()


def history(db: Database) -> list[tuple[int, int, float]]:
    conn = db.connect()
    try:
        with conn, conn.cursor() as cur:
            cur.execute("select client, n, extract(epoch from mtime)::float8 from pgbench_history")
            return [(int(c), int(n), float(t)) for c, n, t in cur.fetchall()]
    finally:
        conn.close()


@pytest.fixture
def copy(crash: Crash, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A copy of the crash image, for one test to damage and judge."""
    where = crash.base / re.sub(r"\W", "-", request.node.name)
    shutil.copytree(crash.image, where, symlinks=True)
    yield where
    shutil.rmtree(where, ignore_errors=True)


# -- a real crash --------------------------------------------------------------------------------------------


def test_a_crash_image_is_consistent_with_every_client_s_transactions_found(crash: Crash, copy: Path) -> None:
    verdict = judge(copy, crash.logs, crash.cut, pg_bin=BIN)
    print(verdict, dict(verdict.found), {c: len(t) for c, t in crash.logs.items()})
    assert verdict.ok, str(verdict)
    assert sorted(crash.logs) == list(range(CLIENTS))
    for client, txns in crash.logs.items():
        committed = [t for t in txns if t.end < crash.cut - DEFAULT_SLACK]
        assert committed, f"client {client} committed nothing before the cut: the prefix check judged nothing"
        assert verdict.found[client] >= len(committed)


def test_history_numbers_are_the_client_log_s_numbers(crash: Crash) -> None:
    """What makes the prefix check exact: the n a client wrote into its history row is the number pgbench's log
    gives that transaction (the row's mtime, the server's clock at BEGIN, lies within the logged transaction's
    start and end, on this one host's clock), and each client's log numbers its transactions 1, 2, 3, ..."""
    for client, txns in crash.logs.items():
        assert [t.n for t in txns] == list(range(1, len(txns) + 1)), f"client {client}'s log has a gap"
    matched = 0
    for client, n, mtime in crash.live:
        logged = {t.n: t for t in crash.logs[client]}
        if n in logged:
            assert logged[n].start - 1e-3 <= mtime <= logged[n].end + 1e-3, (client, n, mtime, logged[n])
            matched += 1
        else:  # committed, but killed before pgbench had the acknowledgement: only the client's last one
            assert n == len(crash.logs[client]) + 1, (client, n, len(crash.logs[client]))
    assert matched > 100


# -- damage as a torn copy makes it ---------------------------------------------------------------------------


def test_an_older_accounts_heap_beside_newer_wal_is_caught(crash: Crash, copy: Path) -> None:
    """A file-by-file copy that took pgbench_accounts before a checkpoint and pg_control and the WAL after it:
    recovery starts at the later checkpoint and never replays what the older heap lacks."""
    shutil.copyfile(crash.older_accounts, copy / crash.accounts)
    verdict = judge(copy, crash.logs, crash.cut, pg_bin=BIN)
    print(verdict)
    assert not verdict.ok
    checks = {f.split(":", 1)[0] for f in verdict.findings}
    assert checks & {"amcheck", "balances"}, verdict.findings


def test_a_lost_end_of_wal_is_caught_by_the_prefix_check(crash: Crash, copy: Path) -> None:
    """A copy whose WAL stops just after the last checkpoint (the newest segment copied before the later commits
    reached it): the server starts and the data are consistent, but commits the clients saw are missing."""
    lsn = control_value(copy, "Latest checkpoint location")
    hi, lo = (int(x, 16) for x in lsn.split("/"))
    segment = (hi << 32 | lo) // WAL_SEGMENT
    keep = ((lo % WAL_SEGMENT) // WAL_PAGE + 2) * WAL_PAGE  # the checkpoint record's page and the next one
    timeline = int(control_value(copy, "Latest checkpoint's TimeLineID"))
    name = f"{timeline:08X}{segment // (2**32 // WAL_SEGMENT):08X}{segment % (2**32 // WAL_SEGMENT):08X}"
    files = sorted(p for p in (copy / "pg_wal").iterdir() if re.fullmatch(r"[0-9A-F]{24}", p.name))
    assert name in [p.name for p in files], (name, files)
    with open(copy / "pg_wal" / name, "r+b") as f:
        f.seek(keep)
        f.write(bytes(WAL_SEGMENT - keep))
    for p in files:
        if p.name > name:
            p.unlink()
    verdict = judge(copy, crash.logs, crash.cut, pg_bin=BIN)
    print(verdict)
    assert not verdict.ok
    assert all(f.startswith("prefix: ") for f in verdict.findings), verdict.findings
    assert any("committed before the cut but missing" in f for f in verdict.findings), verdict.findings


def control_value(datadir: Path, key: str) -> str:
    out = run([str(BIN / "pg_controldata"), str(datadir)]).stdout.decode()
    return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith(key + ":"))


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        ("garbage", "database files are incompatible with server"),
        ("missing", "could not find the database system"),
    ],
    ids=["garbage", "missing"],
)
def test_a_copy_without_a_valid_pg_control_did_not_start(crash: Crash, copy: Path, damage: str, said: str) -> None:
    control = copy / "global" / "pg_control"
    if damage == "garbage":
        control.write_bytes(random.Random(SEED).randbytes(control.stat().st_size))
    else:
        control.unlink()
    verdict = judge(copy, crash.logs, crash.cut, pg_bin=BIN, start_timeout=30)
    print(verdict)
    assert not verdict.ok and len(verdict.findings) == 1
    assert verdict.findings[0].startswith("did not start: postgres exited"), verdict.findings
    assert said in verdict.findings[0]  # the server log's own words, as the verdict carries them


# -- the prefix check on made-up numbers ----------------------------------------------------------------------

CUT = 1_000_000.0


def txns(*spans: tuple[float, float]) -> list[Txn]:
    """A client's log: transaction i+1 began and ended at CUT + spans[i]."""
    return [Txn(i + 1, CUT + s, CUT + e) for i, (s, e) in enumerate(spans)]


EARLY = (-3.0, -2.9), (-2.0, -1.9), (-1.0, -0.9)  # three transactions well before the cut
LATE = (0.2, 0.3)  # one well after it


@pytest.mark.parametrize(
    ("present", "log", "expected"),
    [
        pytest.param([1, 2, 3], txns(*EARLY), None, id="all-committed"),
        pytest.param([1, 2, 3, 4], txns(*EARLY), None, id="in-flight-present"),  # the 4th may have committed
        pytest.param([1, 2, 3], txns(*EARLY, (-0.02, 0.01)), None, id="ended-within-slack-absent"),
        pytest.param([1, 2, 3, 4], txns(*EARLY, (-0.02, 0.01)), None, id="ended-within-slack-present"),
        pytest.param([1, 2, 3, 4], txns(*EARLY, (0.01, 0.2)), None, id="begun-within-slack-present"),
        pytest.param([1, 3], txns(*EARLY), "not a prefix: 2 transactions numbered up to 3, missing 2", id="gap"),
        pytest.param([1, 2], txns(*EARLY), "committed before the cut but missing: 3 (ended at cut-0.900 s)", id="lost"),
        pytest.param([], txns(*EARLY), "committed before the cut but missing: 1 (ended at cut-2.900 s), 2", id="none"),
        pytest.param([1, 2, 3, 4], txns(*EARLY, LATE), "begun after the cut but present: 4 (began at", id="late"),
        pytest.param([1, 2, 2, 3], txns(*EARLY), "transactions present more than once: 2", id="twice"),
        pytest.param([0, 1, 2, 3], txns(*EARLY), "numbers below 1 present: 0", id="zero"),
        pytest.param(
            [1, 2, 3, 4, 5], txns(*EARLY), "present but never begun (its log ends at 3; one more may", id="beyond-log"
        ),
        pytest.param([1], [], None, id="first-in-flight"),  # no log line yet: its first may have been in flight
    ],
)
def test_the_prefix_check(present: list[int], log: list[Txn], expected: str | None) -> None:
    findings = prefix_findings({2: present}, {2: log}, CUT, slack=0.05)
    if expected is None:
        assert findings == []
    else:
        assert any(f.startswith(f"prefix: client 2: {expected}") for f in findings), findings


def test_the_prefix_check_reports_each_client_and_trusts_an_incomplete_log_less() -> None:
    present = {0: [1, 2, 3], 1: [1, 2, 3, 4, 5], 3: [1]}
    logs = {0: txns(*EARLY), 1: txns(*EARLY), 2: txns(*EARLY)}
    findings = prefix_findings(present, logs, CUT)
    assert [f.split(":")[1].strip() for f in findings] == ["client 1", "client 2"], findings
    assert [f.split(":")[1].strip() for f in prefix_findings(present, logs, CUT, complete_logs=False)] == ["client 2"]


def test_pgbench_logs_are_read_per_client_from_every_thread_s_file(tmp_path: Path) -> None:
    prefix = tmp_path / "tx"
    # the 2nd of client 0 failed; the log ends in the middle of its 3rd's line (parsable, but digits are lost)
    lines = ["0 1 2500 0 1000 500000", "1 1 1000 0 1000 900000", "0 2 failed 0 1001 0", "0 3 9 0 1001 12"]
    (tmp_path / "tx.4242").write_text("\n".join(lines))
    (tmp_path / "tx.4242.1").write_text("2 1 300 0 1002 300\n")
    (tmp_path / "tx.txt").write_text("not a log\n")
    logs = {c: [(t.n, round(t.start, 6), round(t.end, 6)) for t in ts] for c, ts in parse_logs(prefix).items()}
    assert logs == {
        0: [(1, 1000.4975, 1000.5)],
        1: [(1, 1000.899, 1000.9)],
        2: [(1, 1002.0, 1002.0003)],
    }
    (tmp_path / "tx.4242.1").write_text("2 1 300 0 1002 300\nnonsense\n2 2 300 0 1003 0\n")
    with pytest.raises(ValueError, match=r"tx\.4242\.1:2: not a pgbench log line"):
        parse_logs(prefix)
    with pytest.raises(FileNotFoundError):
        parse_logs(tmp_path / "none")

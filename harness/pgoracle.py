"""The oracle of issue 17: whether a copy of a PostgreSQL data directory is crash-consistent.

A TPC-B workload whose every transaction says who committed it: pgbench's built-in tpcb-like script, run by
``pgbench -n`` with a script file that also writes, in the pgbench_history row it inserts, the client
(``:client_id``) and the client's own number for the transaction (``:n``, counted by the client: ``-D n=0``
and ``\\set n :n + 1`` at the top of the script; pgbench keeps a client's variables from one transaction to
the next). pgbench's per-transaction log (``-l``) numbers each client's transactions the same way (1 for its
first), so the log and the table name the same transactions.

:func:`judge` starts a throwaway server on a copy of the data directory (crash recovery runs, as it would on
the replica) and requires three things:

* ``amcheck``: ``pg_amcheck --heapallindexed --parent-check`` over every database reports nothing;
* ``balances``: the TPC-B invariant, sum(abalance) = sum(bbalance) = sum(tbalance) = sum(delta) of history
  (each transaction adds the same delta to one row of each of the four tables);
* ``prefix``: each client's transactions in history are 1..k (no gap, none twice), every one the client's log
  says committed before the cut is there, none it began after the cut is there, and none after the one
  that may have been in flight when its log ends.

Nothing here depends on twinsite's replication: the oracle judges whatever produced the copy.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg2
from psycopg2 import sql

from twinsite.proc import run, wait_until

DB = "bench"  # the workload's database
CLIENTS = 4
# How far from the cut a transaction's client-side times must be for the prefix check to judge it. pgbench
# reads a transaction's end after the commit's acknowledgement arrived (so the commit was durable before it)
# and its start before it sent BEGIN; the cut's time is read by whoever cuts, just before or after the cut
# takes effect, perhaps on another host's clock (NTP keeps the lab's within a few ms). A transaction within
# ``slack`` of the cut is judged neither way: its presence proves nothing.
DEFAULT_SLACK = 0.05

# pgbench's built-in tpcb-like script (PostgreSQL 15), plus the client's count of its transactions (``n``, set
# to 0 by ``-D n=0``) and both numbers written into the history row.
SCRIPT = """\
\\set n :n + 1
\\set aid random(1, 100000 * :scale)
\\set bid random(1, 1 * :scale)
\\set tid random(1, 10 * :scale)
\\set delta random(-5000, 5000)
BEGIN;
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
UPDATE pgbench_tellers SET tbalance = tbalance + :delta WHERE tid = :tid;
UPDATE pgbench_branches SET bbalance = bbalance + :delta WHERE bid = :bid;
INSERT INTO pgbench_history (tid, bid, aid, delta, mtime, client, n) \
VALUES (:tid, :bid, :aid, :delta, CURRENT_TIMESTAMP, :client_id, :n);
END;
"""

BALANCES = """
select (select coalesce(sum(abalance), 0) from pgbench_accounts),
       (select coalesce(sum(bbalance), 0) from pgbench_branches),
       (select coalesce(sum(tbalance), 0) from pgbench_tellers),
       (select coalesce(sum(delta), 0) from pgbench_history)
"""


@dataclass(frozen=True)
class Database:
    """Where a client reaches the workload's database."""

    host: str  # a socket directory or an address
    port: int
    user: str = "postgres"
    name: str = DB

    def args(self) -> list[str]:
        """The connection options of PostgreSQL's client programs (the database name is not among them)."""
        return ["-h", self.host, "-p", str(self.port), "-U", self.user]

    def connect(self, **kwargs: Any) -> Any:
        """A psycopg2 connection to it."""
        return psycopg2.connect(
            host=self.host, port=self.port, user=self.user, dbname=self.name, connect_timeout=10, **kwargs
        )


@dataclass(frozen=True)
class Txn:
    """One committed transaction of a client, as pgbench's log tells it (epoch seconds, the client's clock)."""

    n: int  # the client's number for it: 1 for its first (the n of its pgbench_history row)
    start: float  # when pgbench began it
    end: float  # when pgbench had the commit's acknowledgement


@dataclass(frozen=True)
class Verdict:
    ok: bool
    findings: tuple[str, ...]  # each starts with the failed check: "did not start", "amcheck", "balances", "prefix"
    found: Mapping[int, int] = field(default_factory=dict)  # client -> how many of its transactions history holds

    def __str__(self) -> str:
        return "consistent" if self.ok else "not consistent:\n" + "\n".join(f"  {f}" for f in self.findings)


class StartFailed(Exception):
    """The server did not come up; the message says how and ends with the last lines of its log."""


# -- the workload --------------------------------------------------------------------------------------------


def write_script(path: Path) -> Path:
    """The workload's pgbench script, written to ``path``."""
    path.write_text(SCRIPT)
    return path


def init_workload(pg_bin: Path, db: Database, *, scale: int = 1) -> None:
    """The database ``db.name`` (made if missing) with pgbench's tables at ``scale`` (``pgbench -i``, which drops
    them first) and the history's two more columns."""
    conn = Database(db.host, db.port, db.user, "postgres").connect()
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("select 1 from pg_database where datname = %s", (db.name,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("create database {}").format(sql.Identifier(db.name)))
    finally:
        conn.close()
    run([str(pg_bin / "pgbench"), "-i", "-q", "-s", str(scale), *db.args(), db.name], timeout=600)
    conn = db.connect()
    try:
        with conn, conn.cursor() as cur:
            cur.execute("alter table pgbench_history add column client int, add column n bigint")
    finally:
        conn.close()


def pgbench_argv(
    pg_bin: Path,
    db: Database,
    script: Path,
    log_prefix: Path,
    *,
    clients: int = CLIENTS,
    scale: int = 1,
    duration: int | None = None,
) -> list[str]:
    """``pgbench -n`` running ``script`` (:func:`write_script`) on ``clients`` connections for ``duration`` s (by
    default until its clients lose their server or it is killed), every transaction logged to files
    ``log_prefix.PID[.THREAD]``. pgbench writes its logs out when it ends: let it end by itself (its clients
    abort when the server goes away) rather than killing it, or the log's end is lost."""
    return [
        str(pg_bin / "pgbench"), "-n", "-c", str(clients), "-s", str(scale), "-D", "n=0", "-f", str(script),
        "-T", str(duration or 1_000_000), "-l", f"--log-prefix={log_prefix}", *db.args(), db.name,
    ]  # fmt: skip


def parse_logs(log_prefix: Path) -> dict[int, list[Txn]]:
    """Each client's committed transactions (in order) from the logs pgbench wrote at ``log_prefix``.

    A line is ``client n latency_us script epoch_s us`` (the end); a transaction that failed or was skipped
    has a word for its latency and did not commit. A last line cut short (pgbench killed) is left out."""
    files = _log_files(log_prefix)
    if not files:
        raise FileNotFoundError(f"no pgbench log at {log_prefix}.*")
    out: dict[int, list[Txn]] = {}
    for f in files:
        text = f.read_text()
        lines = text.splitlines()
        if not text.endswith("\n"):
            lines = lines[:-1]  # cut short: even a line that parses may have lost digits
        for i, line in enumerate(lines):
            parsed = _log_line(line)
            if parsed is None:
                raise ValueError(f"{f}:{i + 1}: not a pgbench log line: {line!r}")
            client, txn = parsed
            if txn is not None:
                out.setdefault(client, []).append(txn)
    for client, txns in out.items():
        txns.sort(key=lambda t: t.n)
        if len({t.n for t in txns}) != len(txns):
            raise ValueError(f"client {client}'s transactions are logged twice: two runs with one prefix {log_prefix}?")
    return out


def _log_files(log_prefix: Path) -> list[Path]:
    pattern = re.compile(re.escape(log_prefix.name) + r"\.\d+(\.\d+)?")
    return sorted(p for p in log_prefix.parent.iterdir() if pattern.fullmatch(p.name))


def _log_line(line: str) -> tuple[int, Txn | None] | None:
    """(client, its transaction or None when it did not commit), or None when the line is not a log line."""
    fields = line.split()
    if len(fields) < 6 or not all(f.isdigit() for f in (fields[0], fields[1], fields[4], fields[5])):
        return None
    client, n, latency = int(fields[0]), int(fields[1]), fields[2]
    if not latency.isdigit():  # "skipped", "failed", "serialization", "deadlock"
        return client, None
    end = int(fields[4]) + int(fields[5]) / 1e6
    return client, Txn(n, end - int(latency) / 1e6, end)


class Checkpointer(threading.Thread):
    """Issues CHECKPOINT every 1-3 s (seeded) through a connection from ``connect``, until stopped or until the
    server goes away (a crash is what it is for: its error is kept, not raised). ``done`` holds when each one
    returned."""

    def __init__(self, connect: Callable[[], Any], *, seed: int, low: float = 1.0, high: float = 3.0) -> None:
        super().__init__(daemon=True, name="checkpointer")
        self.connect, self.rng, self.low, self.high = connect, random.Random(seed), low, high  # noqa: S311 (a schedule)
        self.done: list[float] = []
        self.error: str | None = None
        self.stopping = threading.Event()

    def run(self) -> None:
        conn = None
        try:
            conn = self.connect()
            conn.autocommit = True
            while not self.stopping.wait(self.rng.uniform(self.low, self.high)):
                with conn.cursor() as cur:
                    cur.execute("checkpoint")
                self.done.append(time.time())
        except psycopg2.Error as exc:
            self.error = str(exc).strip()
        finally:
            if conn is not None:
                conn.close()

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=60)


# -- a throwaway server --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``postgres`` on ``datadir``, a child of this process in its own process group (as ``os_user`` when we are
    root), reached only through a unix socket in a temporary directory of its own, trusting every local
    connection (its own pg_hba.conf), archiving nothing and waiting for no standby, whatever the data
    directory's configuration says. ``close()`` kills it and removes what it made."""

    def __init__(
        self,
        datadir: Path,
        pg_bin: Path,
        *,
        superuser: str = "postgres",
        os_user: str = "postgres",
        settings: Mapping[str, str] | None = None,
    ) -> None:
        self.datadir, self.pg_bin, self.superuser = datadir, pg_bin, superuser
        self.as_user = os_user if os.geteuid() == 0 else None
        self.settings = dict(settings or {})
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="pgoracle-"))
        self.log = self.dir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def database(self, name: str = DB) -> Database:
        return Database(str(self.dir), self.port, self.superuser, name)

    def start(self, *, timeout: float = 60) -> None:
        """Start it and wait until it accepts connections (crash recovery done); :class:`StartFailed` if it
        exits first or is not ready within ``timeout`` s."""
        (self.dir / "pg_hba.conf").write_text("local all all trust\n")
        if self.as_user is not None:
            pw = pwd.getpwnam(self.as_user)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        settings = {
            "listen_addresses": "",
            "hba_file": str(self.dir / "pg_hba.conf"),
            "archive_mode": "off",
            "synchronous_standby_names": "",
            "logging_collector": "off",
            "log_destination": "stderr",
            **self.settings,
        }
        argv = [str(self.pg_bin / "postgres"), "-D", str(self.datadir), "-p", str(self.port), "-k", str(self.dir)]
        for k, v in settings.items():
            argv += ["-c", f"{k}={v}"]
        gid = pwd.getpwnam(self.as_user).pw_gid if self.as_user else None
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                user=self.as_user, group=gid, extra_groups=[] if self.as_user else None,
            )  # fmt: skip
        proc = self.proc
        ready = wait_until(lambda: proc.poll() is not None or self._accepting(), timeout=timeout, interval=0.05)
        if proc.poll() is not None:
            raise StartFailed(f"postgres exited with code {proc.returncode}:\n{self.log_tail()}")
        if not ready:
            self.crash()
            raise StartFailed(f"not accepting connections after {timeout:g} s:\n{self.log_tail()}")

    def _accepting(self) -> bool:
        argv = [str(self.pg_bin / "pg_isready"), "-q", *self.database().args(), "-d", "postgres", "-t", "5"]
        return run(argv, check=False, timeout=15).returncode == 0

    def crash(self) -> float:
        """SIGKILL to the postmaster and all its processes at once (PostgreSQL crashes, not the OS: what it wrote
        stays written); returns once they are all gone, with the moment of the kill (epoch seconds)."""
        if self.proc is None:
            return time.time()
        pgid = self.proc.pid
        t0 = time.time()
        if self.proc.poll() is None:  # (not reaped yet, so the group is still ours to kill)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
        at = (t0 + time.time()) / 2
        self.proc.wait()
        wait_until(lambda: not _group_alive(pgid), timeout=30, what=f"the end of postgres' processes (group {pgid})")
        return at

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def close(self) -> None:
        """Kill it (if it was started) and remove its directory. Idempotent."""
        if self.proc is not None:
            self.crash()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()


def _group_alive(pgid: int) -> bool:
    """Whether a live (not zombie) process is in process group ``pgid``."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_bytes().rsplit(b")", 1)[1].split()  # state, ppid, pgrp, ...
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != b"Z":
            return True
    return False


def give_to(path: Path, user: str) -> None:
    """``chown -R user:its-group path`` (links themselves, never what they point to)."""
    pw = pwd.getpwnam(user)
    os.lchown(path, pw.pw_uid, pw.pw_gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), pw.pw_uid, pw.pw_gid)


# -- the judge ------------------------------------------------------------------------------------------------


def judge(
    datadir_copy: Path,
    logs: Mapping[int, Sequence[Txn]],
    cut_time: float,
    *,
    pg_bin: Path,
    slack: float = DEFAULT_SLACK,
    dbname: str = DB,
    superuser: str = "postgres",
    os_user: str = "postgres",
    start_timeout: float = 120,
    complete_logs: bool = True,
) -> Verdict:
    """Whether ``datadir_copy`` (a copy: crash recovery writes to it, and so does installing amcheck) holds a
    crash-consistent state of the workload as of ``cut_time`` (epoch seconds), given the clients' logs
    (:func:`parse_logs`). ``complete_logs``: pgbench ended by itself, so a client's log holds every transaction
    it saw committed (then history may hold at most one more, the one in flight).

    The copy's postmaster.pid (of a server that is not running on it) is removed; as root, the copy is given
    to ``os_user``. The server is always stopped and its temporary directory removed."""
    (datadir_copy / "postmaster.pid").unlink(missing_ok=True)
    if os.geteuid() == 0:
        give_to(datadir_copy, os_user)
    datadir_copy.chmod(0o700)
    with Server(datadir_copy, pg_bin, superuser=superuser, os_user=os_user) as server:
        try:
            server.start(timeout=start_timeout)
        except StartFailed as exc:
            return Verdict(False, (f"did not start: {exc}",))
        db = server.database(dbname)
        findings = amcheck_findings(pg_bin, db) + balance_findings(db)
        present, problems = history_numbers(db)
        findings += problems + prefix_findings(present, logs, cut_time, slack=slack, complete_logs=complete_logs)
        found = {client: len(set(ns)) for client, ns in present.items()}
        return Verdict(not findings, tuple(findings), found)


def amcheck_findings(pg_bin: Path, db: Database) -> list[str]:
    """What pg_amcheck finds in every database (installing amcheck where it is missing)."""
    argv = [str(pg_bin / "pg_amcheck"), *db.args(), "--all", "--install-missing", "--heapallindexed", "--parent-check"]
    p = run(argv, check=False, timeout=3600)
    out = (p.stdout + p.stderr).decode(errors="replace").strip().splitlines()
    if p.returncode == 0 and not out:
        return []
    shown = "\n    ".join(out[:20]) + (f"\n    ... ({len(out) - 20} more lines)" if len(out) > 20 else "")
    return [f"amcheck: pg_amcheck exited with code {p.returncode}:\n    {shown}"]


def balance_findings(db: Database) -> list[str]:
    """The TPC-B invariant: the accounts, the branches, the tellers and the history sum to the same."""
    try:
        conn = db.connect()
        try:
            with conn, conn.cursor() as cur:
                cur.execute(BALANCES)
                accounts, branches, tellers, history = cur.fetchone()
        finally:
            conn.close()
    except psycopg2.Error as exc:
        return [f"balances: cannot sum them: {str(exc).strip()}"]
    if accounts == branches == tellers == history:
        return []
    return [
        f"balances: sum(abalance) {accounts}, sum(bbalance) {branches}, sum(tbalance) {tellers}, "
        f"sum(delta) of history {history}: not all equal"
    ]


def history_numbers(db: Database) -> tuple[dict[int, list[int]], list[str]]:
    """Each client's transaction numbers in pgbench_history (one entry per row), and what cannot be read."""
    try:
        conn = db.connect()
        try:
            with conn, conn.cursor() as cur:
                cur.execute("select client, n, count(*) from pgbench_history group by client, n")
                rows = cur.fetchall()
        finally:
            conn.close()
    except psycopg2.Error as exc:
        return {}, [f"prefix: cannot read pgbench_history: {str(exc).strip()}"]
    present: dict[int, list[int]] = {}
    strays = 0
    for client, n, count in rows:
        if client is None or n is None:
            strays += count
        else:
            present.setdefault(client, []).extend([n] * count)
    problems = [f"prefix: {strays} history rows carry no client number"] if strays else []
    return present, problems


def prefix_findings(
    present: Mapping[int, Sequence[int]],
    logs: Mapping[int, Sequence[Txn]],
    cut_time: float,
    *,
    slack: float = DEFAULT_SLACK,
    complete_logs: bool = True,
) -> list[str]:
    """What breaks the prefix property: ``present`` is each client's transaction numbers found in the copy (one
    per row), ``logs`` each client's committed transactions as its log tells them."""
    findings: list[str] = []
    for client in sorted(set(present) | set(logs)):
        nums, txns = list(present.get(client, ())), list(logs.get(client, ()))
        found = _numbering(nums) + _against_log(set(nums), txns, cut_time, slack, complete_logs)
        findings += [f"prefix: client {client}: {what}" for what in found]
    return findings


def _numbering(nums: list[int]) -> list[str]:
    """Whether a client's numbers in history are 1..k, each once."""
    have = set(nums)
    k = max(have, default=0)
    out = []
    if len(have) != len(nums):
        out.append(f"transactions present more than once: {_some(sorted(n for n in have if nums.count(n) > 1))}")
    if not have <= set(range(1, k + 1)):
        out.append(f"numbers below 1 present: {_some(sorted(n for n in have if n < 1))}")
    holes = sorted(set(range(1, k + 1)) - have)
    if holes:
        out.append(f"not a prefix: {len(have)} transactions numbered up to {k}, missing {_some(holes)}")
    return out


def _against_log(have: set[int], txns: list[Txn], cut: float, slack: float, complete_logs: bool) -> list[str]:
    """Whether a client's transactions in history are those its log says committed before the cut."""
    out = []
    lost = [f"{t.n} (ended at cut{t.end - cut:+.3f} s)" for t in txns if t.end < cut - slack and t.n not in have]
    if lost:
        out.append(f"committed before the cut but missing: {_some(lost)}")
    late = [f"{t.n} (began at cut{t.start - cut:+.3f} s)" for t in txns if t.start > cut + slack and t.n in have]
    if late:
        out.append(f"begun after the cut but present: {_some(late)}")
    last = max((t.n for t in txns), default=0)
    beyond = sorted(n for n in have if n > last + 1)
    if complete_logs and beyond:
        out.append(
            f"present but never begun (its log ends at {last}; one more may have been in flight): {_some(beyond)}"
        )
    return out


def _some(items: Sequence[object], limit: int = 10) -> str:
    shown = ", ".join(str(x) for x in items[:limit])
    return shown + (f" ... ({len(items)} in all)" if len(items) > limit else "")

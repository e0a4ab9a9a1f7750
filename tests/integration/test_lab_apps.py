"""The lab's second database and its web server, protected like `db` (inventories/lab): MariaDB on prod1
(scenario `mariadb`, consistency points, the `mysql` plugin) and nginx (scenario `web`, a `service` application
with an `http` check).

MariaDB is judged by itself, never by our code: client1 runs transfers between accounts through
mariadb.dr.test while prod1 flushes every table every 0.3 s; at three moments dr1 is held at its last complete
point, `rsync -c` must find it equal to prod1's snapshot of that point, and a copy of it must start (InnoDB's
crash recovery), pass CHECK TABLE on every table, and keep the workload's invariants: the balances sum to zero,
each account's balance is what the ledger says, the ledger's ids have no hole. An assured-recovery test during
the load passes. nginx: dr1's test copy answers the http check; a front page without the expected text,
replicated, fails the test and the check says why."""

from __future__ import annotations

import random
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.cli import VENV_BIN
from harness.db import wait_replicating
from harness.hosts import on_host, twinsite_on
from harness.pgoracle import free_port
from harness.points import held_point, rsync_differences
from harness.scenarios import ensure_configured
from twinsite.apps.mysql import MySQL
from twinsite.lab import mariadb, web
from twinsite.lab.topology import Lab

pytestmark = pytest.mark.lab

ACCOUNTS = 20
EXCLUDED = ["/mariadb.log", "/run/*"]  # (the scenario's exclusions, as rsync patterns)


@pytest.fixture
def work() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="twinsite-mariadb-", dir="/var/tmp"))
    path.chmod(0o755)  # (the judge's server runs as mysql)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def client(lab: Lab, sql: str) -> str:
    """SQL through mariadb.dr.test from client1, as the lab's users reach it."""
    p = on_host(lab, "client1", "mariadb", "--no-defaults", "-h", "mariadb.dr.test", "-u", "shop", "-pshop", "-N",
                "-B", mariadb.DATABASE, "-e", sql, timeout=60)  # fmt: skip
    assert p.returncode == 0, p.stderr
    return p.stdout


class Transfers:
    """One client session on client1 moving seeded random amounts between accounts, a transaction each, until
    stopped."""

    def __init__(self, lab: Lab, seed: int) -> None:
        argv = ["mariadb", "--no-defaults", "-h", "mariadb.dr.test", "-u", "shop", "-pshop", mariadb.DATABASE]
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "twinsite"), "lab", "exec", "client1", "--", *argv],
            stdin=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.rng = random.Random(seed)  # (a seeded workload)
        self.stop = threading.Event()
        self.sent = 0
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self) -> None:
        assert self.proc.stdin is not None
        while not self.stop.is_set():
            src, dst = self.rng.sample(range(1, ACCOUNTS + 1), 2)
            amount = self.rng.randint(1, 1000)
            self.proc.stdin.write(  # (numbers made here: nothing from outside)
                "start transaction;"  # noqa: S608
                f" update accounts set balance = balance - {amount} where id = {src};"
                f" update accounts set balance = balance + {amount} where id = {dst};"
                f" insert into ledger(src, dst, amount, pad) values ({src}, {dst}, {amount}, repeat('x', 300));"
                " commit;\n"
            )
            self.sent += 1
            if self.sent % 20 == 0:
                self.proc.stdin.flush()
                time.sleep(0.01)

    def end(self) -> None:
        self.stop.set()
        self.thread.join()
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        code = self.proc.wait(timeout=120)
        assert code == 0, self.proc.stderr.read() if self.proc.stderr else code


def judge(copy: Path, work: Path) -> int:
    """Start MariaDB on a copy of dr1's data directory (here, on the controller, through the `mysql` plugin),
    check every table and the workload's invariants; the ledger's length."""
    subprocess.run(["chown", "-R", "mysql:mysql", str(copy)], check=True)
    run = work / f"run-{copy.name}"
    run.mkdir()
    shutil.chown(run, "mysql", "mysql")
    app = MySQL(
        {"data_dir": str(copy), "port": free_port(), "socket": str(run / "sock"), "pid_file": str(run / "pid"),
         "log_file": str(run / "log"), "database": mariadb.DATABASE},
        (str(copy.parent),), work,
    )  # fmt: skip
    app.start()  # (InnoDB's crash recovery: the copy was taken with the server running)
    try:
        ok, results = app.healthy()
        assert ok, [r.to_dict() for r in results]

        def sql(text: str) -> list[list[str]]:
            code, out = app._client(("mariadb",), ["-N", "-B", "-e", text, mariadb.DATABASE], timeout=60, what="sql")
            assert code == 0, out
            return [line.split("\t") for line in out.splitlines()]

        [[total, accounts]] = sql("select coalesce(sum(balance), 0), count(*) from accounts")
        assert (int(total), int(accounts)) == (0, ACCOUNTS)
        wrong = sql(
            "select a.id, a.balance, coalesce(i.s, 0) - coalesce(o.s, 0) from accounts a"
            " left join (select dst, sum(amount) s from ledger group by dst) i on i.dst = a.id"
            " left join (select src, sum(amount) s from ledger group by src) o on o.src = a.id"
            " where a.balance <> coalesce(i.s, 0) - coalesce(o.s, 0)"
        )
        assert wrong == [], f"balances that the ledger does not explain (id, balance, ledger): {wrong}"
        [[rows, top]] = sql("select count(*), coalesce(max(id), 0) from ledger")
        assert rows == top, f"the ledger has holes: {rows} rows, the last id {top}"
        return int(rows)
    finally:
        app.stop()


def test_mariadb_under_load_is_crash_consistent_at_every_held_point(lab: Lab, work: Path) -> None:
    ensure_configured(lab)
    client(lab, "drop table if exists ledger, accounts;"  # noqa: S608 (the test's own constants)
                " create table accounts(id int primary key, balance bigint not null) engine=InnoDB;"
                " create table ledger(id bigint auto_increment primary key, src int, dst int, amount int,"
                " pad varchar(400)) engine=InnoDB;"
                f" insert into accounts select seq, 0 from seq_1_to_{ACCOUNTS}")  # fmt: skip
    wait_replicating(lab, "prod1", scenario="mariadb")
    sock = mariadb.SETTINGS["socket"]
    flush = f"while :; do mariadb --no-defaults --socket={sock} -e 'flush tables'; sleep 0.3; done"
    flusher = subprocess.Popen([str(VENV_BIN / "twinsite"), "lab", "exec", "prod1", "--", "sh", "-c", flush])
    load = Transfers(lab, seed=23)
    seen: list[int] = []
    try:
        for i in range(3):
            time.sleep(2.0 + i)
            with held_point(lab, "mariadb", mariadb.ROOT) as h:
                assert rsync_differences(h, EXCLUDED) == [], f"point {h.point}: dr1 differs from prod1's snapshot"
                copy = work / f"data-{i}"
                shutil.copytree(h.replica / "data", copy, symlinks=True)
            seen.append(judge(copy, work))
            shutil.rmtree(copy)
        tested = twinsite_on(lab, "dr1", "recover-test", "mariadb", timeout=300)
        assert tested["ok"] and tested["result"]["result"] == "passed", tested
        checks = {c["name"]: c["ok"] for c in tested["result"]["checks"]}
        assert checks == {"ping": True, "query": True, "tables": True, "script mariadb-write": True}, checks
        assert flusher.poll() is None, "the flushes stopped during the load"
    finally:
        flusher.kill()
        flusher.wait()
        load.end()
    print(f"ledger rows at the three points: {seen}; transfers sent: {load.sent}")
    assert seen == sorted(seen) and seen[-1] > 0, seen
    [[committed]] = [line.split("\t") for line in client(lab, "select count(*) from ledger").splitlines()]
    assert int(committed) == load.sent >= seen[-1]


def test_the_web_servers_test_copy_answers_and_a_broken_page_fails_its_http_check(lab: Lab) -> None:
    ensure_configured(lab)
    page = lab.host("prod1").private_dir("/srv") / "web" / "html" / "index.html"
    good = page.read_text()
    assert web.PAGE in good
    tested = twinsite_on(lab, "dr1", "recover-test", "web", timeout=300)
    assert tested["ok"] and tested["result"]["result"] == "passed", tested
    [http] = [c for c in tested["result"]["checks"] if c["name"].startswith("http ")]
    assert http["ok"] and "answered 200" in http["output"], http
    try:
        page.write_text(good.replace(web.PAGE, "under maintenance"))
        replica = lab.host("dr1").private_dir("/srv") / "web" / "html" / "index.html"
        deadline = time.monotonic() + 60
        while replica.read_text() != page.read_text():
            assert time.monotonic() < deadline, "the changed page did not reach dr1"
            time.sleep(0.2)
        failed = twinsite_on(lab, "dr1", "recover-test", "web", timeout=300)
        evidence = failed["error"]["evidence"]
        assert (failed["ok"], evidence["result"]) == (False, "failed"), failed
        [http] = [c for c in evidence["checks"] if c["name"].startswith("http ")]
        assert not http["ok"] and "without 'the orders front page'" in http["output"], http
        assert evidence["reason"] == f"check(s) failed: {http['name']}"
    finally:
        page.write_text(good)
    wait_replicating(lab, "prod1", scenario="web")
    assert (lab.host("dr1").private_dir("/srv") / "web" / "html" / "index.html").read_text() == good

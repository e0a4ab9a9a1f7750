"""The ``mysql`` application plugin against Debian's MariaDB: a data directory made by mariadb-install-db in a
scenario's root, found there, started and checked; a server killed with -9 mid-write started again (InnoDB's
crash recovery: every committed row back, the table sound); a damaged table found by CHECK TABLE; stopped.
The oracle is MariaDB's own: its recovery, CHECK TABLE, and the rows committed before the kill."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from twinsite.apps import load
from twinsite.apps.mysql import MySQL
from twinsite.errors import AppError


@pytest.fixture
def root() -> Iterator[Path]:
    """A scenario's root holding a new MariaDB data directory (under /tmp itself: the mysql user must reach it,
    and pytest's own directories are root's alone)."""
    base = Path(tempfile.mkdtemp(prefix="tw-mysql-"))
    os.chmod(base, 0o755)  # noqa: S103 (the mysql user goes through it to its data directory)
    root = base / "srv" / "shop"
    data = root / "mariadb"
    data.mkdir(parents=True)
    shutil.chown(data, "mysql", "mysql")
    subprocess.run(
        ["mariadb-install-db", "--no-defaults", f"--datadir={data}", "--user=mysql",
         "--auth-root-authentication-method=socket", "--skip-test-db"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    yield root
    pid = MySQL({"port": 3399}, (str(root),), base)._pid()
    if pid is not None:
        os.kill(pid, signal.SIGKILL)
    shutil.rmtree(base, ignore_errors=True)


def sql(app: MySQL, text: str) -> str:
    code, out = app._client(("mariadb",), ["-N", "-B", "-e", text], timeout=60, what="sql")
    assert code == 0, out
    return out


def test_found_started_checked_recovered_after_kill_9_and_stopped(root: Path, tmp_path: Path) -> None:
    app = load({"type": "mysql", "port": 3399, "query": "select count(*) from shop.orders", "database": "mysql"},
               (str(root),), tmp_path)  # fmt: skip
    assert isinstance(app, MySQL) and app.data_dir() == root / "mariadb" and app.database
    app.start()
    app.start()  # (idempotent)
    sql(app, "create database shop; create table shop.orders (id int primary key, note text) engine=InnoDB")
    ok, results = app.healthy()
    assert ok, [r.to_dict() for r in results]
    assert [r.name for r in results] == ["ping", "query", "tables"]
    assert "tables checked, all OK" in results[2].output
    # rows committed one by one while the server is killed with -9: every row it said it committed is back
    committed: list[int] = []

    def write() -> None:
        for i in range(100_000):
            code, _ = app._client(("mariadb",), ["-e", f"insert into shop.orders values ({i}, repeat('x', 500))"],  # noqa: S608
                                  timeout=30, what="insert")  # fmt: skip
            if code != 0:
                return
            committed.append(i)

    writer = threading.Thread(target=write)
    writer.start()
    while len(committed) < 50:
        writer.join(0.05)
    pid = app._pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    writer.join()
    app.pid_file().unlink(missing_ok=True)
    app.start()  # (InnoDB's crash recovery)
    rows = {int(x) for x in sql(app, "select id from shop.orders").split()}
    assert set(committed) <= rows and len(rows) <= len(committed) + 1, (len(committed), len(rows))
    ok, results = app.healthy()
    assert ok, [r.to_dict() for r in results]
    app.stop()
    app.stop()  # (idempotent)
    assert not app.running()


def test_a_damaged_table_fails_check_table(root: Path, tmp_path: Path) -> None:
    app = MySQL({"port": 3399}, (str(root),), tmp_path)
    app.start()
    sql(app, "create database shop; create table shop.items (id int primary key, name text) engine=MyISAM;"
             "use shop; insert into items select seq, repeat('y', 300) from seq_1_to_2000")  # fmt: skip
    app.stop()
    index = root / "mariadb" / "shop" / "items.MYI"
    with open(index, "r+b") as f:  # the index's header overwritten
        f.seek(0)
        f.write(b"\0" * 64)
    app.start()
    ok, results = app.healthy()
    assert not ok
    [tables] = [r for r in results if r.name == "tables"]
    assert not tables.ok and "items" in tables.output, tables.output
    assert app.healthy(quick=True)[0]  # (the quick checks do not read every table: what monitoring runs)
    app.stop()


def test_no_data_directory_or_a_root_os_user_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AppError, match="no MariaDB/MySQL data directory"):
        MySQL({}, (str(tmp_path),), tmp_path).data_dir()
    with pytest.raises(AppError, match="is root"):
        MySQL({"os_user": "root", "data_dir": str(tmp_path)}, (str(tmp_path),), tmp_path).start()

"""Application plugins against the real thing: a PostgreSQL cluster made for the test (started, checked,
stopped, damaged), SQLite files, a service run by shell commands, a site definition, check scripts."""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.cli import twinsite_cmd
from twinsite.apps import load, wait_healthy
from twinsite.apps.postgresql import PostgreSQL
from twinsite.errors import AppError

BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1] if Path("/usr/lib/postgresql").exists() else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def pg_root() -> Iterator[Path]:
    """A scenario root holding a fresh cluster (with data checksums), owned by postgres."""
    if BIN is None or os.geteuid() != 0:
        pytest.fail("these tests need PostgreSQL (make setup installs it) and root")
    base = Path("/var/tmp") / f"twinsite-test-pg-{secrets.token_hex(4)}"
    data = base / "srv" / "data"
    data.mkdir(parents=True)
    pw = pwd.getpwnam("postgres")
    for p in (base, base / "srv", data):
        os.chown(p, pw.pw_uid, pw.pw_gid)
    subprocess.run(
        ["runuser", "-u", "postgres", "--", str(BIN / "initdb"), "-D", str(data), "-U", "postgres",
         "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--data-checksums"],
        check=True, capture_output=True,
    )  # fmt: skip
    yield base / "srv"
    subprocess.run(
        ["runuser", "-u", "postgres", "--", str(BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
        capture_output=True, check=False,
    )  # fmt: skip
    shutil.rmtree(base, ignore_errors=True)


def test_postgresql_is_found_started_checked_and_stopped(pg_root: Path) -> None:
    port = free_port()
    app = load({"type": "postgresql", "port": port, "log_file": str(pg_root.parent / "pg.log")}, (str(pg_root),))
    assert isinstance(app, PostgreSQL) and app.data_dir() == pg_root / "data"  # found by its PG_VERSION
    assert not app.running()
    ok, results = app.healthy()
    assert not ok and not results[0].ok  # down: the checks say so, nothing raises
    app.start()
    app.start()  # idempotent
    assert app.running()
    code, out = app._psql(
        "create table ledger(id int primary key, note text);"
        " insert into ledger select g, 'x' from generate_series(1, 500) g"
    )
    assert code == 0, out
    ok, results = app.healthy()
    assert ok, [r.to_dict() for r in results]
    assert [r.name for r in results] == ["accepting connections", "query", "consistent"]
    assert "read 500 rows in 1 tables" in results[2].output
    app.stop()
    app.stop()
    assert not app.running()


def test_a_damaged_table_fails_the_consistency_check(pg_root: Path) -> None:
    app = load({"type": "postgresql", "port": free_port(), "log_file": str(pg_root.parent / "pg.log")}, (str(pg_root),))
    assert isinstance(app, PostgreSQL)
    app.start()
    # with a primary key and a fresh visibility map, count(*) alone would be answered from the index
    code, out = app._psql(
        "create table t(id int primary key, v text);"
        " insert into t select g, repeat('a', 500) from generate_series(1, 2000) g"
    )
    assert code == 0, out
    code, out = app._psql("vacuum t")
    assert code == 0, out
    _, rel = app._psql("select pg_relation_filepath('t')")
    app.stop()
    heap = app.data_dir() / rel.strip()
    with open(heap, "r+b") as f:  # garbage in the middle of the second page
        f.seek(8192 + 3000)
        f.write(os.urandom(512))
    app.start()
    try:
        ok, results = app.healthy()
        by = {r.name: r for r in results}
        assert by["accepting connections"].ok and by["query"].ok
        assert not by["consistent"].ok and "checksum" in by["consistent"].output.lower(), by["consistent"]
        assert not ok
    finally:
        app.stop()


def test_a_missing_data_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AppError, match="no PostgreSQL data directory"):
        load("postgresql", (str(tmp_path),)).data_dir()


def test_sqlite_integrity(tmp_path: Path) -> None:
    db = tmp_path / "app" / "shop.db"
    db.parent.mkdir()
    con = sqlite3.connect(db)
    con.execute("create table orders(id integer primary key, item text)")
    con.executemany("insert into orders(item) values (?)", [("x" * 200,)] * 2000)
    con.execute("create index orders_item on orders(item)")
    con.commit()
    con.close()
    app = load("sqlite", (str(tmp_path / "app"),))
    ok, results = app.healthy()
    assert ok and results[0].output.endswith(": ok"), results
    with open(db, "r+b") as f:  # damage a page in the middle
        f.seek(4096 * 20)
        f.write(b"\xff" * 4096)
    ok, results = app.healthy()
    assert not ok and results[0].name == f"integrity {db}", results


def test_a_service_by_commands_and_a_site_definition_with_checks(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    (plugins / "apps").mkdir(parents=True)
    (plugins / "checks").mkdir()
    port = free_port()
    pidfile = tmp_path / "web.pid"
    server = f"python3 -m http.server {port} --bind 127.0.0.1 --directory {tmp_path}"
    (plugins / "apps" / "web.yml").write_text(
        f"description: a small web server\n"
        f"start: 'nohup {server} >/dev/null 2>&1 & echo $! > {pidfile}'\n"
        f"stop: 'kill $(cat {pidfile}) && rm -f {pidfile}'\n"
        f"status: 'test -f {pidfile} && kill -0 $(cat {pidfile})'\n"
        f"checks: [{{type: tcp, port: {port}}}, {{type: script, name: says-hello.sh, args: [{port}]}}]\n"
    )
    script = plugins / "checks" / "says-hello.sh"
    script.write_text("#!/bin/sh\ncurl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$1/ | grep -q 200\n")
    script.chmod(0o755)
    app = load("web", (str(tmp_path),), plugins)
    assert not app.running()
    ok, results = app.healthy()
    assert not ok and [r.name for r in results] == ["running", f"tcp 127.0.0.1:{port}", "script says-hello.sh"]
    app.start()
    try:  # as a switchover checks it: until every check passes (the server takes a moment to listen)
        ok, results = wait_healthy(app, quick=False, timeout=30)
        assert ok, [r.to_dict() for r in results]
    finally:
        app.stop()
    assert not app.running()


def test_check_scripts_cannot_escape_the_checks_directory(tmp_path: Path) -> None:
    (tmp_path / "checks").mkdir()
    app = load({"type": "files", "checks": [{"type": "script", "name": "../../bin/true"}]}, (str(tmp_path),), tmp_path)
    ok, results = app.healthy()
    assert not ok and "is outside" in results[-1].output


def test_unknown_application_and_bad_definitions_are_clear(tmp_path: Path) -> None:
    with pytest.raises(AppError, match="no application plugin 'erp'") as e:
        load("erp", (str(tmp_path),), tmp_path)
    assert "built in: files, mysql, postgresql, service, sqlite" in str(e.value)
    (tmp_path / "apps").mkdir()
    (tmp_path / "apps" / "erp.yml").write_text("start: x\nrestart: y\n")
    with pytest.raises(AppError, match="unknown key"):
        load("erp", (str(tmp_path),), tmp_path)


def test_files_checks_the_roots(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    ok, results = load("files", (str(tmp_path / "a"), str(tmp_path / "gone"))).healthy()
    assert [r.ok for r in results] == [True, False] and not ok


def test_the_cli_checks_a_scenarios_application_and_the_schema_takes_its_settings(tmp_path: Path) -> None:
    db = tmp_path / "data" / "shop.db"
    db.parent.mkdir()
    sqlite3.connect(db).execute("create table t(x)").connection.commit()
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "shop.yml").write_text(
        "name: shop\nmaster: prod1\nreplicas: [dr1]\n"
        f"roots: [{{path: {db.parent}}}]\n"
        f"application: {{type: sqlite, databases: [{db}]}}\n"
    )
    ok = twinsite_cmd("app", "shop", "check", "--config-dir", str(conf), "--json")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert [c["name"] for c in json.loads(ok.stdout)["result"]["checks"]] == [f"integrity {db}"]
    db.write_bytes(b"not a database at all" * 300)
    bad = twinsite_cmd("app", "shop", "check", "--config-dir", str(conf), "--json")
    assert bad.returncode == 18 and "1 check(s) failed" in json.loads(bad.stdout)["error"]["message"]
    (conf / "shop.yml").write_text(
        "name: shop\nmaster: prod1\nreplicas: [dr1]\nroots: [{path: /srv}]\n"
        "application: {type: postgresql, port: 99999, checks: [{type: tcp}]}\n"
    )
    invalid = twinsite_cmd("validate", str(conf / "shop.yml"))
    assert invalid.returncode == 3
    assert "application.port: 99999 is too large; expected at most 65535" in invalid.stderr, invalid.stderr
    assert "application.checks[0]: missing required key 'port'" in invalid.stderr, invalid.stderr


def test_the_probe_answers_every_named_scenario_and_a_hung_check_only_for_itself(tmp_path: Path) -> None:
    """`twinsite probe` (what a standby's monitors ask): each scenario's quick checks as `app check` answers
    them, side by side within --check-timeout, and the status of all, in one answer."""
    conf, plugins = tmp_path / "conf", tmp_path / "plugins"
    (plugins / "checks").mkdir(parents=True)
    slow = plugins / "checks" / "slow"
    slow.write_text("#!/bin/sh\nsleep 8\n")
    slow.chmod(0o755)
    conf.mkdir()
    (tmp_path / "here").mkdir()
    for name, app in (
        ("fine", "files"),
        ("gone", "files"),
        ("hung", "{type: files, checks: [{type: script, name: slow, timeout: 20}]}"),
    ):
        root = tmp_path / ("nowhere" if name == "gone" else "here")
        (conf / f"{name}.yml").write_text(
            f"name: {name}\nmaster: prod1\nreplicas: [dr1]\nroots: [{{path: {root}}}]\napplication: {app}\n"
        )
    t0 = time.monotonic()
    done = twinsite_cmd(
        "probe", "fine", "gone", "hung", "ghost", "--config-dir", str(conf), "--state-dir", str(tmp_path / "state"),
        "--plugins-dir", str(plugins), "--check-timeout", "2", "--json",
    )  # fmt: skip
    took = time.monotonic() - t0
    assert done.returncode == 0, done.stdout + done.stderr
    apps, status = json.loads(done.stdout)["result"]["apps"], json.loads(done.stdout)["result"]["status"]
    assert apps["fine"]["ok"] and apps["fine"]["result"]["checks"], apps["fine"]
    assert apps["gone"]["error"]["type"] == "AppError" and "nowhere" in apps["gone"]["error"]["message"]
    assert apps["hung"]["error"]["message"] == "the checks gave no answer within 2 s", apps["hung"]
    assert apps["ghost"]["error"]["type"] == "ConfigError", apps["ghost"]  # not declared here
    assert sorted(r["scenario"] for r in status["scenarios"]) == ["fine", "gone", "hung"]
    assert took < 7, f"the hung check held the answer up: {took:.1f} s"

"""Replicated data is data: a PG_VERSION file cannot name the programs run, PostgreSQL's tools run as its
owner, and a SQLite file's name cannot change how it is opened."""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from twinsite.apps import load
from twinsite.apps.postgresql import PostgreSQL

NEWEST = sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1] if Path("/usr/lib/postgresql").exists() else None


def pg(settings: dict[str, object], root: Path) -> PostgreSQL:
    app = load({"type": "postgresql", **settings}, (str(root),))
    assert isinstance(app, PostgreSQL)
    return app


@pytest.mark.parametrize("how", ["absolute", "dot-dot", "link"])
def test_a_hostile_pg_version_never_names_the_binaries(tmp_path: Path, how: str) -> None:
    if NEWEST is None:
        pytest.fail("this test needs PostgreSQL (make setup installs it)")
    evil = tmp_path / "evil"
    (evil / "bin").mkdir(parents=True)
    (evil / "bin" / "pg_controldata").write_text("#!/bin/sh\nexit 0\n")
    (evil / "bin" / "pg_controldata").chmod(0o755)
    data = tmp_path / "srv" / "data"
    data.mkdir(parents=True)
    content = {"absolute": str(evil), "dot-dot": f"../../..{evil}", "link": str(evil)}[how]
    if how == "link":  # the link's target says where; the link itself is refused
        (tmp_path / "elsewhere").write_text(content)
        (data / "PG_VERSION").symlink_to(tmp_path / "elsewhere")
    else:
        (data / "PG_VERSION").write_text(content + "\n")
    assert pg({}, tmp_path / "srv").bin_dir() == NEWEST


def test_a_valid_pg_version_names_its_installed_version(tmp_path: Path) -> None:
    if NEWEST is None:
        pytest.fail("this test needs PostgreSQL (make setup installs it)")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "PG_VERSION").write_text(f"{NEWEST.parent.name}\n")
    assert pg({}, tmp_path).bin_dir() == NEWEST


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory the postgres user can read (pytest's tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(dir="/var/tmp", prefix="twinsite-test-owner-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("os_user", ["postgres", "root"])
def test_every_tool_runs_as_the_owner_never_root(shared_dir: Path, os_user: str) -> None:
    if os.geteuid() != 0:
        pytest.fail("this test needs root (it checks the tools do not run as root)")
    ran = shared_dir / "ran"
    ran.touch()
    ran.chmod(0o666)
    (shared_dir / "bin").mkdir()
    for tool in ("pg_ctl", "pg_isready", "psql", "pg_controldata"):
        fake = shared_dir / "bin" / tool
        fake.write_text(
            f'#!/bin/sh\necho "$(basename "$0") $(id -un)" >> {ran}\necho "Database cluster state: in production"\n'
        )
        fake.chmod(0o755)
    (shared_dir / "data").mkdir()
    app = pg({"bin_dir": str(shared_dir / "bin"), "data_dir": str(shared_dir / "data"), "os_user": os_user}, shared_dir)
    if os_user == "root":  # refused: nothing runs
        ok, results = app.healthy()
        assert not ok and all("is root" in r.output for r in results), results
        assert ran.read_text() == ""
        return
    app.healthy()
    app.stop()
    lines = sorted(set(ran.read_text().splitlines()))
    assert lines == ["pg_controldata postgres", "pg_ctl postgres", "pg_isready postgres", "psql postgres"]


@pytest.mark.parametrize("name", ["shop?mode=rwc&.db", "shop#1.db", "shop%41.db"])
def test_a_sqlite_file_name_cannot_change_how_it_is_opened(tmp_path: Path, name: str) -> None:
    db = tmp_path / name
    con = sqlite3.connect(db)
    con.execute("create table t(x)")
    con.commit()
    con.close()
    ok, results = load("sqlite", (str(tmp_path),)).healthy()
    assert ok and results[0].output == f"{db}: ok", results
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # nothing else opened, nothing created

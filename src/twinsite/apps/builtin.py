"""The built-in plugins that need no server of their own: files, sqlite, service (and site definitions)."""

from __future__ import annotations

import functools
import os
import sqlite3
from pathlib import Path
from typing import Any

import yaml

from twinsite.apps.base import Application
from twinsite.apps.checks import CheckResult, run, timed
from twinsite.apps.mysql import MySQL
from twinsite.apps.postgresql import PostgreSQL
from twinsite.errors import AppError

SERVICE_KEYS = {"start", "stop", "status", "unit", "start_timeout", "stop_timeout", "checks", "description"}


class Files(Application):
    """A file server, or anything whose data is the files: nothing to start, the roots must be readable."""

    kind = "files"

    def own_checks(self, *, quick: bool = False) -> list[CheckResult]:
        return [timed(f"readable {p}", functools.partial(_readable, p)) for p in self.data_paths()]


def _readable(p: Path) -> tuple[bool, str]:
    if not p.is_dir():
        return False, f"{p} is not a directory"
    if not os.access(p, os.R_OK | os.X_OK):
        return False, f"{p} cannot be read"
    return True, f"{p}: {sum(1 for _ in p.iterdir())} entries at the top"


class Sqlite(Application):
    """SQLite databases inside the roots (``databases``, or every *.db, *.sqlite, *.sqlite3 file found)."""

    kind = "sqlite"
    database = True

    def data_paths(self) -> list[Path]:
        given = self.settings.get("databases")
        if given:
            return [Path(p) for p in given]
        found: list[Path] = []
        for r in self.roots:
            for pattern in ("*.db", "*.sqlite", "*.sqlite3"):
                found += sorted(Path(r).rglob(pattern))
        return found

    def own_checks(self, *, quick: bool = False) -> list[CheckResult]:
        dbs = self.data_paths()
        if not dbs:
            return [CheckResult("databases", False, f"no SQLite database under {', '.join(self.roots)}", 0.0)]
        return [timed(f"integrity {p}", functools.partial(_integrity, p)) for p in dbs]


def _integrity(path: Path) -> tuple[bool, str]:
    if not path.is_file():
        return False, f"{path} does not exist"
    try:
        # as_uri quotes the name: a replicated file's "?", "#" or "%" cannot change what is opened, or how
        con = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            rows = [r[0] for r in con.execute("PRAGMA integrity_check")]
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        return False, f"{path}: {exc}"
    return rows == ["ok"], f"{path}: {'; '.join(rows[:5])}"


class Service(Application):
    """A service started and stopped by commands (run with /bin/sh -c) or a systemd unit."""

    kind = "service"

    def _command(self, what: str) -> list[str] | None:
        unit = self.settings.get("unit")
        if unit:
            return {
                "start": ["systemctl", "start", unit],
                "stop": ["systemctl", "stop", unit],
                "status": ["systemctl", "is-active", "--quiet", unit],
            }[what]
        cmd = self.settings.get(what)
        return ["/bin/sh", "-c", cmd] if cmd else None

    def start(self) -> None:
        if self._command("status") is not None and self.running():
            return  # (without a status command, start always runs: it must be idempotent itself)
        self._do("start", float(self.settings.get("start_timeout", 60)))

    def stop(self) -> None:
        if self._command("status") is not None and not self.running():
            return
        self._do("stop", float(self.settings.get("stop_timeout", 60)))

    def _do(self, what: str, timeout: float) -> None:
        argv = self._command(what)
        if argv is None:
            raise AppError(f"the {self.settings.get('type', 'service')} application has no {what} command")
        code, out = run(argv, timeout=timeout, what=f"{what} {self.settings.get('type', 'service')}")
        if code != 0:
            raise AppError(f"{what} failed (exit {code}): {out.strip()[-500:]}")

    def running(self) -> bool:
        argv = self._command("status")
        if argv is None:
            return True  # nothing to ask: counts as running
        code, _ = run(argv, timeout=10, what="status")
        return code == 0

    def own_checks(self, *, quick: bool = False) -> list[CheckResult]:
        if self._command("status") is None:
            return []  # nothing to ask; its checks (tcp, scripts) say whether it works
        return [timed("running", self._status_check)]

    def _status_check(self) -> tuple[bool, str]:
        up = self.running()
        return up, "status says running" if up else "not running"


def site_definition(plugins_dir: Path, name: str) -> dict[str, Any] | None:
    """A site's own application, ``<plugins>/apps/<name>.yml``: a service definition."""
    path = plugins_dir / "apps" / f"{name}.yml"
    if not name.replace("-", "").replace("_", "").isalnum() or not path.is_file():
        return None
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise AppError(f"cannot read the application definition: {exc}", where=str(path)) from exc
    if not isinstance(doc, dict):
        raise AppError("an application definition is a mapping (start, stop, status or unit, checks)", where=str(path))
    unknown = sorted(set(doc) - SERVICE_KEYS)
    if unknown:
        raise AppError(
            f"unknown key(s) {', '.join(unknown)}", where=str(path), hint=f"keys: {', '.join(sorted(SERVICE_KEYS))}"
        )
    return {**doc, "type": name}


BUILTIN: dict[str, type[Application]] = {
    "files": Files,
    "sqlite": Sqlite,
    "service": Service,
    "postgresql": PostgreSQL,
    "mysql": MySQL,
}

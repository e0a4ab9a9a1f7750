"""PostgreSQL: find the data directory, start and stop it with pg_ctl, check it answers and is consistent.

Settings (all optional): ``data_dir`` (default: the directory holding ``PG_VERSION`` inside the roots),
``bin_dir`` (default: ``/usr/lib/postgresql/<the version in PG_VERSION>/bin`` when installed, else the newest
there), ``port`` (5432), ``listen_addresses`` ("localhost"), ``socket_dir`` (default: the data directory),
``os_user`` ("postgres"; every PostgreSQL program runs as this user, which cannot be root), ``user``
("postgres", the database role the checks connect as), ``database`` ("postgres"), ``query`` ("select 1"),
``log_file``, ``start_timeout`` and ``stop_timeout`` (60 s).

Checks: *accepting connections* (pg_isready), *query* (the configured query answers), *consistent*
(the cluster state is "in production" and every row of every user table of ``database`` is read from
the heap, whole; left out by ``quick`` checks, which monitoring runs every round).
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
import stat
from pathlib import Path

from twinsite.apps.base import Application
from twinsite.apps.checks import CheckResult, run, tail, timed
from twinsite.errors import AppError

INSTALLED = Path("/usr/lib/postgresql")

# Reads every row of every user table from the heap, whole (each row turned into text, which also reads its
# TOASTed values), with index scans turned off so that nothing is answered from an index or the visibility
# map: a damaged page, a failed data checksum or a missing file makes it fail. Read-only.
SCAN_ALL = """
SET enable_indexscan = off; SET enable_indexonlyscan = off; SET enable_bitmapscan = off;
DO $$
DECLARE t record; n bigint; total bigint := 0; tables int := 0;
BEGIN
  FOR t IN SELECT schemaname, relname FROM pg_stat_user_tables ORDER BY 1, 2 LOOP
    EXECUTE format('SELECT count(length(x::text)) FROM %I.%I x', t.schemaname, t.relname) INTO n;
    total := total + n; tables := tables + 1;
  END LOOP;
  RAISE NOTICE 'read % rows in % tables', total, tables;
END $$;
"""


class PostgreSQL(Application):
    kind = "postgresql"
    database = True

    # -- where things are ----------------------------------------------------------------------------
    def data_dir(self) -> Path:
        return self.find_data_dir(("PG_VERSION",), "PostgreSQL data directory (a PG_VERSION file)")

    def data_paths(self) -> list[Path]:
        return [self.data_dir()]

    def bin_dir(self) -> Path:
        given = self.settings.get("bin_dir")
        if given:
            return Path(given)
        try:  # the version the cluster was made with (during a major upgrade a newer one is installed too)
            made = _version(self.data_dir() / "PG_VERSION")
        except AppError:
            made = None
        if made and (INSTALLED / made / "bin").is_dir():
            return INSTALLED / made / "bin"
        versions = sorted(INSTALLED.glob("*/bin"), key=lambda p: [int(x) for x in re.findall(r"\d+", p.parent.name)])
        if not versions:
            raise AppError("PostgreSQL is not installed here (no /usr/lib/postgresql/*/bin)", hint="set bin_dir")
        return versions[-1]

    @property
    def port(self) -> int:
        return int(self.settings.get("port", 5432))

    def socket_dir(self) -> Path:
        return Path(self.settings.get("socket_dir") or self.data_dir())

    def _owner(self) -> pwd.struct_passwd:
        """The system user PostgreSQL runs as (``os_user``); never root: its programs read replicated files, which
        a local user may have written."""
        name = str(self.settings.get("os_user", "postgres"))
        hint = "set application.os_user to the data directory's owner"
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            raise AppError(f"os_user {name!r}: no such system user", hint=hint) from None
        if pw.pw_uid == 0:
            raise AppError(f"os_user {name!r} is root: PostgreSQL's programs do not run as root", hint=hint)
        return pw

    def _run(self, tool: str, args: list[str], *, timeout: float, what: str) -> tuple[int, str]:
        """Run one of PostgreSQL's programs (``bin_dir``) as the owner: every program this plugin runs goes
        through here."""
        argv = [str(self.bin_dir() / tool), *args]
        if os.geteuid() == 0:
            argv = ["runuser", "-u", self._owner().pw_name, "--", *argv]
        return run(argv, timeout=timeout, what=what)

    def _log(self) -> Path:
        log = Path(self.settings.get("log_file") or f"/var/log/twinsite-postgresql-{self.port}.log")
        if os.geteuid() == 0 and not log.exists():
            log.parent.mkdir(parents=True, exist_ok=True)
            log.touch(mode=0o640)
            pw = self._owner()
            os.chown(log, pw.pw_uid, pw.pw_gid)
        return log

    # -- start, stop ---------------------------------------------------------------------------------
    def running(self) -> bool:
        code, _ = self._run("pg_ctl", ["-D", str(self.data_dir()), "status"], timeout=10, what="pg_ctl status")
        return code == 0

    def start(self) -> None:
        if self.running():
            return
        timeout = float(self.settings.get("start_timeout", 60))
        listen = str(self.settings.get("listen_addresses", "localhost"))
        opts = shlex.join(["-p", str(self.port), "-k", str(self.socket_dir()), "-c", f"listen_addresses={listen}"])
        log = self._log()
        args = [
            "-D",
            str(self.data_dir()),
            "-l",
            str(log),
            "-w",
            "-t",
            str(int(timeout)),
            "-o",
            opts,
            "start",
        ]
        code, out = self._run("pg_ctl", args, timeout=timeout + 10, what="starting PostgreSQL")
        if code != 0:
            last = tail(log)
            raise AppError(
                f"PostgreSQL did not start (pg_ctl exit {code}): {out.strip()[-300:]}\n{last}",
                where=str(self.data_dir()),
            )

    def stop(self) -> None:
        if not self.running():
            return
        timeout = float(self.settings.get("stop_timeout", 60))
        args = ["-D", str(self.data_dir()), "-m", "fast", "-w", "-t", str(int(timeout)), "stop"]
        code, out = self._run("pg_ctl", args, timeout=timeout + 10, what="stopping PostgreSQL")
        if code != 0:
            raise AppError(
                f"PostgreSQL did not stop (pg_ctl exit {code}): {out.strip()[-500:]}", where=str(self.data_dir())
            )

    # -- checks --------------------------------------------------------------------------------------
    def _psql(self, sql: str, timeout: float = 30) -> tuple[int, str]:
        args = [
            "-X", "-v", "ON_ERROR_STOP=1", "-h", str(self.socket_dir()), "-p", str(self.port),
            "-U", str(self.settings.get("user", "postgres")), "-d", str(self.settings.get("database", "postgres")),
            "-Atc", sql,
        ]  # fmt: skip
        return self._run("psql", args, timeout=timeout, what="psql")

    def own_checks(self, *, quick: bool = False) -> list[CheckResult]:
        out = [timed("accepting connections", self._ready), timed("query", self._query)]
        return out if quick else [*out, timed("consistent", self._consistent)]

    def _ready(self) -> tuple[bool, str]:
        args = ["-h", str(self.socket_dir()), "-p", str(self.port), "-t", "5"]
        code, out = self._run("pg_isready", args, timeout=15, what="pg_isready")
        return code == 0, out

    def _query(self) -> tuple[bool, str]:
        code, out = self._psql(str(self.settings.get("query", "select 1")))
        return code == 0, out

    def _consistent(self) -> tuple[bool, str]:
        code, out = self._run("pg_controldata", [str(self.data_dir())], timeout=15, what="pg_controldata")
        state = next(
            (line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Database cluster state")),
            "?",
        )
        if code != 0 or state != "in production":
            return False, f"cluster state: {state}"
        code, scan = self._psql(SCAN_ALL, timeout=float(self.settings.get("scan_timeout", 300)))
        return code == 0, f"cluster state: {state}; {scan.strip()}"


def _version(path: Path) -> str | None:
    """The version a cluster's ``PG_VERSION`` names ("15", "9.6"), or None. The file is replicated data: a link,
    anything but a regular file, or any other content is no version."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)  # (O_NONBLOCK: a FIFO does not block)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        text = os.read(fd, 32).strip()
    finally:
        os.close(fd)
    return text.decode() if re.fullmatch(rb"\d+(\.\d+)?", text) else None

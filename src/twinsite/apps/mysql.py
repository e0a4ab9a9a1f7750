"""MariaDB (and MySQL): find the data directory, start and stop the server, check it answers and every table is
sound.

Settings (all optional): ``data_dir`` (default: the directory inside the roots holding the ``mysql`` system
schema and ``aria_log_control`` or ``ibdata1``), ``server`` (the server program: ``mariadbd``, else ``mysqld``,
from PATH or /usr/sbin), ``port`` (3306), ``bind_address`` ("127.0.0.1"), ``socket`` and ``pid_file`` (default
``/run/twinsite-mysql/<port>.sock`` and ``.pid``: outside the replicated data), ``os_user`` ("mysql": the server
drops to it; never root), ``user`` ("root", what the checks connect as, through the socket: Debian's root
authenticates by its Unix user), ``database`` ("mysql"), ``query`` ("select 1"), ``log_file``,
``start_timeout`` and ``stop_timeout`` (60 s), ``check_timeout`` (300 s).

The server starts with ``--no-defaults``: only these settings and the data directory decide how it runs, never
a host's my.cnf (which may point at another data directory). Starting on a copy taken at any moment (a
replica, an assured-recovery overlay) is InnoDB's crash recovery: the redo log brings the tables to their last
commit.

Checks: *ping* (``mariadb-admin ping``), *query* (the configured query answers), *tables* (``mariadb-check
--all-databases``: CHECK TABLE on every table, every one must say OK; left out by ``quick`` checks).
"""

from __future__ import annotations

import pwd
import shutil
from pathlib import Path

from twinsite.apps.base import Application
from twinsite.apps.checks import CheckResult, run, tail, timed
from twinsite.errors import AppError
from twinsite.proc import pid_alive, read_pid, spawn, stop_pid, wait_until

RUN_DIR = Path("/run/twinsite-mysql")  # the default socket's and pid file's, the server user's


class MySQL(Application):
    kind = "mysql"
    database = True

    # -- where things are ----------------------------------------------------------------------------
    def data_dir(self) -> Path:
        return self.find_data_dir(
            ("aria_log_control", "ibdata1"),
            "MariaDB/MySQL data directory (a mysql/ schema beside aria_log_control or ibdata1)",
            beside=lambda d: (d / "mysql").is_dir(),
        )

    def data_paths(self) -> list[Path]:
        return [self.data_dir()]

    @property
    def port(self) -> int:
        return int(self.settings.get("port", 3306))

    def socket(self) -> Path:
        return Path(self.settings.get("socket") or RUN_DIR / f"{self.port}.sock")

    def pid_file(self) -> Path:
        return Path(self.settings.get("pid_file") or RUN_DIR / f"{self.port}.pid")

    def _program(self, names: tuple[str, ...], setting: str | None = None) -> str:
        given = self.settings.get(setting) if setting else None
        if given:
            return str(given)
        for name in names:
            found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
            if found:
                return found
        raise AppError(f"MariaDB/MySQL is not installed here (no {' or '.join(names)})", hint="install mariadb-server")

    def _os_user(self) -> str:
        name = str(self.settings.get("os_user", "mysql"))
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            raise AppError(f"os_user {name!r}: no such system user", hint="set application.os_user") from None
        if pw.pw_uid == 0:
            raise AppError(f"os_user {name!r} is root: the server does not run as root", hint="set application.os_user")
        return name

    def _client(self, tool: tuple[str, ...], args: list[str], *, timeout: float, what: str) -> tuple[int, str]:
        """One of the client programs, through the socket, as ``user``: every client this plugin runs."""
        base = ["--no-defaults", f"--socket={self.socket()}", f"--user={self.settings.get('user', 'root')}"]
        return run([self._program(tool), *base, *args], timeout=timeout, what=what)

    # -- start, stop ---------------------------------------------------------------------------------
    def _pid(self) -> int | None:
        return read_pid(self.pid_file(), argv_has=f"--datadir={self.data_dir()}")  # (a reused pid is not ours)

    def running(self) -> bool:
        return self._pid() is not None

    def start(self) -> None:
        if self.running():
            return
        timeout = float(self.settings.get("start_timeout", 60))
        data = self.data_dir()
        log = Path(self.settings.get("log_file") or f"/var/log/twinsite-mysql-{self.port}.log")
        user = self._os_user()
        for p in (self.socket(), self.pid_file()):
            if not p.parent.is_dir():  # (made for the server's user, who writes its socket and pid there)
                p.parent.mkdir(parents=True, mode=0o755)
                shutil.chown(p.parent, user, user)
        argv = [
            self._program(("mariadbd", "mysqld"), "server"),
            "--no-defaults",
            f"--datadir={data}",
            f"--user={user}",
            f"--port={self.port}",
            f"--bind-address={self.settings.get('bind_address', '127.0.0.1')}",
            f"--socket={self.socket()}",
            f"--pid-file={self.pid_file()}",
            f"--log-error={log}",
        ]
        started = self.pid_file().with_name(self.pid_file().name + ".started")  # (the server writes its own pid file)
        pid = spawn(argv, pidfile=started, logfile=log)
        if not wait_until(lambda: not pid_alive(pid) or self._ping()[0], timeout=timeout, interval=0.2):
            stop_pid(pid, timeout=10)
            raise AppError(f"MariaDB did not answer within {timeout:.0f} s\n{tail(log)}", where=str(data))
        started.unlink(missing_ok=True)
        if not pid_alive(pid):
            raise AppError(f"MariaDB did not start\n{tail(log)}", where=str(data))

    def stop(self) -> None:
        pid = self._pid()
        if pid is None:
            return
        timeout = float(self.settings.get("stop_timeout", 60))
        self._client(("mariadb-admin", "mysqladmin"), ["shutdown"], timeout=timeout, what="mariadb-admin shutdown")
        if not wait_until(lambda: not pid_alive(pid), timeout=timeout, interval=0.2):
            raise AppError(f"MariaDB did not stop within {timeout:.0f} s", where=str(self.data_dir()))
        self.pid_file().unlink(missing_ok=True)

    # -- checks --------------------------------------------------------------------------------------
    def own_checks(self, *, quick: bool = False) -> list[CheckResult]:
        out = [timed("ping", self._ping), timed("query", self._query)]
        return out if quick else [*out, timed("tables", self._tables)]

    def _ping(self) -> tuple[bool, str]:
        code, out = self._client(("mariadb-admin", "mysqladmin"), ["--connect-timeout=5", "ping"], timeout=15,
                                 what="mariadb-admin ping")  # fmt: skip
        return code == 0, out

    def _query(self) -> tuple[bool, str]:
        sql = str(self.settings.get("query", "select 1"))
        database = str(self.settings.get("database", "mysql"))
        code, out = self._client(("mariadb", "mysql"), ["-N", "-B", "-e", sql, database], timeout=30, what="query")
        return code == 0, out

    def _tables(self) -> tuple[bool, str]:
        """CHECK TABLE on every table of every database: each answers OK (or is a view, which has no rows)."""
        timeout = float(self.settings.get("check_timeout", 300))
        code, out = self._client(("mariadb-check", "mysqlcheck"), ["--all-databases", "--check"], timeout=timeout,
                                 what="mariadb-check")  # fmt: skip
        lines = [line for line in out.splitlines() if line.strip()]
        bad = [line for line in lines if not line.rstrip().endswith("OK") and "is a view" not in line]
        tables = sum(1 for line in lines if line.rstrip().endswith("OK"))
        if code != 0 or bad:
            return False, "\n".join(bad[:20]) or out
        return True, f"{tables} tables checked, all OK"

"""Running external programs, keeping track of the daemons we start, and waiting for things to happen.

One place for: running a command with a clear error when it fails, starting a daemon with its pid
recorded in a file, asking whether it still runs, stopping it, and polling for a condition (:func:`wait_until`).
"""

from __future__ import annotations

import contextlib
import math
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from twinsite.errors import CommandError


def run(
    argv: Sequence[str],
    *,
    check: bool = True,
    input_data: bytes | None = None,
    timeout: float = 120.0,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``argv`` (never through a shell) and return the completed process.

    With ``check`` a non-zero exit raises :class:`CommandError` carrying the command and its stderr.
    """
    try:
        proc = subprocess.run(
            list(argv),
            input=input_data,
            capture_output=True,
            timeout=timeout,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            check=False,
        )
    except FileNotFoundError as exc:
        raise CommandError(
            f"program not found: {argv[0]}", hint="run `make setup` (installs the Debian packages twinsite uses)"
        ) from exc
    except OSError as exc:  # not executable, no interpreter line, a directory
        raise CommandError(f"cannot run {argv[0]}: {exc.strerror or exc}") from exc
    except subprocess.TimeoutExpired as exc:
        raise CommandError(f"timed out after {timeout:.0f} s: {shlex.join(argv)}") from exc
    if check and proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip() or proc.stdout.decode(errors="replace").strip()
        raise CommandError(f"`{shlex.join(argv)}` failed with exit code {proc.returncode}: {err}")
    return proc


def argv_of(pid: int) -> list[bytes] | None:
    """The argv of process ``pid``, or None when it is gone (also while it exits: /proc answers ESRCH then)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
    except OSError:  # FileNotFoundError, ProcessLookupError
        return None


def read_pid(pidfile: Path, *, comm: str | None = None, argv_has: str | None = None) -> int | None:
    """The pid recorded in ``pidfile`` if that process is still alive, else None.

    With ``comm``, the process must also be that program: a pid left by a crash and reused by some other
    process is not taken for ours.
    """
    try:
        pid = int(pidfile.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    if not pid_alive(pid):
        return None
    try:
        if comm is not None and Path(f"/proc/{pid}/comm").read_text().strip() != comm[:15]:
            return None
    except OSError:
        return None
    if argv_has is not None and argv_has.encode() not in (argv_of(pid) or []):
        return None
    return pid


def write_pid(pidfile: Path, pid: int) -> None:
    """Record ``pid`` in ``pidfile`` (read back by :func:`read_pid`, which checks the process still runs)."""
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    pidfile.write_text(f"{pid}\n")


def pid_alive(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != b"Z"


def spawn(
    argv: Sequence[str],
    *,
    pidfile: Path,
    logfile: Path,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
) -> int:
    """Start a long-running program in the background, in its own session, and record its pid."""
    logfile.parent.mkdir(parents=True, exist_ok=True)
    with open(logfile, "ab") as log:
        try:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                env=dict(env) if env is not None else None,
                cwd=cwd,
            )
        except FileNotFoundError as exc:
            raise CommandError(f"program not found: {argv[0]}", hint="run `make setup`") from exc
    write_pid(pidfile, proc.pid)
    return proc.pid


def stop_pid(pid: int, *, timeout: float = 5.0) -> None:
    """SIGTERM, wait up to ``timeout``, then SIGKILL. Quiet when the process is already gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not wait_until(lambda: not pid_alive(pid), timeout=timeout):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not pid_alive(pid), timeout=math.inf, interval=0.01)  # (SIGKILL is not refused)
    _reap(pid)


def _reap(pid: int) -> None:
    """Collect ``pid`` if it is our child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def stop_pidfile(pidfile: Path, *, comm: str | None = None, argv_has: str | None = None, timeout: float = 5.0) -> bool:
    """Stop the process recorded in ``pidfile`` and remove the file. Returns True if one was running."""
    pid = read_pid(pidfile, comm=comm, argv_has=argv_has)
    if pid is not None:
        stop_pid(pid, timeout=timeout)
    pidfile.unlink(missing_ok=True)
    return pid is not None


def wait_until(
    predicate: Callable[[], bool], *, timeout: float, interval: float = 0.02, what: str | None = None
) -> bool:
    """The one way to wait for something: call ``predicate()`` every ``interval`` s until it is true (True), or
    until ``timeout`` s have passed, with one last call then (False; with ``what``, a :class:`CommandError`
    naming it instead). A predicate may raise to end the wait, and may keep what it saw for the caller's
    own error message."""
    deadline = time.monotonic() + timeout
    while not predicate():
        left = deadline - time.monotonic()
        if left <= 0:
            if what is not None:
                raise CommandError(f"{what} did not happen within {timeout:.0f} s")
            return False
        time.sleep(min(interval, left))
    return True

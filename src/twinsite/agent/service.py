"""Keeping the agent running where there is no systemd (the lab, containers): a small supervisor.

``start`` launches ``twinsite service supervise`` in its own session; the supervisor runs the agent and
starts it again (after 1 s, doubling up to 30 s) whenever it exits unexpectedly. ``stop`` ends both.
Where systemd runs, the agent role installs a unit instead and this is not used. ``agent_args`` (the
agent's metrics options) go to the supervisor, which gives them to each agent it starts.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from twinsite import logs
from twinsite.proc import argv_of, read_pid, spawn, stop_pidfile, wait_until, write_pid
from twinsite.state.layout import HostState

SUPERVISOR_MARK = "supervise"
log = logging.getLogger(__name__)


def status(state_dir: Path) -> dict[str, object]:
    host = HostState(state_dir)
    pid = read_pid(host.supervisor_pid, argv_has=SUPERVISOR_MARK)
    agent = read_pid(host.agent_pid, argv_has="agent")
    return {"running": pid is not None, "supervisor_pid": pid, "agent_pid": agent}


def _argv(command: Sequence[str], config_dir: Path, state_dir: Path, agent_args: Sequence[str]) -> list[str]:
    dirs = ["--config-dir", str(config_dir), "--state-dir", str(state_dir)]
    return [sys.executable, "-m", "twinsite.cli.main", *command, *dirs, *agent_args]


def agent_argv(config_dir: Path, state_dir: Path, agent_args: Sequence[str] = ()) -> list[str]:
    return _argv(["agent"], config_dir, state_dir, agent_args)


def start(config_dir: Path, state_dir: Path, agent_args: Sequence[str] = ()) -> bool:
    """Make the supervisor run with these directories and agent options: started unless it runs, restarted
    when it runs with others (a changed ``--metrics-*``). Returns True when it was started (changed)."""
    argv = _argv(["service", SUPERVISOR_MARK], config_dir, state_dir, agent_args)
    st = status(state_dir)
    if st["running"]:
        pid = st["supervisor_pid"]
        running = argv_of(pid) if isinstance(pid, int) else None
        if running is None or running[1:] == [a.encode() for a in argv[1:]]:  # (the interpreter's path may differ)
            return False
        stop(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    host = HostState(state_dir)
    spawn(argv, pidfile=host.supervisor_pid, logfile=host.agent_log)
    # (the supervisor starts the agent at once; a slow start is not an error: the service is started)
    wait_until(lambda: status(state_dir)["agent_pid"] is not None, timeout=10, interval=0.05)
    return True


def stop(state_dir: Path) -> bool:
    return stop_pidfile(HostState(state_dir).supervisor_pid, argv_has=SUPERVISOR_MARK, timeout=20)


def supervise(config_dir: Path, state_dir: Path, agent_args: Sequence[str] = ()) -> int:
    logs.setup("supervisor")
    agent_pid = HostState(state_dir).agent_pid
    done = threading.Event()
    proc: subprocess.Popen[bytes] | None = None

    def _stop(_sig: int, _frame: FrameType | None) -> None:
        done.set()
        if proc is not None and proc.poll() is None:
            proc.terminate()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    delay = 1.0
    while not done.is_set():
        started = time.monotonic()
        proc = subprocess.Popen(agent_argv(config_dir, state_dir, agent_args))
        write_pid(agent_pid, proc.pid)
        rc = proc.wait()
        if done.is_set():
            break
        log.warning("agent exited with %s; starting it again in %.0f s", rc, delay)
        if time.monotonic() - started > 60:
            delay = 1.0
        done.wait(delay)
        delay = min(delay * 2, 30.0)
    agent_pid.unlink(missing_ok=True)
    return 0

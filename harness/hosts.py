"""Reaching the lab's hosts: a command over real OpenSSH (host keys verified), a command inside a host
(``twinsite lab exec``: a process killed there reports its own signal), the JSON answer of the twinsite
installed on a host, and what its agent recorded: the event log and the agent's own log."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from harness.cli import VENV_BIN
from harness.wait import eventually
from twinsite.lab import netns
from twinsite.lab.topology import Lab
from twinsite.proc import argv_of, wait_until
from twinsite.state import events as state_events
from twinsite.state.layout import HostState, ScenarioState

TWINSITE = "/opt/twinsite/bin/twinsite"  # where the agent role (and harness.scenarios.install) puts it


def ssh(
    lab: Lab,
    host: str,
    command: str,
    *,
    timeout: float = 30,
    known_hosts: Path | None = None,
    extra: list[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` on a lab host through real OpenSSH, host key verified against the lab's known_hosts."""
    argv = ["ssh", "-F", str(lab.ssh_config), *(extra or [])]
    if known_hosts is not None:
        argv += ["-o", f"UserKnownHostsFile={known_hosts}"]
    argv += [host, command]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def on_host(
    lab: Lab, host: str, *argv: str, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command inside a lab host (not over SSH: a process killed there reports its own signal)."""
    prefix = ["env", *[f"{k}={v}" for k, v in (env or {}).items()]] if env else []
    return subprocess.run(
        [str(VENV_BIN / "twinsite"), "lab", "exec", host, "--", *prefix, *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def twinsite_on(
    lab: Lab, host: str, *args: str, timeout: float = 300, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """``twinsite ARGS --json`` on a lab host; the whole JSON answer (ok or not)."""
    p = on_host(lab, host, TWINSITE, *args, "--json", timeout=timeout, env=env)
    try:
        body: dict[str, Any] = json.loads(p.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError) as exc:
        raise AssertionError(
            f"twinsite {' '.join(args)} on {host}: exit {p.returncode}\n{p.stdout}\n{p.stderr}"
        ) from exc
    return body


def events(lab: Lab, host: str, since: float = 0.0) -> list[dict[str, Any]]:
    """The host's event log (its alerts), those at or after ``since`` (to the second) if given."""
    out = []
    for e in state_events.read(HostState(lab.host(host).private_dir("/var/lib/twinsite")).events):
        at = e.get("at", "")
        if "kind" in e and (not since or at >= time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(since - 1))):
            out.append(e)
    return out


def wait_event(lab: Lab, host: str, kind: str, since: float, timeout: float) -> dict[str, Any]:
    """The first ``kind`` event in the host's log since ``since``, waited for up to ``timeout`` seconds."""
    found: list[dict[str, Any]] = []

    def logged() -> bool:
        found[:] = [e for e in events(lab, host, since) if e["kind"] == kind]
        return bool(found)

    if not eventually(logged, timeout=timeout, interval=0.2, what=f"a {kind} event on {host}"):
        raise AssertionError(
            f"no {kind} event on {host} within {timeout} s: {[e['kind'] for e in events(lab, host, since)]}"
        )
    return found[0]


def agent_log(lab: Lab, host: str) -> Path:
    """The log of the host's supervised agent (``twinsite service start``, as the agent role starts it)."""
    return HostState(lab.host(host).private_dir("/var/lib/twinsite")).agent_log


def log_size(path: Path) -> int:
    """Where a log ends now: what is written after it is new."""
    return path.stat().st_size if path.exists() else 0


def wait_logged(path: Path, line: str, *, after: int, timeout: float) -> None:
    """Until ``line`` is in the log written after byte ``after`` (an agent says what it did once it did it)."""

    def logged() -> bool:
        with open(path, "rb") as f:
            f.seek(after)
            return line in f.read().decode(errors="replace")

    wait_until(lambda: path.exists() and logged(), timeout=timeout, interval=0.1, what=f"{line!r} in {path}")


def kill_receivers(lab: Lab, scenario: str) -> int:
    """kill -9 every `twinsite receive` of ``scenario`` on dr1 (the sender notices and reconnects); how many. A
    receiver's command line names no scenario (the stream does): it is known by the state it holds open."""
    mark = f"/var/lib/twinsite/{scenario}/recv/"
    n = 0
    for pid in netns.pids(lab.host("dr1").netns):
        if b"receive" not in (argv_of(pid) or []) or not any(mark in f for f in _open_files(pid)):
            continue  # (a receiver that is exiting has no argv: /proc says ESRCH)
        with contextlib.suppress(ProcessLookupError):  # (it may have exited meanwhile)
            os.kill(pid, signal.SIGKILL)
            n += 1
    return n


def _open_files(pid: int) -> list[str]:
    """What the process's descriptors name (as its mount namespace sees them); none once it is gone."""
    out = []
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                out.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
    return out


def reset_roles(lab: Lab, scenario: str, hosts: tuple[str, ...], active: str) -> None:
    """Make ``active`` the active host of ``scenario`` on every one of ``hosts``, whatever a failed test left:
    at an epoch above any of theirs, never back to 0. (A sender still running at the old epoch would re-point
    a standby whose role file is simply deleted: a standby follows the newer epoch, state.role.followed.)
    A switchover run left unfinished is dropped."""
    epoch = 1 + max(int(twinsite_on(lab, h, "role", scenario)["result"]["epoch"]) for h in hosts)
    for h in hosts:
        ScenarioState(lab.host(h).private_dir("/var/lib/twinsite"), scenario).switchover_run.unlink(missing_ok=True)
        body = twinsite_on(lab, h, "role", scenario, "--set", active, "--epoch", str(epoch))
        if not body["ok"]:
            raise AssertionError(body)

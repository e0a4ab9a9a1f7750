"""Running a command on another host of a scenario over SSH, and reading twinsite's JSON answer from it.

One place for how the control path reaches a peer (the monitor, the switchover, switch-back, verify): the
scenario's known_hosts and ssh_options with twinsite's fixed options, optionally over one persistent
OpenSSH connection (ControlMaster) whose socket lives under ``control_dir``. ssh's own failure (exit 255)
or no answer in time means the host is unreachable, never that the command failed.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twinsite.config.scenario import Replication
from twinsite.errors import HostUnreachableError, RemoteError, TwinsiteError
from twinsite.transport.channels import openssh_argv, to_host

UNREACHABLE = 255  # ssh's own exit code
TIMED_OUT = -1


@dataclass(frozen=True)
class Answer:
    code: int  # the command's exit code, UNREACHABLE or TIMED_OUT
    out: str
    err: str

    @property
    def reached(self) -> bool:
        return self.code not in (UNREACHABLE, TIMED_OUT)


def run_on(
    rep: Replication,
    host: str,
    argv: Sequence[str],
    *,
    timeout: float,
    control_dir: Path | None = None,
    persist: float = 60.0,
    stdin: str | None = None,
) -> Answer:
    """Run ``argv`` on ``host`` (no shell on our side; the remote login shell gets it quoted)."""
    options: tuple[tuple[str, str], ...] = ()
    if control_dir is not None:
        control_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        # (%C is 40 characters: the socket path stays far below the 108 bytes of a unix socket name)
        options = (
            ("ControlMaster", "auto"),
            ("ControlPath", str(control_dir / "%C")),
            ("ControlPersist", str(int(persist))),
        )
    ep = to_host(rep, host, list(argv), options=options)
    try:
        proc = subprocess.run(
            openssh_argv(ep),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return Answer(TIMED_OUT, "", f"no answer within {timeout:g} s")
    return Answer(proc.returncode, proc.stdout, proc.stderr)


def twinsite_on(
    rep: Replication,
    host: str,
    args: Sequence[str],
    *,
    timeout: float,
    control_dir: Path | None = None,
    stdin: str | None = None,
) -> dict[str, Any]:
    """``twinsite ARGS --json`` on ``host``: its result, or the error it reported (raised as a TwinsiteError
    of the same exit code), or HostUnreachableError."""
    a = run_on(rep, host, [rep.remote_twinsite, *args, "--json"], timeout=timeout, control_dir=control_dir, stdin=stdin)
    command = " ".join(args[:2])
    if not a.reached:
        raise HostUnreachableError(f"{host} did not answer `twinsite {command}`: {a.err.strip()[-300:]}", where=host)
    try:
        body = json.loads(a.out.strip().splitlines()[-1])
    except (ValueError, IndexError) as exc:
        raise TwinsiteError(
            f"`twinsite {command}` on {host} gave no JSON answer (exit {a.code}): {(a.err or a.out).strip()[-300:]}",
            where=host,
        ) from exc
    if not body.get("ok"):
        raise remote_error(body.get("error") or {}, host)
    result: dict[str, Any] = body.get("result") or {}
    return result


def remote_error(err: dict[str, Any], host: str) -> TwinsiteError:
    """The error a peer's CLI reported, as an error of ours with its exit code (so callers can tell them apart)."""
    exc = RemoteError(str(err.get("message", "failed")), where=err.get("where") or host, hint=err.get("hint"))
    exc.type = str(err.get("type", "TwinsiteError"))
    exc.remote_exit_code = int(err.get("exit_code", 2))
    return exc

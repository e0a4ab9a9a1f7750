"""Running a command on another host of a scenario over SSH, and reading twinsite's JSON answer from it.

One place for how the control path reaches a peer (the monitor, the switchover, switch-back, verify): the
scenario's known_hosts and ssh_options with twinsite's fixed options, optionally over one persistent
OpenSSH connection (ControlMaster) whose socket lives under ``control_dir``. ssh's own failure (exit 255)
or no answer in time means the host is unreachable, never that the command failed.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twinsite.config.scenario import Replication
from twinsite.errors import HostUnreachableError, RemoteError, TwinsiteError
from twinsite.transport.channels import Endpoint, openssh_argv, to_host

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
    options = multiplexed(control_dir, persist)
    return run_endpoint(to_host(rep, host, list(argv), options=options), timeout=timeout, stdin=stdin)


#: the longest socket name a unix socket takes (108 bytes with its ending NUL)
_SOCKET_NAME_MAX = 107


def multiplexed(control_dir: Path | None, persist: float = 60.0) -> tuple[tuple[str, str], ...]:
    """The ssh options for one persistent connection per host whose socket is under ``control_dir`` (created
    0700), kept ``persist`` seconds after its last use; none without ``control_dir``, or when a socket there
    would have too long a name (each command then makes its own connection)."""
    if control_dir is None:
        return ()
    control_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if len(os.fsencode(control_dir)) + 1 + 40 > _SOCKET_NAME_MAX:  # (%C is 40 characters)
        return ()
    return (
        ("ControlMaster", "auto"),
        ("ControlPath", str(control_dir / "%C")),
        ("ControlPersist", str(int(persist))),
    )


def run_endpoint(ep: Endpoint, *, timeout: float, stdin: str | None = None) -> Answer:
    """Run ``ep.command`` on ``ep.host`` over OpenSSH: its answer, UNREACHABLE (ssh's own failure) or TIMED_OUT."""
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
    return json_answer(a, host, args)


def json_answer(a: Answer, host: str, args: Sequence[str]) -> dict[str, Any]:
    """The result in the answer of ``twinsite ARGS --json`` on ``host``, or the error it reported (raised as a
    TwinsiteError of the same exit code), or HostUnreachableError."""
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


@contextlib.contextmanager
def twinsite_held(rep: Replication, host: str, args: Sequence[str], *, timeout: float) -> Iterator[dict[str, Any]]:
    """``twinsite ARGS --json`` on ``host`` for as long as the block runs: a command that prints its result's
    line first and then waits for its input to end (``twinsite point-hold``). The block gets that result; its
    end closes the command's input, and so does anything that ends this process or the connection."""
    ep = to_host(rep, host, [rep.remote_twinsite, *args, "--json"])
    command = " ".join(args[:2])
    proc = subprocess.Popen(
        openssh_argv(ep), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    stdin, stdout, stderr = proc.stdin, proc.stdout, proc.stderr
    if stdin is None or stdout is None or stderr is None:  # (never: all three are piped)
        raise TwinsiteError("ssh gave no pipes", where=host)
    try:
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        if reader.is_alive():
            proc.kill()
            raise HostUnreachableError(f"{host} did not answer `twinsite {command}` within {timeout:g} s", where=host)
        if not line[0].strip():
            code, err = proc.wait(), stderr.read().strip()[-300:]
            if code == UNREACHABLE:
                raise HostUnreachableError(f"{host} did not answer `twinsite {command}`: {err}", where=host)
            raise TwinsiteError(f"`twinsite {command}` on {host} ended without an answer (exit {code}): {err}")
        try:
            body = json.loads(line[0])
        except ValueError as exc:
            raise TwinsiteError(f"`twinsite {command}` on {host} answered {line[0][:300]!r}", where=host) from exc
        if not body.get("ok"):
            raise remote_error(body.get("error") or {}, host)
        yield body.get("result") or {}
    finally:
        with contextlib.suppress(OSError):
            stdin.close()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        stdout.close()
        stderr.close()


def remote_error(err: dict[str, Any], host: str) -> TwinsiteError:
    """The error a peer's CLI reported, as an error of ours with its exit code (so callers can tell them apart)."""
    exc = RemoteError(str(err.get("message", "failed")), where=err.get("where") or host, hint=err.get("hint"))
    exc.type = str(err.get("type", "TwinsiteError"))
    exc.remote_exit_code = int(err.get("exit_code", 2))
    return exc

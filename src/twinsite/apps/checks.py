"""Check results, running commands with a timeout, and the checks any application can add: a TCP port, a
site script."""

from __future__ import annotations

import functools
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twinsite.errors import AppError, CommandError
from twinsite.proc import run as proc_run


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    output: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "output": self.output, "seconds": round(self.seconds, 3)}


def timed(name: str, fn: Callable[[], tuple[bool, str]]) -> CheckResult:
    """Run one check, timed; an AppError is a failed check (its message the output)."""
    t0 = time.monotonic()
    try:
        ok, out = fn()
    except AppError as exc:
        ok, out = False, str(exc)
    return CheckResult(name, ok, out.strip()[-2000:], time.monotonic() - t0)


def run(argv: list[str], *, timeout: float, what: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """(exit code, stdout+stderr) of a command; one that cannot be run, or a timeout, is an AppError."""
    try:
        proc = proc_run(argv, check=False, timeout=timeout, env=env)
    except CommandError as exc:
        raise AppError(f"{what}: {exc.message}") from exc
    return proc.returncode, (proc.stdout + proc.stderr).decode(errors="replace")


def tcp(host: str, port: int, timeout: float) -> tuple[bool, str]:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True, f"{host}:{port} accepts connections"
    except OSError as exc:
        return False, f"{host}:{port}: {exc.strerror or exc}"


def site_script(plugins_dir: Path, kind: str, name: str) -> Path:
    """``<plugins>/<kind>/<name>`` (kind: checks, redirect, fence): an executable that stays inside that
    directory (a name with ``..`` or a link out of it is refused)."""
    path = (plugins_dir / kind / name).resolve()
    if not path.is_relative_to((plugins_dir / kind).resolve()):
        raise AppError(f"{kind} script {name!r} is outside {plugins_dir / kind}")
    if not path.is_file() or not os.access(path, os.X_OK):
        raise AppError(f"{kind} script {path} is missing or not executable")
    return path


def script(plugins_dir: Path, name: str, args: list[str], timeout: float) -> tuple[bool, str]:
    """A site check from ``<plugins>/checks/<name>``: it passes when it exits 0."""
    path = site_script(plugins_dir, "checks", name)
    code, out = run([str(path), *args], timeout=timeout, what=f"check {name}")
    return code == 0, out or f"exit {code}"


def extra_checks(specs: list[dict[str, Any]], plugins_dir: Path) -> list[CheckResult]:
    out = []
    for s in specs:
        timeout = float(s.get("timeout", 10))
        if s["type"] == "tcp":
            host, port = s.get("host", "127.0.0.1"), int(s["port"])
            out.append(timed(f"tcp {host}:{port}", functools.partial(tcp, host, port, timeout)))
        elif s["type"] == "script":
            name, args = s["name"], [str(a) for a in s.get("args", [])]
            out.append(timed(f"script {name}", functools.partial(script, plugins_dir, name, args, timeout)))
    return out

"""Running commands with a timeout, and the checks any application can add: a TCP port, a site script."""

from __future__ import annotations

import functools
import os
import socket
import subprocess
from pathlib import Path
from typing import Any

from twinsite.apps import AppError, CheckResult, timed


def run(argv: list[str], *, timeout: float, what: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """(exit code, stdout+stderr) of a command; a missing program or a timeout is an AppError."""
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=None if env is None else {**os.environ, **env},
        )
    except FileNotFoundError as exc:
        raise AppError(f"{what}: {argv[0]} is not installed") from exc
    except OSError as exc:  # not executable, no interpreter line, a directory
        raise AppError(f"{what}: cannot run {argv[0]}: {exc.strerror or exc}") from exc
    except subprocess.TimeoutExpired as exc:
        raise AppError(f"{what}: no answer within {timeout:g} s ({' '.join(argv[:3])} ...)") from exc
    return proc.returncode, (proc.stdout + proc.stderr)


def tcp(host: str, port: int, timeout: float) -> tuple[bool, str]:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True, f"{host}:{port} accepts connections"
    except OSError as exc:
        return False, f"{host}:{port}: {exc.strerror or exc}"


def script(plugins_dir: Path, name: str, args: list[str], timeout: float) -> tuple[bool, str]:
    """A site check from ``<plugins>/checks/<name>``: it passes when it exits 0."""
    path = (plugins_dir / "checks" / name).resolve()
    if not path.is_relative_to((plugins_dir / "checks").resolve()):
        raise AppError(f"check script {name!r} is outside {plugins_dir / 'checks'}")
    if not path.is_file() or not os.access(path, os.X_OK):
        raise AppError(f"check script {path} is missing or not executable")
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

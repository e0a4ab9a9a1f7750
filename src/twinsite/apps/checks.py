"""Check results, running commands with a timeout, and the checks any application can add: a TCP port, an
HTTP(S) URL, a site script."""

from __future__ import annotations

import functools
import os
import re
import socket
import ssl
import time
import urllib.error
import urllib.request
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


def tail(path: Path, n: int = 15) -> str:
    """The last ``n`` lines of a log (an application's that did not start), or nothing."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def tcp(host: str, port: int, timeout: float) -> tuple[bool, str]:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True, f"{host}:{port} accepts connections"
    except OSError as exc:
        return False, f"{host}:{port}: {exc.strerror or exc}"


def http(
    url: str, *, status: int, body: str | None, timeout: float, verify_tls: bool, ca_file: str | None
) -> tuple[bool, str]:
    """GET ``url`` (redirects are not followed: a 301 is an answer like any other): it passes when the status is
    ``status`` and, with ``body``, the regular expression is found in the first MiB of the body."""
    if not url.startswith(("http://", "https://")):  # (never file: or another scheme's handler)
        return False, f"{url}: not an http:// or https:// URL"
    ctx = None
    if url.startswith("https://"):
        ctx = ssl.create_default_context(cafile=ca_file) if verify_tls else ssl._create_unverified_context()  # noqa: S323
    opener = urllib.request.build_opener(_NoRedirect, urllib.request.HTTPSHandler(context=ctx))
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "twinsite-check"})  # noqa: S310 (http(s) only)
        with opener.open(request, timeout=timeout) as r:
            code, text = r.status, r.read(1 << 20).decode(errors="replace")
    except urllib.error.HTTPError as exc:  # (an answer with an error status: compared like the others)
        code, text = exc.code, exc.read(1 << 20).decode(errors="replace")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return False, f"{url}: {reason}"
    if code != status:
        return False, f"{url} answered {code}, not {status}"
    if body is not None and not re.search(body, text):
        return False, f"{url} answered {code} without {body!r} in its body"
    return True, f"{url} answered {code}" + (f" with {body!r}" if body is not None else "")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


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
        elif s["type"] == "http":
            check = functools.partial(
                http,
                s["url"],
                status=int(s.get("status", 200)),
                body=s.get("body"),
                timeout=timeout,
                verify_tls=bool(s.get("verify_tls", True)),
                ca_file=s.get("ca_file"),
            )
            out.append(timed(f"http {s['url']}", check))
        elif s["type"] == "script":
            name, args = s["name"], [str(a) for a in s.get("args", [])]
            out.append(timed(f"script {name}", functools.partial(script, plugins_dir, name, args, timeout)))
    return out

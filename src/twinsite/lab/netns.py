"""Thin wrappers over iproute2 for the lab's namespaces and links."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from twinsite.errors import CommandError
from twinsite.proc import run, stop_pid

NETNS_DIR = Path("/run/netns")


def exists(ns: str) -> bool:
    return (NETNS_DIR / ns).exists()


def add(ns: str) -> None:
    if not exists(ns):
        run(["ip", "netns", "add", ns])
    run(["ip", "-n", ns, "link", "set", "lo", "up"])


def pids(ns: str) -> list[int]:
    if not exists(ns):
        return []
    out = run(["ip", "netns", "pids", ns], check=False).stdout.decode()
    return [int(p) for p in out.split()]


def delete(ns: str) -> None:
    """Stop every process in ``ns`` (its daemons and whatever they started), then delete it."""
    for pid in pids(ns):
        stop_pid(pid, timeout=3.0)
    if exists(ns):
        run(["ip", "netns", "del", ns])


def link_exists(dev: str, ns: str | None = None) -> bool:
    argv = ["ip", *(["-n", ns] if ns else []), "link", "show", "dev", dev]
    return run(argv, check=False).returncode == 0


def link_is_up(dev: str, ns: str) -> bool:
    out = run(["ip", "-n", ns, "-j", "link", "show", "dev", dev], check=False)
    if out.returncode != 0:
        return False
    with contextlib.suppress(ValueError, IndexError, KeyError):
        return "UP" in json.loads(out.stdout)[0]["flags"]
    raise CommandError(f"cannot read the state of link {dev} in namespace {ns}")


def set_link(dev: str, ns: str, *, up: bool) -> None:
    run(["ip", "-n", ns, "link", "set", dev, "up" if up else "down"])

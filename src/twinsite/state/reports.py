"""``switchovers/<run>.json`` and ``.txt``: the report of each switchover, switch-back or rejoin run on this
host, failed runs included (switchover.report builds it: each step, the RTO and the RPO)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from twinsite.durable import read_json, write_json, write_text
from twinsite.errors import ConfigError, TwinsiteError


def write(directory: Path, report: dict[str, Any], text: str) -> Path:
    write_json(directory / f"{report['id']}.json", report)
    write_text(directory / f"{report['id']}.txt", text + "\n")
    return directory / f"{report['id']}.json"


#: what a run's id may be (ops.runner makes them hex): a name in the reports' directory, never a path
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")


def _named(directory: Path, run_id: str, suffix: str) -> Path:
    if not RUN_ID.match(run_id):
        raise ConfigError(f"{run_id!r} is not a run's id", hint="a switchover's id, as its report gives it")
    return directory / f"{run_id}{suffix}"


def text_file(directory: Path, run_id: str) -> Path:
    return _named(directory, run_id, ".txt")


def load(directory: Path, run_id: str | None) -> dict[str, Any] | None:
    """The report of ``run_id``, or the newest one (None: there is none)."""
    if run_id:
        f = _named(directory, run_id, ".json")
    else:
        found = sorted(directory.glob("*.json"), key=lambda p: p.stat().st_mtime)
        if not found:
            return None
        f = found[-1]
    data: dict[str, Any] | None = read_json(f, what="the switchover report")
    return data


def every(directory: Path) -> list[dict[str, Any]]:
    """Every report kept here, oldest first (a report unreadable or removed meanwhile is left out)."""
    out = []
    for f in sorted(directory.glob("*.json"), key=lambda p: p.stat().st_mtime) if directory.is_dir() else []:
        try:
            data = read_json(f, what="the switchover report")
        except TwinsiteError:
            continue  # (written atomically: a bad one was put there by hand)
        if isinstance(data, dict):
            out.append(data)
    return out

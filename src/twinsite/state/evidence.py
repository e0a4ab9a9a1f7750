"""``recovery/tests/<started>-<id>.json``: the evidence of each assured-recovery test kept on this host,
one JSON record per test (recovery.evidence builds it: what was tested, each step, every check, the digests,
the result), the newest ``assured_recovery.keep`` kept."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from twinsite.durable import remove, write_json


def write(directory: Path, record: dict[str, Any], *, keep: int) -> Path:
    path = directory / f"{record['started_ts']:.0f}-{record['id']}.json"
    write_json(path, record)
    for old in sorted(directory.glob("*.json"))[:-keep]:
        remove(old)
    return path


def history(directory: Path) -> list[dict[str, Any]]:
    """Every kept record, oldest first."""
    out = []
    for f in sorted(directory.glob("*.json")):
        try:
            out.append(json.loads(f.read_text()))
        except ValueError:
            continue  # (a record is written atomically: a bad one was put there by hand)
    return out


def find(directory: Path, test_id: str | None) -> dict[str, Any] | None:
    """The record of ``test_id``, or the newest one (None: there is none)."""
    records = history(directory)
    if test_id is None:
        return records[-1] if records else None
    return next((r for r in records if r["id"] == test_id), None)

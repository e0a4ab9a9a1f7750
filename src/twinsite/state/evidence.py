"""``recovery/tests/<started>-<id>.json``: the evidence of each assured-recovery test kept on this host,
one JSON record per test (recovery.evidence builds it: what was tested, each step, every check, the digests,
the result), the newest ``assured_recovery.keep`` kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twinsite.durable import read_json, remove, write_json
from twinsite.errors import TwinsiteError


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
            record = read_json(f, what="a test's evidence")
        except TwinsiteError:
            continue  # (a record is written atomically: a bad one was put there by hand)
        if record is not None:  # (removed meanwhile: past assured_recovery.keep)
            out.append(record)
    return out


def find(directory: Path, test_id: str | None) -> dict[str, Any] | None:
    """The record of ``test_id``, or the newest one (None: there is none)."""
    records = history(directory)
    if test_id is None:
        return records[-1] if records else None
    return next((r for r in records if r["id"] == test_id), None)

"""``<scenario>/history/<YYYY-MM-DD>.jsonl``: this host's record of a scenario, one JSON line per minute
(twinsite.history samples it: the role, and per root the state, the lag and backlog or the rewind window).

A file per UTC day, appended a line at a time and never rewritten; whole days older than ``keep_days`` are
removed when a new day begins, so the history is bounded (about 200 bytes a minute for a scenario of one root
and one standby: some 290 KB a day, 18 MB for the default 62 days). Lines are not fsynced one by one: a crash
may lose the last minutes of the record (the page cache's), never anything replicated; a line torn by a crash is
skipped when read.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from twinsite.durable import private_opener, remove

KEEP_DAYS = 62  # two months: a month's report, and the month before it


def day_file(directory: Path, ts: float) -> Path:
    return directory / f"{dt.datetime.fromtimestamp(ts, dt.UTC):%Y-%m-%d}.jsonl"


def append(directory: Path, sample: dict[str, Any], *, keep_days: int = KEEP_DAYS) -> None:
    """Append one sample (its ``ts`` gives the day) durably; on a new day, remove the days past ``keep_days``."""
    f = day_file(directory, sample["ts"])
    new_day = not f.exists()
    if new_day:
        directory.mkdir(parents=True, exist_ok=True)
    with open(f, "a", opener=private_opener) as out:
        out.write(json.dumps(sample, separators=(",", ":")) + "\n")
    if new_day:
        oldest = day_file(directory, sample["ts"] - keep_days * 86400.0).name
        for old in sorted(directory.glob("*.jsonl")):
            if old.name < oldest:
                remove(old)


def read(directory: Path, since: float, until: float | None = None) -> list[dict[str, Any]]:
    """The samples from ``since`` (to ``until``), oldest first."""
    first = day_file(directory, since).name
    out: list[dict[str, Any]] = []
    for f in sorted(directory.glob("*.jsonl")) if directory.is_dir() else []:
        if f.name < first:
            continue
        with open(f) as lines:
            for line in lines:
                try:
                    sample = json.loads(line)
                except ValueError:
                    continue  # (torn by a crash: the minute is missing, as if the agent had not run)
                ts = sample.get("ts", -1) if isinstance(sample, dict) else -1
                if since <= ts and (until is None or ts < until):
                    out.append(sample)
    return out


def disk_bytes(directory: Path) -> int:
    return sum(f.stat().st_size for f in directory.glob("*.jsonl")) if directory.is_dir() else 0

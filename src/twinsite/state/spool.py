"""``spool/spooling.json``: the marker that makes a receiver spool instead of apply (engine.spool).

``{"since", "max_size", "reason", "full", "full_at"}``, written by an assured-recovery test when it starts
(state.layout ReceiverState.spool_marker); ``full`` is set when a batch would pass ``max_size`` (the test
watches it and ends). Without the file the receiver applies, after what the spool holds.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from twinsite.durable import read_json, remove, write_json


@dataclass(frozen=True)
class SpoolMarker:
    since: float
    max_size: int
    reason: str
    full: bool = False
    full_at: float | None = None


def read(path: Path) -> SpoolMarker | None:
    data = read_json(path, what="the spool's marker")
    return None if data is None else SpoolMarker(**data)


def start(path: Path, *, max_size: int, reason: str) -> bool:
    """Spool from the next batch on (idempotent: False when it spools already)."""
    if path.exists():
        return False
    write_json(path, asdict(SpoolMarker(since=time.time(), max_size=max_size, reason=reason)))
    return True


def stop(path: Path) -> bool:
    """Apply again from the next batch; whether it was spooling."""
    was = path.exists()
    remove(path)
    return was


def mark_full(path: Path, marker: SpoolMarker) -> None:
    if not marker.full:
        write_json(path, asdict(replace(marker, full=True, full_at=time.time())))

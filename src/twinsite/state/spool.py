"""``spool/spooling.json``: the marker that makes a receiver spool instead of apply (engine.spool).

``{"since", "max_size", "reason", "full", "full_at"}``, written by an assured-recovery test when it starts
(state.layout ReceiverState.spool_marker); ``full`` is set when a batch would pass ``max_size`` (the test
watches it and ends). Without the file the receiver applies, after what the spool holds.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from twinsite.durable import read_json, remove, write_json
from twinsite.errors import RecoveryError


@dataclass(frozen=True)
class SpoolMarker:
    since: float
    max_size: int
    reason: str
    full: bool = False
    full_at: float | None = None


def read(path: Path) -> SpoolMarker | None:
    data = read_json(path, what="the spool's marker", error=RecoveryError)
    if data is None:
        return None
    known = {f.name for f in fields(SpoolMarker)}
    try:
        return SpoolMarker(**{k: v for k, v in data.items() if k in known})
    except TypeError as exc:
        raise RecoveryError(f"the spool's marker lacks a key: {exc}", where=str(path)) from exc


def _write(path: Path, marker: SpoolMarker) -> None:
    body = asdict(marker)
    if marker.full_at is None:
        del body["full_at"]  # (there only once it is full)
    write_json(path, body)


def start(path: Path, *, max_size: int, reason: str) -> bool:
    """Spool from the next batch on (idempotent: False when it spools already)."""
    if path.exists():
        return False
    _write(path, SpoolMarker(since=time.time(), max_size=max_size, reason=reason))
    return True


def stop(path: Path) -> bool:
    """Apply again from the next batch; whether it was spooling."""
    was = path.exists()
    remove(path)
    return was


def mark_full(path: Path, marker: SpoolMarker) -> None:
    if not marker.full:
        _write(path, replace(marker, full=True, full_at=time.time()))

"""``status.json``: what a sender last said about one root and one standby (what ``twinsite status`` shows).

The sender rewrites it (durably, with twinsite.durable) whenever its state changes, at most every
0.2 s for acknowledgements, and every 5 s as a heartbeat, so that a reader can tell a running agent from a
stopped one by ``updated_at``. Keys of another version are dropped on reading and missing ones take their
defaults: readers always see this version's fields.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from twinsite.durable import read_json, write_json


@dataclass
class SenderStatus:
    scenario: str
    root: str
    replica: str
    state: str = "starting"  # starting, syncing, replicating, disconnected, degraded, superseded, stopped
    planned_seq: int = 0
    sent_seq: int = 0
    acked_seq: int = 0
    lag_seconds: float = 0.0
    ack_latency_seconds: float = 0.0  # the age of the newest acknowledged change when it was acknowledged
    backlog_bytes: int = 0
    bytes_sent: int = 0
    connects: int = 0
    resyncs: int = 0
    overflows: int = 0
    divergences: int = 0
    rescans: int = 0
    rescan_records: int = 0  # records a rescan found necessary: changes capture did not report
    unsettled: int = 0  # files read while they were being written: read again once their mtime has settled
    pending: int = 0  # paths capture reported that the planner is comparing now (not yet planned)
    journal_overflow: bool = False
    point_id: int | None = None  # consistency points: the newest point the standby acknowledged complete ...
    point_ts: float | None = None  # ... and its snapshot's time (source clock)
    points: int = 0  # consistency points planned since the agent started
    point_extent_bytes: int = 0  # bytes the filesystem listed as changed in them (ranges written, new files)
    sync: dict[str, Any] | None = None  # progress of the current (or the last) initial sync / resync
    #: how this run of the agent began: from the replica's listing (and why), or from the picture the last run
    #: kept (paths compared, seconds)
    start: dict[str, Any] | None = None
    last_error: str | None = None  # kept while syncs fail (``failures``), whatever the link does meanwhile
    last_error_at: float | None = None
    failures: int = 0  # syncs that failed in a row: the standby gets nothing new until one goes through
    failing_since: float | None = None
    updated_at: float = field(default_factory=time.time)


def read(path: Path) -> SenderStatus | None:
    """The status a sender wrote, None when there is none."""
    data = read_json(path, what="the sender's status")
    if data is None:
        return None
    known = {f.name for f in fields(SenderStatus)}
    return SenderStatus(**{k: v for k, v in data.items() if k in known})


def write(path: Path, status: SenderStatus) -> None:
    write_json(path, asdict(status), indent=None)

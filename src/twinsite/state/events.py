"""JSON-lines logs: ``events.jsonl`` (every alert and event on this host, alerts.channels.EventLog) and a
scenario's ``fence.jsonl`` (what fencing did). One JSON object per line, appended and fsynced, never
rewritten: the record that is always there, whatever else failed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def append(path: Path, event: dict[str, Any]) -> None:
    """Append one event durably (an OSError says why it could not be written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(event, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def read(path: Path) -> list[dict[str, Any]]:
    """Every event, oldest first; a line that is not JSON (torn by a crash) is an ``unreadable`` event."""
    events: list[dict[str, Any]] = []
    try:
        with open(path) as f:
            for n, line in enumerate(f, 1):
                try:
                    events.append(json.loads(line))
                except ValueError:
                    events.append({"event": "unreadable", "line": n})
    except FileNotFoundError:
        pass
    return events

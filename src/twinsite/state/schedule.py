"""``recovery/schedule.json``: the last scheduled minute whose assured-recovery test was started here
(``{"last": "YYYY-MM-DDTHH:MM"}``, UTC), so that a minute runs once however often the agent looks."""

from __future__ import annotations

import json
from pathlib import Path

from twinsite.durable import write_json


def last(path: Path) -> str | None:
    try:
        value = json.loads(path.read_text()).get("last")
    except (FileNotFoundError, ValueError, AttributeError):
        return None
    return str(value) if value is not None else None


def store(path: Path, slot: str) -> None:
    write_json(path, {"last": slot})

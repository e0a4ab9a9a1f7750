"""``recovery/schedule.json``: the last scheduled minute whose assured-recovery test was started here
(``{"last": "YYYY-MM-DDTHH:MM"}``, UTC), so that a minute runs once however often the agent looks."""

from __future__ import annotations

from pathlib import Path

from twinsite.durable import read_json, write_json
from twinsite.errors import TwinsiteError


def last(path: Path) -> str | None:
    try:
        data = read_json(path, what="the last scheduled minute")
    except TwinsiteError:
        return None  # (damaged: the minute runs again at worst)
    value = data.get("last") if isinstance(data, dict) else None
    return str(value) if value is not None else None


def store(path: Path, slot: str) -> None:
    write_json(path, {"last": slot})

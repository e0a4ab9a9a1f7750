"""Times as people and the JSON read them: ISO 8601 in UTC with a ``Z``, from Unix times."""

from __future__ import annotations

import datetime as dt


def iso(ts: float | None, timespec: str = "milliseconds") -> str | None:
    """``2026-12-02T03:15:00.123Z`` (``timespec`` as datetime.isoformat's); None for no time (None or 0)."""
    if not ts:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec=timespec).replace("+00:00", "Z")

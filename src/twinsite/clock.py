"""Times as people and the JSON read them: ISO 8601 in UTC with a ``Z``, from Unix times."""

from __future__ import annotations

import datetime as dt


def iso(ts: float | None, timespec: str = "milliseconds") -> str | None:
    """``2026-12-02T03:15:00.123Z`` (``timespec`` as datetime.isoformat's); None for no time (None or 0)."""
    if not ts:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def from_iso(text: str | None) -> float | None:
    """The Unix time of an ISO 8601 time (as :func:`iso` writes it); None for none, or for text that is not one."""
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None

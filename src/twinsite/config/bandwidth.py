"""``replication.bandwidth_schedule``: the wire's rate limit by weekday and hour.

    replication:
      bandwidth_limit: 50MiB            # outside every window (0: no limit)
      bandwidth_schedule:
        timezone: Europe/Paris          # an IANA zone name (default UTC): business hours are local
        windows:
          - {days: mon-fri, hours: "08-18", limit: 10MiB}
          - {days: [sat, sun], limit: 0}

A window's ``days`` are ``mon`` .. ``sun``: one, a range (``mon-fri``; ``fri-mon`` wraps), a comma-separated
list or a YAML list of those; every day when left out. ``hours`` is ``HH-HH``, from the first hour's start to
the second's (``08-18`` is 08:00 to 17:59:59; ``00-24`` all day, the default); a window over midnight is two
windows (``22-24`` and ``00-06``). The first window the moment falls in gives the limit (``0``: none); outside
every window, ``bandwidth_limit`` does.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from twinsite.config.units import parse_size
from twinsite.errors import ConfigError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Window:
    days: frozenset[int]  # 0 = Monday (datetime.weekday)
    start: int  # hours, 0-23
    end: int  # 1-24, after start
    limit: int  # bytes per second, 0 = none

    def contains(self, local: dt.datetime) -> bool:
        return local.weekday() in self.days and self.start <= local.hour < self.end


@dataclass(frozen=True)
class BandwidthSchedule:
    timezone: str
    windows: tuple[Window, ...]

    def limit_at(self, when: dt.datetime, default: int) -> int:
        """The limit in force at ``when`` (an aware datetime): the first window's that holds it, or ``default``."""
        local = when.astimezone(zoneinfo.ZoneInfo(self.timezone))
        for w in self.windows:
            if w.contains(local):
                return w.limit
        return default


def parse(doc: Mapping[str, Any]) -> BandwidthSchedule:
    """The schedule of a document the schema accepted; ConfigError says which window is wrong and why."""
    zone = str(doc.get("timezone", "UTC"))
    try:
        zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(
            f"unknown time zone {zone!r}", hint="an IANA name such as UTC or Europe/Paris (tzdata)"
        ) from exc
    windows = []
    for i, w in enumerate(doc.get("windows", ())):
        try:
            start, end = _hours(str(w.get("hours", "00-24")))
            windows.append(Window(_days(w.get("days", "mon-sun")), start, end, parse_size(w.get("limit", 0))))
        except ValueError as exc:
            raise ConfigError(
                f"window {i + 1}: {exc}", hint='days like mon-fri or [sat, sun]; hours like "08-18" (00-24)'
            ) from exc
    return BandwidthSchedule(zone, tuple(windows))


def _days(value: str | list[str]) -> frozenset[int]:
    parts = value if isinstance(value, list) else str(value).split(",")
    out: set[int] = set()
    for part in (str(p).strip().lower() for p in parts):
        first, _, last = part.partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise ValueError(f"{part!r} is not a day or a range of days (mon .. sun)")
        a, b = DAYS.index(first), DAYS.index(last or first)
        out.update(d % 7 for d in range(a, b + 1 if b >= a else b + 8))
    return frozenset(out)


def _hours(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d{1,2})\s*-\s*(\d{1,2})\s*", text)
    if not m:
        raise ValueError(f"hours {text!r} are not HH-HH")
    start, end = int(m.group(1)), int(m.group(2))
    if not 0 <= start < end <= 24:
        raise ValueError(
            f"hours {text!r}: the start must come before the end, within 00-24 (over midnight: two windows)"
        )
    return start, end


def limit_now(default: int, schedule: BandwidthSchedule | None, now: dt.datetime | None = None) -> int:
    """The rate limit in force now: the schedule's, or ``default`` (``replication.bandwidth_limit``)."""
    if schedule is None:
        return default
    return schedule.limit_at(now or dt.datetime.now(dt.UTC), default)

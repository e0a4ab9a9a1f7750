"""Cron expressions for ``assured_recovery.schedule``: when the agent runs a test.

Five fields, in UTC: minute (0-59), hour (0-23), day of month (1-31), month (1-12), day of week (0-7, 0 and
7 are Sunday). Each field is ``*``, a number, a range ``a-b``, either with a step (``*/15``, ``0-30/10``),
or a comma-separated list of those. As in cron, when both the day of month and the day of week are
restricted, a day matching either counts. ``@hourly``, ``@daily``, ``@weekly`` and ``@monthly`` stand for
``0 * * * *``, ``0 0 * * *``, ``0 0 * * 0`` and ``0 0 1 * *``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from twinsite.errors import ConfigError

ALIASES = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *"}
FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))


@dataclass(frozen=True)
class Cron:
    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool  # day of month is *
    any_weekday: bool  # day of week is *

    def matches(self, when: dt.datetime) -> bool:
        """Whether the minute ``when`` falls in (an aware datetime, or a naive one in UTC) is scheduled."""
        t = when.astimezone(dt.UTC) if when.tzinfo else when
        if t.minute not in self.minutes or t.hour not in self.hours or t.month not in self.months:
            return False
        day, weekday = t.day in self.days, (t.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return day and weekday
        return day or weekday

    def next_after(self, when: dt.datetime, *, within_days: int = 366) -> dt.datetime | None:
        """The first scheduled minute after ``when`` (UTC), or None within a year (31 February)."""
        t = (when.astimezone(dt.UTC) if when.tzinfo else when.replace(tzinfo=dt.UTC)).replace(second=0, microsecond=0)
        t += dt.timedelta(minutes=1)
        end = t + dt.timedelta(days=within_days)
        while t < end:
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0) + dt.timedelta(days=32)).replace(day=1)
                continue
            if not self._day_ok(t):
                t = t.replace(hour=0, minute=0) + dt.timedelta(days=1)
                continue
            if t.hour not in self.hours:
                t = t.replace(minute=0) + dt.timedelta(hours=1)
                continue
            if t.minute in self.minutes:
                return t
            t += dt.timedelta(minutes=1)
        return None

    def _day_ok(self, t: dt.datetime) -> bool:
        day, weekday = t.day in self.days, (t.isoweekday() % 7) in self.weekdays
        return (day and weekday) if (self.any_day or self.any_weekday) else (day or weekday)


def parse(text: str) -> Cron:
    """The schedule ``text`` stands for; a ConfigError says which field is wrong and why."""
    spec = ALIASES.get(text.strip(), text.strip())
    parts = spec.split()
    if len(parts) != 5:
        raise ConfigError(
            f"schedule {text!r} has {len(parts)} field(s), not 5",
            hint="minute hour day-of-month month day-of-week, e.g. '17 * * * *' (hourly at :17), or @hourly",
        )
    sets = [_field(part, name, lo, hi, text) for part, (name, lo, hi) in zip(parts, FIELDS, strict=True)]
    weekdays = frozenset(0 if d == 7 else d for d in sets[4])
    return Cron(
        text, sets[0], sets[1], sets[2], sets[3], weekdays, any_day=parts[2] == "*", any_weekday=parts[4] == "*"
    )


def _field(part: str, name: str, lo: int, hi: int, text: str) -> frozenset[int]:
    out: set[int] = set()
    for item in part.split(","):
        rng, _, step_text = item.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if rng == "*":
                a, b = lo, hi
            elif "-" in rng:
                a_text, b_text = rng.split("-", 1)
                a, b = int(a_text), int(b_text)
            else:
                a = b = int(rng)
                if step_text:
                    b = hi
        except ValueError:
            raise ConfigError(
                f"schedule {text!r}: the {name} field {part!r} is not a number, range, list or step",
                hint="e.g. 5, 1-5, */15, 0,30",
            ) from None
        if step < 1 or not (lo <= a <= b <= hi):
            raise ConfigError(
                f"schedule {text!r}: the {name} field {part!r} is outside {lo}-{hi} (or its step is below 1)"
            )
        out.update(range(a, b + 1, step))
    return frozenset(out)

"""``monitor.json``: what a standby's monitor knows of the active host it watches (twinsite.monitor).

``{"scenario", "active", "standby", "updated_at", "conditions": {NAME: Condition}, "automatic": {...}}``:
one condition per thing watched (``reachable``, ``application``, ``replication``) with its run of misses and
whether it alerts, and the automatic switchover's decision for the current outage. Rewritten (durably) after
every round. A file about another active host, or one that cannot be read, counts as none: monitoring starts
afresh then.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from twinsite.durable import read_json, write_json
from twinsite.errors import TwinsiteError

#: the conditions a monitor keeps, and the alert each raises when it fails (state.events, twinsite.status)
ALERT_KINDS = {
    "reachable": "host-unreachable",
    "application": "application-down",
    "replication": "replication-unhealthy",
}


@dataclass
class Condition:
    ok: bool | None = None  # None: not known this round (the host did not answer)
    misses: int = 0
    since: float | None = None  # first miss of the current run of misses
    alerting: bool = False
    detail: str = ""
    checked_at: float = 0.0
    unknown: int = 0  # rounds in a row it could not be told (the host answered, the check did not)
    blind: bool = False  # the cannot-check alert is out


@dataclass(frozen=True)
class MonitorView:
    scenario: str = ""
    active: str = ""
    standby: str = ""
    updated_at: float = 0.0
    conditions: dict[str, Condition] = field(default_factory=dict)
    automatic: dict[str, object] = field(default_factory=dict)

    def unreachable_since(self) -> float | None:
        """Since when the active host has not answered (None while it answers, or when it was never checked)."""
        c = self.conditions.get("reachable")
        return c.since if c is not None and c.ok is False else None

    def replication(self) -> str | None:
        """The last word on replication (``replicating, lag 0.1 s``), None when it could not be told."""
        c = self.conditions.get("replication")
        return c.detail if c is not None and c.ok is not None else None

    def open_kinds(self) -> list[str]:
        """The alerts this monitor has out now (its conditions alerting, and ``cannot-check``)."""
        kinds = [ALERT_KINDS[n] for n, c in self.conditions.items() if c.alerting and n in ALERT_KINDS]
        return sorted(kinds + (["cannot-check"] if any(c.blind for c in self.conditions.values()) else []))


def read(path: Path) -> MonitorView | None:
    try:
        data = read_json(path, what="the monitor's conditions")
    except TwinsiteError:
        return None  # (damaged: monitoring starts afresh)
    if data is None:
        return None
    try:
        return MonitorView(
            scenario=str(data.get("scenario", "")),
            active=str(data.get("active", "")),
            standby=str(data.get("standby", "")),
            updated_at=float(data.get("updated_at") or 0.0),
            conditions={k: Condition(**v) for k, v in data.get("conditions", {}).items()},
            automatic=dict(data.get("automatic") or {}),
        )
    except (ValueError, TypeError, AttributeError):
        return None


def watching(path: Path, active: str) -> MonitorView:
    """The view kept for watching ``active`` (an empty one when there is none, or it is of another host)."""
    view = read(path)
    return view if view is not None and view.active == active else MonitorView(active=active)


def write(path: Path, view: MonitorView) -> None:
    body = asdict(view)
    body["updated_at"] = time.time()
    write_json(path, body, indent=None)

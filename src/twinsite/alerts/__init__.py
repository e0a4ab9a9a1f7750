"""Alerts: tell people what went wrong, where, since when, and what to do.

An :class:`Alert` goes to every channel of its scenario (syslog, email over SMTP, a webhook) and is always
written to the event log (JSON lines under the state directory), whatever else fails. A channel that
cannot deliver does not stop the others; its failure is itself written to the event log and returned.
"""

from __future__ import annotations

import datetime as dt
import socket
from dataclasses import dataclass, field
from typing import Any

SEVERITIES = ("critical", "warning", "info", "resolved")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def when(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Alert:
    """One thing people must know. ``what`` is a sentence; ``action`` what to do about it."""

    kind: str  # e.g. host-unreachable, application-down, replication-lag, split-brain-suspected, test
    severity: str
    scenario: str
    host: str  # where: the host the problem is on
    what: str
    action: str
    since: dt.datetime = field(default_factory=_now)
    details: tuple[tuple[str, str], ...] = ()
    reported_by: str = field(default_factory=socket.gethostname)
    at: dt.datetime = field(default_factory=_now)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity {self.severity!r} is not one of {', '.join(SEVERITIES)}")

    @property
    def subject(self) -> str:
        return f"[twinsite] {self.severity.upper()} {self.scenario} on {self.host}: {self.what}"

    def text(self) -> str:
        """The human form: what, where, since when, what to do, then the details."""
        lines = [
            f"What:        {self.what}",
            f"Where:       scenario {self.scenario}, host {self.host}",
            f"Since:       {when(self.since)}",
            f"What to do:  {self.action}",
            f"Severity:    {self.severity}",
            f"Reported by: {self.reported_by} at {when(self.at)}",
        ]
        if self.details:
            lines.append("")
            lines += [f"  {k}: {v}" for k, v in self.details]
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "severity": self.severity,
            "scenario": self.scenario,
            "host": self.host,
            "what": self.what,
            "since": when(self.since),
            "action": self.action,
            "details": dict(self.details),
            "reported_by": self.reported_by,
            "at": when(self.at),
        }

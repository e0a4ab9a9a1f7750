"""A host's view of every scenario, from its state directory: what ``twinsite status`` prints and what the
agent exports as metrics (twinsite.metrics). Nothing here asks another host or the agent: it reads files.

One row per scenario and root, and on the active host per standby too (docs/status.md):

* the role (``active``, ``standby``, ``other``), the active host and the epoch (twinsite.roles);
* on the active host, the sender's status (state, planned/sent/acked seq, lag, backlog, the sync's progress,
  the last error), ``stale`` when the agent stopped writing it; on a standby, the applied position and,
  with CDP, the rewind window (oldest and newest point, bookmarks), ``rewound`` while rewound;
* of the scenario, repeated on each of its rows: the newest assured-recovery test kept here, this host's
  alerts (open monitoring conditions, the alerts of the last day, the latest), and the switchovers.

The switchover count is the role's epoch: every switchover, failover and switch-back raises it by one, and
a host that rejoins takes the active host's. Reports are kept only where a switchover ran, failed runs
included, so they would not count the same on every host.

What cannot be read (a damaged rewind log, an unreadable file) is named in the row's ``problems``; the other
rows and facts are still given.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from twinsite import __version__
from twinsite.alerts.channels import EventLog
from twinsite.alerts.dispatch import EVENTS_FILE
from twinsite.apply.applier import Position
from twinsite.cdp import bookmarks
from twinsite.cdp.log import RewindLog
from twinsite.cdp.rewind import points, read_position
from twinsite.config.scenario import Scenario
from twinsite.engine import agent
from twinsite.engine.sender import SenderStatus, read_status
from twinsite.errors import TwinsiteError
from twinsite.monitor import KINDS, load_state, monitor_file
from twinsite.recovery import evidence
from twinsite.roles import Role, standbys, this_host

STALE_AFTER = 30.0  # seconds without a status update (the sender's heartbeat is 5 s): the agent is not running
RECENT = 86400.0  # alerts of the last day count as recent
UNREADABLE = (TwinsiteError, OSError, ValueError, TypeError, KeyError)


def collect(config_dir: Path, state_dir: Path, *, host: str | None = None, now: float | None = None) -> dict[str, Any]:
    """This host's view of every scenario in ``config_dir`` (the ``result`` of ``twinsite status --json``)."""
    host = host or this_host()
    now = time.time() if now is None else now
    try:
        events = EventLog(state_dir / EVENTS_FILE).read()
    except UNREADABLE:  # (a damaged event log hides the alerts only; each row's problems say so)
        events = None
    rows: list[dict[str, Any]] = []
    for s in agent.load_dir(config_dir):
        role = agent.role_of(s, state_dir)
        peers = standbys(role, s.master, s.replicas)
        kind = "active" if role.active == host else ("standby" if host in peers else "other")
        facts, problems = _scenario_facts(s, role, state_dir, events, now)
        for i, root in enumerate(s.roots):
            base = {"scenario": s.name, "role": kind, "root": root.path, "active": role.active, "epoch": role.epoch}
            if kind == "active":
                parts = [_sender(config_dir, state_dir, s.name, i, replica, now) for replica in peers]
            else:
                parts = [_standby(state_dir, s.name, i)]
            rows += [{**base, **part, **facts, "problems": part["problems"] + problems} for part in parts]
    return {"host": host, "version": __version__, "generated_at": round(now, 3), "scenarios": rows}


def _sender(config_dir: Path, state_dir: Path, name: str, index: int, replica: str, now: float) -> dict[str, Any]:
    """The sender's status of one root towards one standby, as it wrote it."""
    problems: list[str] = []
    f = agent.sender_state(state_dir, name, index, replica) / "status.json"
    try:
        st = read_status(f)
    except UNREADABLE as exc:
        st = None
        problems.append(f"{f}: {exc}")
    row = asdict(st or SenderStatus(scenario=name, root="", replica=replica, state="stopped", updated_at=0.0))
    row.pop("root")  # (the scenario's, in the row already)
    row["replica"] = replica
    if agent.is_stopped(config_dir, name):
        row["state"] = "stopped"
    elif st is not None and st.state != "stopped" and now - st.updated_at > STALE_AFTER:
        row["state"] = "stale"  # the agent stopped writing: it is not running
    return {**row, "rewind": None, "problems": problems}  # (the rewind log is the standby's)


def _standby(state_dir: Path, name: str, index: int) -> dict[str, Any]:
    """What a standby (or any other host) holds of one root: the applied position, the rewind window."""
    problems: list[str] = []
    try:
        pos = agent.applied_position(state_dir, name, index)
    except UNREADABLE as exc:  # (a damaged position: named, and the rest still shown)
        pos = Position()
        problems.append(f"the applied position of root {index}: {exc}")
    row: dict[str, Any] = {"state": "standby", "applied_seq": pos.seq, "applied_ts": pos.ts or None}
    row["problems"] = problems
    log_dir = agent.receiver_state(state_dir, name, index) / "rewind"
    row["rewind"] = _guard(row["problems"], f"the rewind log {log_dir}", lambda: rewind_window(log_dir, pos.seq))
    if row["rewind"] and row["rewind"]["rewound_to"] is not None:
        row["state"] = "rewound"
    return row


def rewind_window(log_dir: Path, head: int) -> dict[str, Any] | None:
    """The points a replica can be rewound to (None without CDP): the oldest and newest, their source times,
    the span between them, bookmarks (all, and those still reachable), the log's size, a rewind in effect."""
    if not log_dir.is_dir():
        return None
    log = RewindLog(log_dir, readonly=True)
    pts = points(log, head)
    reachable = {seq for seq, _ in pts}
    marks = bookmarks.load(log_dir.parent)
    (old_seq, old_ts), (new_seq, new_ts) = pts[0], pts[-1]
    pos = read_position(log_dir)
    return {
        "oldest_seq": old_seq,
        "oldest_ts": old_ts or None,
        "newest_seq": new_seq,
        "newest_ts": new_ts or None,
        "window_seconds": round(new_ts - old_ts, 3) if old_ts else 0.0,
        "points": len(pts) if old_ts else 0,
        "log_bytes": log.disk_bytes(),
        "bookmarks": len(marks),
        "bookmarks_reachable": sum(1 for m in marks.values() if m.get("seq") in reachable),
        "rewound_to": pos.at if pos and pos.rewound else None,
    }


def _scenario_facts(
    s: Scenario, role: Role, state_dir: Path, events: list[dict[str, Any]] | None, now: float
) -> tuple[dict[str, Any], list[str]]:
    """What is of the whole scenario (given on each of its rows), and what of it could not be read."""
    problems: list[str] = []
    rec = evidence.recovery_dir(state_dir, s.name)
    if events is None:
        problems.append(f"the event log {state_dir / EVENTS_FILE} cannot be read: recent alerts are not shown")
    mine = [e for e in events or [] if e.get("scenario") == s.name]
    facts = {
        "switchovers": role.epoch,
        "last_test": _guard(problems, f"the test evidence in {rec}", lambda: last_test(rec, now)),
        "alerts": alerts(state_dir, s.name, role.active, mine, now),
    }
    return facts, problems


def last_test(recovery_dir: Path, now: float) -> dict[str, Any] | None:
    """The newest assured-recovery test kept here: its result, when it ran, how long ago it ended, how old
    the data it tested was (the oldest root's)."""
    r = evidence.find(recovery_dir, None)
    if r is None:
        return None
    ended = r["started_ts"] + (r.get("seconds") or 0.0)
    ages = [t["age_seconds"] for t in r.get("tested", []) if t.get("age_seconds") is not None]
    return {
        "id": r["id"],
        "result": r["result"],
        "reason": r.get("reason"),
        "scheduled": bool(r.get("scheduled")),
        "started": r.get("started"),
        "ended_ts": round(ended, 3),
        "age_seconds": round(max(0.0, now - ended), 3),
        "data_age_seconds": max(ages) if ages else None,
        "rto_seconds": r.get("rto_seconds"),
    }


def alerts(state_dir: Path, scenario: str, active: str, events: list[dict[str, Any]], now: float) -> dict[str, Any]:
    """This host's alerts of a scenario. ``open``: the monitoring conditions alerting now (monitor.json: only
    the standby's monitor resolves what it raised; other alerts are events, not states); ``recent``: the
    critical and warning alerts of the last day in the event log; ``latest``: the newest alert there."""
    conditions, _ = load_state(monitor_file(state_dir, scenario), active)
    open_kinds = sorted(
        [KINDS[name] for name, c in conditions.items() if c.alerting and name in KINDS]
        + (["cannot-check"] if any(c.blind for c in conditions.values()) else [])
    )
    sent = [e for e in events if e.get("event") == "alert"]
    recent = [e for e in sent if e.get("severity") in ("critical", "warning") and now - _ts(e.get("at")) <= RECENT]
    latest = sent[-1] if sent else None
    return {
        "open": len(open_kinds),
        "open_kinds": open_kinds,
        "recent": len(recent),
        "latest": None
        if latest is None
        else {k: latest.get(k) for k in ("kind", "severity", "at", "what")} | {"age_seconds": _age(latest, now)},
    }


def _ts(text: Any) -> float:
    try:
        return dt.datetime.fromisoformat(str(text)).timestamp()
    except ValueError:
        return 0.0


def _age(event: dict[str, Any], now: float) -> float | None:
    ts = _ts(event.get("at"))
    return round(max(0.0, now - ts), 3) if ts else None


def _guard(problems: list[str], what: str, read: Callable[[], dict[str, Any] | None]) -> dict[str, Any] | None:
    """``read()``, or None with what failed in ``problems``: one unreadable file hides nothing else."""
    try:
        return read()
    except UNREADABLE as exc:
        problems.append(f"{what}: {exc}")
        return None

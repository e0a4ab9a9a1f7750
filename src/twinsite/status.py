"""A host's view of every scenario, from its state directory: what ``twinsite status`` prints and what the
agent exports as metrics (agent.metrics). Nothing here asks another host or the agent: it reads files.

One row per scenario and root, and on the active host per standby too (docs/status.md):

* the role (``active``, ``standby``, ``other``), the active host and the epoch (state.role);
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

import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from twinsite import __version__
from twinsite.alerts.channels import EventLog
from twinsite.cdp.log import RewindLog
from twinsite.cdp.rewind import points
from twinsite.clock import from_iso
from twinsite.config.scenario import Scenario
from twinsite.config.store import load_dir
from twinsite.errors import TwinsiteError
from twinsite.state import applied, bookmarks, evidence, monitor, point, rewind, sender_status, stopped
from twinsite.state.applied import AppliedPosition
from twinsite.state.layout import HostState, ReceiverState, ScenarioState
from twinsite.state.role import Role, current, standbys, this_host
from twinsite.state.sender_status import SenderStatus

STALE_AFTER = 30.0  # seconds without a status update (the sender's heartbeat is 5 s): the agent is not running
RECENT = 86400.0  # alerts of the last day count as recent
UNREADABLE = (TwinsiteError, OSError, ValueError, TypeError, KeyError)


def collect(config_dir: Path, state_dir: Path, *, host: str | None = None, now: float | None = None) -> dict[str, Any]:
    """This host's view of every scenario in ``config_dir`` (the ``result`` of ``twinsite status --json``)."""
    host = host or this_host()
    now = time.time() if now is None else now
    try:
        events = EventLog(HostState(state_dir).events).read()
    except UNREADABLE:  # (a damaged event log hides the alerts only; each row's problems say so)
        events = None
    rows: list[dict[str, Any]] = []
    for s in load_dir(config_dir):
        place = ScenarioState(state_dir, s.name)
        role = current(place, s.master)
        peers = standbys(role, s.master, s.replicas)
        kind = "active" if role.active == host else ("standby" if host in peers else "other")
        facts, problems = _scenario_facts(s, role, place, events, now)
        halted = stopped.is_stopped(config_dir, s.name)
        for i, root in enumerate(s.roots):
            base = {"scenario": s.name, "role": kind, "root": root.path, "active": role.active, "epoch": role.epoch}
            base["consistency"] = s.replication.consistency
            if kind == "active":
                parts = [_sender(place, i, replica, halted, now) for replica in peers]
            else:
                parts = [_standby(place.receiver(i), i, now, s.replication.consistency == "points")]
            rows += [{**base, **part, **facts, "problems": part["problems"] + problems} for part in parts]
    return {"host": host, "version": __version__, "generated_at": round(now, 3), "scenarios": rows}


def _sender(place: ScenarioState, index: int, replica: str, halted: bool, now: float) -> dict[str, Any]:
    """The sender's status of one root towards one standby, as it wrote it."""
    problems: list[str] = []
    f = place.sender(index, replica).status
    try:
        st = sender_status.read(f)
    except UNREADABLE as exc:
        st = None
        problems.append(f"{f}: {exc}")
    row = asdict(st or SenderStatus(scenario=place.name, root="", replica=replica, state="stopped", updated_at=0.0))
    row.pop("root")  # (the scenario's, in the row already)
    row["replica"] = replica
    if halted:
        row["state"] = "stopped"
    elif st is not None and st.state != "stopped" and now - st.updated_at > STALE_AFTER:
        row["state"] = "stale"  # the agent stopped writing: it is not running
    row["point_age_seconds"] = round(now - st.point_ts, 3) if st is not None and st.point_ts else None
    return {**row, "rewind": None, "problems": problems}  # (the rewind log is the standby's)


def _standby(recv: ReceiverState, index: int, now: float, consistent: bool) -> dict[str, Any]:
    """What a standby (or any other host) holds of one root: the applied position, the last complete
    consistency point, the rewind window."""
    problems: list[str] = []
    try:
        pos = applied.read(recv.applied)
    except UNREADABLE as exc:  # (a damaged position: named, and the rest still shown)
        pos = AppliedPosition()
        problems.append(f"the applied position of root {index}: {exc}")
    row: dict[str, Any] = {"state": "standby", "applied_seq": pos.seq, "applied_ts": pos.ts or None}
    row["problems"] = problems
    what = f"the rewind log {recv.rewind_log}"
    row["rewind"] = _guard(row["problems"], what, lambda: rewind_window(recv, pos.seq, consistent=consistent))
    row["point"] = _guard(row["problems"], f"the last point {recv.point}", lambda: last_point(recv, now))
    if row["rewind"] and row["rewind"]["rewound_to"] is not None:
        row["state"] = "rewound"
    return row


def last_point(recv: ReceiverState, now: float) -> dict[str, Any] | None:
    """The replica's last complete consistency point (None: none yet, or file mode): what a failover gets."""
    pt = point.read(recv.point)
    if pt is None:
        return None
    return {"id": pt.id, "seq": pt.seq, "ts": pt.ts, "age_seconds": round(now - pt.ts, 3)}


def rewind_window(recv: ReceiverState, head: int, *, consistent: bool = False) -> dict[str, Any] | None:
    """The points a replica can be rewound to (None without CDP): the oldest and newest, their source times,
    the span between them, bookmarks (all, and those still reachable), the log's size, a rewind in effect."""
    if not recv.rewind_log.is_dir():
        return None
    log = RewindLog(recv.rewind_log, readonly=True)
    pts = points(log, head, consistent=consistent)
    reachable = {seq for seq, _ in pts}
    marks = bookmarks.load(recv.bookmarks)
    (old_seq, old_ts), (new_seq, new_ts) = pts[0], pts[-1]
    pos = rewind.read(recv.rewind)
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
    s: Scenario, role: Role, place: ScenarioState, events: list[dict[str, Any]] | None, now: float
) -> tuple[dict[str, Any], list[str]]:
    """What is of the whole scenario (given on each of its rows), and what of it could not be read."""
    problems: list[str] = []
    tests = place.recovery.evidence
    if events is None:
        problems.append(f"the event log {place.host.events} cannot be read: recent alerts are not shown")
    mine = [e for e in events or [] if e.get("scenario") == s.name]
    facts = {
        "switchovers": role.epoch,
        "last_test": _guard(problems, f"the test evidence in {tests.parent}", lambda: last_test(tests, now)),
        "alerts": alerts(place, role.active, mine, now),
    }
    return facts, problems


def last_test(tests: Path, now: float) -> dict[str, Any] | None:
    """The newest assured-recovery test kept here: its result, when it ran, how long ago it ended, how old
    the data it tested was (the oldest root's)."""
    r = evidence.find(tests, None)
    return None if r is None else evidence_brief(r, now)


def evidence_brief(r: dict[str, Any], now: float) -> dict[str, Any]:
    """What status, the report and the console say of one test's evidence (state.evidence)."""
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


def alerts(place: ScenarioState, active: str, events: list[dict[str, Any]], now: float) -> dict[str, Any]:
    """This host's alerts of a scenario. ``open``: the monitoring conditions alerting now (state.monitor: only
    the standby's monitor resolves what it raised; other alerts are events, not states); ``recent``: the
    critical and warning alerts of the last day in the event log; ``latest``: the newest alert there."""
    open_kinds = monitor.watching(place.monitor, active).open_kinds()
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
    return from_iso(str(text)) or 0.0


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

"""A host's history of its scenarios: what the agent records a minute at a time (state.history), and what
``twinsite history`` gives of it for a period (the data of ``twinsite report`` and of the console).

**Recording.** The agent looks at the host's status (twinsite.status) every ``EVERY`` seconds and writes one
sample per scenario and minute: the role, the active host and epoch, how many looks the minute had, and per
root (and, on the active host, per standby) the state and the worst lag and backlog of the minute, or on a
standby the applied seq, the last point's age, the rewind window and the bookmarks (a minute in which the role
changed has a sample for each). Only the active host knows the lag; only a standby knows its rewind window.

**Reading.** ``summary`` gives, per scenario of the host and for a period: the lag measured against the
scenario's ``rpo_target`` (minutes observed, minutes over the target, the worst), the samples bucketed for a
chart, the switchovers run here (their RTO and RPO), the tests run here, the alerts, the changes and who asked
for them (twinsite.audit), and the bookmarks of each replica. Nothing is asked of another host: the controller
puts the hosts' summaries together (site.report).
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

from twinsite.clock import from_iso
from twinsite.config.scenario import Scenario
from twinsite.config.store import load_dir
from twinsite.errors import TwinsiteError
from twinsite.state import bookmarks, events, evidence, history, reports
from twinsite.state.layout import HostState, ScenarioState
from twinsite.status import collect, evidence_brief

log = logging.getLogger(__name__)

EVERY = 15.0  # seconds between two looks at the status; a minute's sample holds the worst of its looks
MINUTE = 60.0


class Recorder:
    """The agent's side: ``tick`` every round; a sample per scenario each minute; ``flush`` when it stops."""

    def __init__(
        self,
        config_dir: Path,
        state_dir: Path,
        host: str | None = None,
        *,
        every: float = EVERY,
        keep_days: int = history.KEEP_DAYS,
    ) -> None:
        self.config_dir, self.state_dir, self.host = config_dir, state_dir, host
        self.every, self.keep_days = every, keep_days
        self._looked = 0.0
        self._minute: float | None = None
        self._pending: dict[str, dict[str, Any]] = {}

    def tick(self, now: float | None = None) -> None:
        """Look at the status when ``every`` seconds have passed since the last look."""
        now = time.time() if now is None else now
        if self._looked and now - self._looked < self.every:
            return
        self._looked = now
        self.observe(collect(self.config_dir, self.state_dir, host=self.host, now=now), now)

    def observe(self, view: dict[str, Any], now: float) -> None:
        """Take one look (a status view, twinsite.status.collect) into the minute's samples."""
        minute = math.floor(now / MINUTE) * MINUTE
        if self._minute is not None and minute != self._minute:
            self.flush()
        self._minute = minute
        looked: set[str] = set()
        for r in view["scenarios"]:
            # (a minute with a switchover has a sample for each role the host had in it)
            key = f"{r['scenario']}\0{r['role']}\0{r['epoch']}"
            first = {"ts": minute, "looks": 0, "rows": {}} | {k: r[k] for k in ("role", "active", "epoch")}
            sample = self._pending.setdefault(key, first)
            if key not in looked:
                looked.add(key)
                sample["looks"] += 1
            row = f"{r['root']}\0{r.get('replica') or ''}"
            sample["rows"][row] = _row(sample["rows"].get(row), r)

    def flush(self) -> None:
        """Write the minute's samples (a sample that cannot be written is logged: history never stops the agent)."""
        for key, sample in self._pending.items():
            name = key.split("\0", 1)[0]
            line = {**sample, "rows": list(sample["rows"].values())}
            try:
                history.append(ScenarioState(self.state_dir, name).history, line, keep_days=self.keep_days)
            except OSError as exc:
                log.warning("history of %s not written: %s", name, exc)
        self._pending = {}


def _row(before: dict[str, Any] | None, r: dict[str, Any]) -> dict[str, Any]:
    """One root's figures for the minute so far: the worst lag and backlog, the latest of the rest."""
    row: dict[str, Any] = {"root": r["root"], "state": r["state"]}
    if r["role"] == "active":
        row["replica"] = r.get("replica")
        for k, short in (("lag_seconds", "lag"), ("backlog_bytes", "backlog")):
            values = [v for v in ((before or {}).get(short), r.get(k)) if v is not None]
            row[short] = max(values) if values else None
        return row
    point, rw = r.get("point"), r.get("rewind")
    row.update(applied_seq=r.get("applied_seq"), point_age=point["age_seconds"] if point else None)
    if rw:
        row.update(window=rw["window_seconds"], oldest_ts=rw["oldest_ts"], bookmarks=rw["bookmarks"])
    return row


# -- reading ------------------------------------------------------------------------------------------------------
def summary(
    config_dir: Path,
    state_dir: Path,
    *,
    since: float,
    now: float | None = None,
    buckets: int = 240,
    host: str | None = None,
) -> dict[str, Any]:
    """This host's history of each of its scenarios from ``since`` (see the module's doc)."""
    now = time.time() if now is None else now
    logged = events.read(HostState(state_dir).events)
    return {
        "host": host,
        "generated_at": round(now, 3),
        "since": since,
        "scenarios": [_scenario(s, state_dir, logged, since, now, buckets) for s in load_dir(config_dir)],
    }


def _scenario(
    s: Scenario, state_dir: Path, logged: list[dict[str, Any]], since: float, now: float, buckets: int
) -> dict[str, Any]:
    place = ScenarioState(state_dir, s.name)
    samples = history.read(place.history, since)
    mine = [e for e in logged if e.get("scenario") == s.name and (from_iso(e.get("at")) or 0.0) >= since]
    return {
        "scenario": s.name,
        "rpo_target_seconds": s.rpo_target,
        "lag": lag_minutes(samples, s.rpo_target),
        "series": series(samples, since, now, buckets),
        "switchovers": [switchover_brief(r) for r in reports.every(place.reports) if r.get("started_ts", 0) >= since],
        "tests": [
            evidence_brief(r, now) | {"started_ts": r["started_ts"], "seconds": r.get("seconds")}
            for r in evidence.history(place.recovery.evidence)
            if r.get("started_ts", 0) >= since
        ],
        "alerts": [
            {k: e.get(k) for k in ("at", "kind", "severity", "what")} for e in mine if e.get("event") == "alert"
        ],
        "changes": [e for e in mine if e.get("event") == "change"],
        "bookmarks": _bookmarks(s, place),
        "history_bytes": history.disk_bytes(place.history),
    }


def lag_minutes(samples: list[dict[str, Any]], target: float | None) -> dict[str, Any]:
    """Of the minutes this host was active: how many were observed, how many had a lag over ``target``, the worst
    lag (each minute counts whole: its worst look decides)."""
    worst = [w for s in samples if (w := _worst_lag(s)) is not None]
    over = sum(1 for w in worst if target is not None and w > target)
    return {
        "observed_seconds": len(worst) * MINUTE,
        "over_target_seconds": over * MINUTE if target is not None else None,
        "max_seconds": max(worst, default=None),
    }


def _worst_lag(sample: dict[str, Any]) -> float | None:
    if sample.get("role") != "active":
        return None
    lags = [r["lag"] for r in sample.get("rows", []) if r.get("lag") is not None]
    return max(lags) if lags else None


def series(samples: list[dict[str, Any]], since: float, now: float, buckets: int) -> list[dict[str, Any]]:
    """The samples in at most ``buckets`` equal slices of the period: per slice the worst lag and backlog (active
    host), the last rewind window and its oldest point (standby), the role."""
    width = max(MINUTE, (now - since) / max(1, buckets))
    out: dict[int, dict[str, Any]] = {}
    for s in samples:
        b = out.setdefault(int((s["ts"] - since) // width), {"ts": s["ts"], "role": s.get("role")})
        b["role"] = s.get("role")
        for r in s.get("rows", []):
            for k in ("lag", "backlog"):
                if r.get(k) is not None:
                    b[k] = max(b.get(k, r[k]), r[k])
            if r.get("window") is not None:
                b.update(window=r["window"], oldest_ts=r.get("oldest_ts"))
    return [out[k] for k in sorted(out)]


def switchover_brief(r: dict[str, Any]) -> dict[str, Any]:
    """What the report and the console say of a switchover's report (switchover.report)."""
    return {
        "id": r["id"],
        "kind": r.get("kind"),
        "mode": r.get("mode"),
        "from": r.get("from"),
        "to": r.get("to"),
        "epoch": r.get("epoch"),
        "result": r.get("result"),
        "error": r.get("error"),
        "started_ts": r.get("started_ts"),
        "ended_ts": r.get("ended_ts"),
        "rto_seconds": (r.get("rto") or {}).get("outage_seconds"),
        "switchover_seconds": (r.get("rto") or {}).get("switchover_seconds"),
        "rpo_seconds": (r.get("rpo") or {}).get("seconds"),
    }


def _bookmarks(s: Scenario, place: ScenarioState) -> list[dict[str, Any]]:
    out = []
    for i, root in enumerate(s.roots):
        try:
            marks = bookmarks.load(place.receiver(i).bookmarks)
        except TwinsiteError:
            continue  # (a damaged file: status names it)
        out += [{"root": root.path, "name": n, "seq": m.get("seq"), "ts": m.get("ts")} for n, m in marks.items()]
    return sorted(out, key=lambda m: m["ts"] or 0)

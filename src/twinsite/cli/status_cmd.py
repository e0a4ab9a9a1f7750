"""``twinsite status [--watch]``: this host's view of every scenario (twinsite.status), as a table for people,
as JSON for machines (src/twinsite/schemas/status.schema.json), or as progress bars while syncs run."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from twinsite.cli.options import dirs
from twinsite.errors import ConfigError
from twinsite.status import collect
from twinsite.sync.progress import bar, describe, human_bytes, human_seconds

COLUMNS = (  # (heading, width, right-aligned): 120 characters with the spaces between
    ("SCENARIO", 12, False),
    ("ROLE", 7, False),
    ("STATE", 12, False),
    ("REPLICA", 9, False),
    ("SEQ", 8, True),
    ("LAG", 8, True),
    ("BACKLOG", 10, True),
    ("REWIND", 12, False),
    ("LAST TEST", 20, False),
    ("ALERTS", 13, False),
)
WAITING = ("disconnected", "starting", "degraded")  # a sync cut short (or failing) here is tried again


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("status", help="per scenario: role, state, seq, lag, backlog, rewind window, last test, alerts")
    dirs(p)
    p.add_argument("--json", action="store_true", help="the same facts as JSON (schemas/status.schema.json)")
    p.add_argument(
        "--watch", action="store_true", help="progress bars of the syncs running now, until they end (or Ctrl-C)"
    )
    p.add_argument("--interval", type=float, default=1.0, help="with --watch: seconds between updates (default 1)")
    p.set_defaults(handler=_status)


def _status(args: argparse.Namespace) -> tuple[Any, str]:
    if args.watch:
        if args.json:
            raise ConfigError("--watch draws progress for people; --json gives one answer", hint="use one of them")
        return watch(args.config_dir, args.state_dir, interval=args.interval)
    result = collect(args.config_dir, args.state_dir)
    rows = result["scenarios"]
    lines = [table_head()] + [line for r in rows for line in table_row(r)]
    if not rows:
        lines.append(f"(no scenarios in {args.config_dir})")
    return result, "\n".join(lines)


def _cells(values: list[str]) -> str:
    return " ".join(
        f"{v[:w]:>{w}}" if right else f"{v[:w]:<{w}}" for v, (_, w, right) in zip(values, COLUMNS, strict=True)
    ).rstrip()


def table_head() -> str:
    return _cells([h for h, _, _ in COLUMNS])


def table_row(r: dict[str, Any]) -> list[str]:
    """A row's line, then the lines under it: the sync's progress, the last error, open alerts, problems."""
    active = r["role"] == "active"
    rw, test, al = r.get("rewind"), r.get("last_test"), r["alerts"]
    cells = [
        r["scenario"],
        r["role"],
        r["state"],
        r.get("replica", "-") if active else "-",
        str(r["acked_seq"] if active else r["applied_seq"]),
        human_seconds(r["lag_seconds"]) if active else "-",
        human_bytes(r["backlog_bytes"]) if active else "-",
        f"{human_seconds(rw['window_seconds'])}, {rw['bookmarks']} bm" if rw else "-",
        _test_cell(test),
        _alerts_cell(al),
    ]
    lines = [_cells(cells)]
    pad = " " * 4
    lines.append(f"{pad}{_consistency(r)}")
    start = r.get("start") or {}
    if active and r["state"] == "syncing" and start.get("from") == "kept picture" and "seconds" not in start:
        lines.append(f"{pad}start: comparing what changed at the source since the kept picture of the replica")
    elif active and r["state"] in ("syncing", *WAITING) and r.get("sync"):
        lines.append(f"{pad}sync: {describe(r['sync'])}")
    if active and r.get("last_error"):
        lines.append(f"{pad}last error: {r['last_error']}")
    if al["open_kinds"]:
        lines.append(f"{pad}open alerts: {', '.join(al['open_kinds'])} (twinsite events --scenario {r['scenario']})")
    lines += [f"{pad}cannot read {p}" for p in r["problems"]]
    return lines


def _consistency(r: dict[str, Any]) -> str:
    """The mode, and with points the last complete one: the state a failover would start from now."""
    if r.get("consistency") != "points":
        return "consistency: file (each file copied as it is read; a database's copy can be torn)"
    if r["role"] == "active":
        age = r.get("point_age_seconds")
        return f"consistency: points; last complete on {r.get('replica')}: " + (
            f"{human_seconds(age)} old (point {r['point_id']})" if age is not None else "none yet"
        )
    pt = r.get("point")
    return "consistency: points; last complete here: " + (
        f"{human_seconds(pt['age_seconds'])} old (point {pt['id']}, seq {pt['seq']})" if pt else "none yet"
    )


def _test_cell(test: dict[str, Any] | None) -> str:
    if test is None:
        return "-"
    text = f"{test['result']} {human_seconds(test['age_seconds'])}"
    return text + " ago" if len(text) <= COLUMNS[8][1] - 4 else text


def _alerts_cell(al: dict[str, Any]) -> str:
    parts = [f"{al['open']} open" if al["open"] else "", f"{al['recent']}/24h" if al["recent"] else ""]
    return ", ".join(p for p in parts if p) or "-"


def _syncing(r: dict[str, Any]) -> bool:
    """A sync is under way: running, or cut short and waiting for the link (it resumes, not restarts)."""
    sync = r.get("sync") or {}
    return r["state"] == "syncing" or (r["state"] in WAITING and bool(sync) and not sync.get("finished_at"))


def _key(r: dict[str, Any]) -> str:
    return f"{r['scenario']} {r['root']} -> {r.get('replica') or 'here'}"


def watch(config_dir: Path, state_dir: Path, *, interval: float = 1.0, out: TextIO | None = None) -> tuple[Any, str]:
    """Progress of every sync running here, redrawn in place on a terminal (a line per sync and update
    otherwise), until none runs; what each watched sync ended as is the answer."""
    out = out or sys.stdout
    tty = out.isatty()
    watched: dict[str, dict[str, Any]] = {}
    drawn = 0
    try:
        while True:
            rows = {_key(r): r for r in collect(config_dir, state_dir)["scenarios"]}
            running = {k: r for k, r in rows.items() if _syncing(r)}
            watched.update(running)
            watched.update({k: rows[k] for k in watched if k in rows})
            if not running:
                break
            lines = [
                f"{k}: {bar(r['sync']) if r.get('sync') else 'comparing'} ({r['state']})" for k, r in running.items()
            ]
            if tty:
                out.write((f"\x1b[{drawn}F" if drawn else "") + "".join(f"\x1b[2K{line}\n" for line in lines))
                drawn = len(lines)
            else:
                out.write("".join(f"{time.strftime('%H:%M:%S')} {line}\n" for line in lines))
            out.flush()
            time.sleep(interval)
    except KeyboardInterrupt:
        out.write("\n" if tty else "")
        raise
    ended = [f"{k}: {r['state']}" + (f" - {describe(r['sync'])}" if r.get("sync") else "") for k, r in watched.items()]
    result = {"syncs": [{"key": k, "state": r["state"], "sync": r.get("sync")} for k, r in watched.items()]}
    return result, "\n".join(ended) or "no sync is running here"

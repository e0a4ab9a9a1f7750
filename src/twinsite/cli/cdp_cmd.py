"""``twinsite rewind-points | bookmark | rewind``: continuous data protection on the standby (docs/cdp.md)."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from twinsite.cdp.log import RewindLog
from twinsite.cdp.rewind import planned, points, resolve_seq, resolve_time, rewind_to
from twinsite.cli.options import dirs
from twinsite.clock import iso
from twinsite.config.scenario import Scenario
from twinsite.config.store import find
from twinsite.errors import ConfigError, RewindError
from twinsite.journal.record import Record
from twinsite.state import applied, bookmarks, rewind, runs
from twinsite.state.layout import ReceiverState, ScenarioState
from twinsite.state.role import current, this_host


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("rewind-points", help="the rewind window of a replica, its bookmarks, the seq for a time")
    _common(p)
    p.add_argument("--at", metavar="TIME", help="also say which point a time maps to")
    p.set_defaults(handler=_points)

    p = sub.add_parser("bookmark", help="name the replica's current point (to rewind to it later)")
    _common(p)
    p.add_argument("name")
    p.set_defaults(handler=_bookmark)

    p = sub.add_parser("rewind", help="rewind the replica to a time, bookmark or seq; or bring it forward again")
    _common(p)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--to", metavar="TIME|BOOKMARK|SEQ")
    what.add_argument("--resume", action="store_true", help="forward again to the head, then replication goes on")
    p.add_argument("--dry-run", action="store_true", help="list what would change, change nothing")
    p.set_defaults(handler=_rewind)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("scenario")
    p.add_argument("--root", type=int, default=0, help="which root of the scenario (default 0, the first)")
    dirs(p)
    p.add_argument("--json", action="store_true")


@dataclass
class Replica:
    scenario: Scenario
    root: Path
    state: ReceiverState
    log: RewindLog
    head: int

    @property
    def consistent(self) -> bool:
        """With consistency points only the ends of complete points can be rewound to."""
        return self.scenario.replication.consistency == "points"


def _replica(args: argparse.Namespace) -> Replica:
    s = find(args.config_dir, args.scenario)
    if not 0 <= args.root < len(s.roots):
        raise ConfigError(f"scenario {s.name} has {len(s.roots)} root(s); --root {args.root} is not one of them")
    state = ScenarioState(args.state_dir, s.name).receiver(args.root)
    if not state.rewind_log.is_dir():
        raise RewindError(
            f"no rewind log for {s.name} on this host ({state.rewind_log})",
            hint="rewinding needs `cdp: {enabled: true}` in the scenario, on its standby, and points recorded since",
        )
    head = applied.read(state.applied).seq
    # (read-only: opening the log for writing recovers a torn tail, which could be the group the receiver is
    # appending; a rewind opens it for writing under the apply lock, cdp.rewind.rewind_to)
    return Replica(s, Path(s.roots[args.root].path), state, RewindLog(state.rewind_log, readonly=True), head)


def parse_time(text: str) -> float:
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(
            f"{text!r} is neither a bookmark, a seq nor a time",
            hint="give a bookmark name (twinsite rewind-points lists them), a seq number, "
            "or an ISO 8601 time such as 2026-11-25T03:00:00Z (without a zone: this host's local time)",
        ) from exc
    return when.timestamp()


def _target(r: Replica, text: str) -> int:
    marks = bookmarks.load(r.state.bookmarks)
    if text in marks:
        return resolve_seq(r.log, r.head, int(marks[text]["seq"]), consistent=r.consistent)
    if text.isdigit():
        return resolve_seq(r.log, r.head, int(text), consistent=r.consistent)
    try:
        when = parse_time(text)
    except ConfigError as exc:
        raise ConfigError(
            f"{text!r} is not a bookmark of {r.scenario.name}, a seq or a time",
            hint=f"bookmarks: {', '.join(sorted(marks)) or 'none'}; {exc.hint}",
        ) from exc
    return resolve_time(r.log, r.head, when, consistent=r.consistent)


def _points(args: argparse.Namespace) -> tuple[Any, str]:
    r = _replica(args)
    pts = points(r.log, r.head, consistent=r.consistent)
    reachable = {s for s, _ in pts}
    marks = [
        {"name": n, **m, "time": iso(m["ts"]), "reachable": m["seq"] in reachable}
        for n, m in sorted(bookmarks.load(r.state.bookmarks).items(), key=lambda kv: kv[1]["seq"])
    ]
    pos = rewind.read(r.state.rewind)
    result: dict[str, Any] = {
        "scenario": r.scenario.name,
        "root": str(r.root),
        "head": r.head,
        "rewound_to": pos.at if pos else None,
        "oldest": {"seq": pts[0][0], "ts": pts[0][1], "time": iso(pts[0][1])},
        "newest": {"seq": pts[-1][0], "ts": pts[-1][1], "time": iso(pts[-1][1])},
        "points": len(pts),
        "log_bytes": r.log.disk_bytes(),
        "bookmarks": marks,
    }
    lines = [
        f"{r.scenario.name} {r.root}: {len(pts)} points, {result['log_bytes']} bytes of rewind log",
        f"  oldest  seq {pts[0][0]:>10}  {result['oldest']['time']}",
        f"  newest  seq {pts[-1][0]:>10}  {result['newest']['time']}",
    ]
    if pos:
        lines.append(f"  REWOUND to seq {pos.at} (head {pos.head}): `twinsite rewind {r.scenario.name} --resume`")
    for m in marks:
        lines.append(f"  bookmark {m['name']}: seq {m['seq']} {m['time']}" + ("" if m["reachable"] else " (pruned)"))
    if args.at:
        seq = resolve_time(r.log, r.head, parse_time(args.at), consistent=r.consistent)
        result["at"] = {"time": args.at, "seq": seq}
        lines.append(f"  {args.at} -> seq {seq}")
    return result, "\n".join(lines)


def _bookmark(args: argparse.Namespace) -> tuple[Any, str]:
    r = _replica(args)
    ts = points(r.log, r.head)[-1][1]
    created, mark = bookmarks.add(r.state.bookmarks, args.name, r.head, ts)
    result = {"scenario": r.scenario.name, "name": args.name, "changed": created, **mark, "time": iso(mark["ts"])}
    verb = "bookmarked" if created else "already bookmarked"
    return result, f"{r.scenario.name}: {verb} {args.name!r} at seq {mark['seq']} ({result['time']})"


class _Changes:
    """What a move touches: paths (as the records name them), bytes of data, records."""

    def __init__(self) -> None:
        self.paths: set[bytes] = set()
        self.bytes = self.records = 0

    def add(self, records: list[Record]) -> None:
        for rec in records:
            self.paths.add(rec.path)
            self.bytes += len(rec.data)
        self.records += len(records)

    def summary(self) -> dict[str, Any]:
        return {"files": sorted(os.fsdecode(p) for p in self.paths), "bytes": self.bytes, "records": self.records}


def _refuse_during_switchover_or_test(r: Replica, state_dir: Path) -> None:
    """A switchover under way takes the data its preflight saw, and a test reads the replica through its
    overlay (and spools what arrives): neither may have the replica moved under it."""
    from twinsite.engine.spool import Spool

    name = r.scenario.name
    if runs.unfinished(ScenarioState(state_dir, name).switchover_run):
        raise RewindError(
            f"a switchover of {name} is unfinished here", hint=f"run `twinsite switchover {name}` again to finish it"
        )
    spool = Spool(r.state)
    if spool.spooling or spool.held():
        raise RewindError(
            f"an assured-recovery test of {name} runs here, or its spool is not applied yet",
            hint=f"wait for it to end, or `twinsite recover-test {name} --cleanup`",
        )


def _rewind(args: argparse.Namespace) -> tuple[Any, str]:
    r = _replica(args)
    role = current(ScenarioState(args.state_dir, r.scenario.name), r.scenario.master)
    if role.active == this_host() and not args.dry_run:
        raise RewindError(
            f"this host is the active host of {r.scenario.name} (epoch {role.epoch}): its data is live, a rewind "
            "would change it under the application",
            hint="rewind a standby's replica; to take the active host back in time, switch over to a rewound standby",
        )
    if not args.dry_run:
        _refuse_during_switchover_or_test(r, args.state_dir)
    pos = rewind.read(r.state.rewind)

    def choose(head: int) -> int:
        return head if args.resume else _target(replace(r, head=head), args.to)

    changes = _Changes()
    t0 = time.monotonic()
    if args.dry_run:
        head = pos.head if pos else r.head
        start, target = (pos.at if pos else head), choose(head)
        for records in planned(r.log, head, start, target):
            changes.add(records)
    else:
        head, start, target = rewind_to(r.root, r.state, choose, on_run=changes.add)
    result: dict[str, Any] = {
        "scenario": r.scenario.name,
        "root": str(r.root),
        "from": start,
        "to": target,
        "head": head,
        "dry_run": bool(args.dry_run),
        "changed": start != target or bool(pos and pos.sub),
        **changes.summary(),
        "seconds": round(time.monotonic() - t0, 3),
    }
    what = f"{len(changes.paths)} path(s), {changes.bytes} bytes of data"
    if args.dry_run:
        return result, f"{r.scenario.name}: would move from seq {start} to seq {target}: {what}"
    result["state"] = "rewound" if target != head else "replicating"
    if target == head:
        return result, f"{r.scenario.name}: forward again at seq {head}; replication goes on ({what} re-applied)"
    return result, (
        f"{r.scenario.name}: REWOUND to seq {target} ({what} undone). Replication is paused: switch over to "
        f"this data, or `twinsite rewind {r.scenario.name} --resume` to bring it forward again."
    )

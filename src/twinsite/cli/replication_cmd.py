"""``twinsite agent | verify | digest``: the replication engine's commands (``receive`` is in receive_cmd,
``status`` in status_cmd)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from twinsite.cli.options import dirs, metrics
from twinsite.cli.output import envelope, print_json
from twinsite.clock import iso
from twinsite.config.store import find
from twinsite.errors import ConfigError
from twinsite.ops import at_point
from twinsite.state.role import members, this_host
from twinsite.tree import digest, entries
from twinsite.verify import compare, entries_json


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("agent", help="run every scenario this host is active for, until stopped")
    dirs(p)
    p.add_argument("--host", default=None, help="this host's name in the scenarios (default: hostname)")
    metrics(p)
    p.set_defaults(handler=_agent, raw=True)

    p = sub.add_parser("verify", help="compare a scenario's source and replica by tree digest, list differences")
    p.add_argument("scenario")
    dirs(p)
    p.add_argument("--replica", help="which standby (default: every one)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_verify)

    p = sub.add_parser(
        "point-hold",
        help="(run by verify over SSH) hold this standby's replica at its last complete point until stdin ends",
    )
    p.add_argument("scenario")
    p.add_argument("--root", type=int, default=0, help="the root's index in the scenario")
    dirs(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_point_hold)

    p = sub.add_parser("digest", help="the canonical tree digest of a directory (what verify compares)")
    p.add_argument("path", type=Path)
    p.add_argument("--entries", action="store_true", help="include every entry")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_digest)


def _agent(args: argparse.Namespace) -> tuple[Any, str]:
    from twinsite import logs
    from twinsite.agent import loop
    from twinsite.agent.metrics import Exporter

    logs.setup("agent")
    host = args.host or this_host()
    exporter = None
    if args.metrics_listen or args.metrics_textfile:
        exporter = Exporter(
            args.config_dir, args.state_dir, host, listen=args.metrics_listen, textfile_dir=args.metrics_textfile
        )
    raise SystemExit(loop.run(args.config_dir, args.state_dir, host, metrics=exporter))


def _digest(args: argparse.Namespace) -> tuple[Any, str]:
    if not args.path.is_dir():
        raise ConfigError(f"not a directory: {args.path}")
    listing = entries(args.path)
    result: dict[str, Any] = {"path": str(args.path), "digest": digest(args.path), "count": len(listing)}
    if args.entries:
        result["entries"] = entries_json(listing)
    return result, f"{result['digest']}  {result['count']} entries  {args.path}"


def _point_hold(args: argparse.Namespace) -> tuple[Any, str]:
    s = find(args.config_dir, args.scenario)
    if not 0 <= args.root < len(s.roots):
        raise ConfigError(f"{s.name} has no root {args.root}", where=s.name)
    with at_point.hold(s, args.state_dir, this_host(), args.root) as p:
        held = {"point": {"id": p.id, "seq": p.seq, "ts": p.ts}, "root": s.roots[args.root].path}
        print_json(envelope("point-hold", result=held))  # (the caller compares now, then closes our input)
        sys.stdin.read()
    return {**held, "released": True}, f"{held['root']} held at point {p.id}, released"


def _verify(args: argparse.Namespace) -> tuple[Any, str]:
    s = find(args.config_dir, args.scenario)
    reports: list[dict[str, Any]] = []
    here = this_host()
    targets = [args.replica] if args.replica else [h for h in members(s.master, s.replicas) if h != here]
    for i, root in enumerate(s.roots):
        for replica in targets:
            point = None
            if s.replication.consistency == "points":  # the standby's last complete point and its snapshot
                got = at_point.compare(s, args.state_dir, i, replica)
                local, diffs, point = got.local, got.differences, got.point
            else:
                local, diffs = compare(s, root, replica)
            reports.append(
                {
                    "root": root.path,
                    "replica": replica,
                    "point": point,
                    "equal": not diffs,
                    "entries": len(local),
                    "differences": [[os.fsdecode(p), why] for p, why in diffs[:1000]],
                    "difference_count": len(diffs),
                }
            )
    text = "\n".join(
        f"{r['root']} -> {r['replica']}: "
        + ("equal" if r["equal"] else f"{r['difference_count']} difference(s)")
        + (f" at point {r['point']['id']} ({iso(r['point']['ts'])})" if r["point"] else "")
        + "".join(f"\n  {p!r}: {why}" for p, why in r["differences"][:50])
        for r in reports
    )
    return {"scenario": s.name, "equal": all(r["equal"] for r in reports), "roots": reports}, text

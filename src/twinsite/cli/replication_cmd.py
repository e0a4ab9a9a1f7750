"""``twinsite agent | verify | digest``: the replication engine's commands (``receive`` is in receive_cmd,
``status`` in status_cmd)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from twinsite.cli.options import dirs, metrics
from twinsite.config.store import find
from twinsite.errors import ConfigError
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


def _verify(args: argparse.Namespace) -> tuple[Any, str]:
    s = find(args.config_dir, args.scenario)
    reports: list[dict[str, Any]] = []
    here = this_host()
    targets = [args.replica] if args.replica else [h for h in members(s.master, s.replicas) if h != here]
    for root in s.roots:
        for replica in targets:
            local, diffs = compare(s, root, replica)
            reports.append(
                {
                    "root": root.path,
                    "replica": replica,
                    "equal": not diffs,
                    "entries": len(local),
                    "differences": [[os.fsdecode(p), why] for p, why in diffs[:1000]],
                    "difference_count": len(diffs),
                }
            )
    text = "\n".join(
        f"{r['root']} -> {r['replica']}: "
        + ("equal" if r["equal"] else f"{r['difference_count']} difference(s)")
        + "".join(f"\n  {p!r}: {why}" for p, why in r["differences"][:50])
        for r in reports
    )
    return {"scenario": s.name, "equal": all(r["equal"] for r in reports), "roots": reports}, text

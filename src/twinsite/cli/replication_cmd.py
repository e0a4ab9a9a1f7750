"""``twinsite agent | status | verify | digest``: the replication engine's commands (``receive`` is in receive_cmd)."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from twinsite.cli.options import dirs
from twinsite.engine import agent
from twinsite.errors import ConfigError
from twinsite.roles import members, standbys, this_host
from twinsite.sync.progress import describe
from twinsite.tree import digest, entries
from twinsite.verify import compare, entries_json


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("agent", help="run every scenario this host is active for, until stopped")
    dirs(p)
    p.add_argument("--host", default=None, help="this host's name in the scenarios (default: hostname)")
    p.set_defaults(handler=_agent, raw=True)

    p = sub.add_parser("status", help="per scenario: role, state, positions, lag, backlog, last error")
    dirs(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_status)

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
    raise SystemExit(agent.run(args.config_dir, args.state_dir, args.host or this_host()))


def read_status(config_dir: Path, state_dir: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    host = this_host()
    for s in agent.load_dir(config_dir):
        r = agent.role_of(s, state_dir)
        role = "active" if r.active == host else ("standby" if host in standbys(r, s.master, s.replicas) else "other")
        where = {"active": r.active, "epoch": r.epoch}
        for i, root in enumerate(s.roots):
            if role == "active":
                for replica in standbys(r, s.master, s.replicas):
                    f = agent.sender_state(state_dir, s.name, i, replica) / "status.json"
                    st: dict[str, Any] = json.loads(f.read_text()) if f.exists() else {"state": "stopped"}
                    st.update(scenario=s.name, role=role, root=root.path, replica=replica, **where)
                    if agent.is_stopped(config_dir, s.name):
                        st["state"] = "stopped"
                    elif st.get("updated_at") and st["state"] != "stopped" and time.time() - st["updated_at"] > 30:
                        st["state"] = "stale"  # the agent stopped writing: it is not running
                    rows.append(st)
            else:
                pos = agent.applied_position(state_dir, s.name, i)
                rows.append(
                    {"scenario": s.name, "role": role, "root": root.path, "state": "standby", "applied_seq": pos.seq,
                     "applied_ts": pos.ts or None, **where}
                )  # fmt: skip
    return rows


def _status(args: argparse.Namespace) -> tuple[Any, str]:
    rows = read_status(args.config_dir, args.state_dir)
    lines = [
        f"{'SCENARIO':<14}{'ROLE':<9}{'STATE':<14}{'REPLICA':<10}{'ACKED':>9}{'LAG s':>8}{'BACKLOG':>10}  LAST ERROR"
    ]
    for r in rows:
        lines.append(
            f"{r['scenario']:<14}{r['role']:<9}{r['state']:<14}{r.get('replica', '-'):<10}"
            f"{r.get('acked_seq', r.get('applied_seq', 0)):>9}{r.get('lag_seconds', 0):>8.2f}"
            f"{r.get('backlog_bytes', 0):>10}  {r.get('last_error') or ''}"
        )
        if r.get("state") == "syncing" and r.get("sync"):
            lines.append(f"{'':<14}sync: {describe(r['sync'])}")
    if not rows:
        lines.append(f"(no scenarios in {args.config_dir})")
    return {"scenarios": rows}, "\n".join(lines)


def _digest(args: argparse.Namespace) -> tuple[Any, str]:
    if not args.path.is_dir():
        raise ConfigError(f"not a directory: {args.path}")
    listing = entries(args.path)
    result: dict[str, Any] = {"path": str(args.path), "digest": digest(args.path), "count": len(listing)}
    if args.entries:
        result["entries"] = entries_json(listing)
    return result, f"{result['digest']}  {result['count']} entries  {args.path}"


def _verify(args: argparse.Namespace) -> tuple[Any, str]:
    scenarios = {s.name: s for s in agent.load_dir(args.config_dir)}
    if args.scenario not in scenarios:
        raise ConfigError(
            f"no scenario called {args.scenario!r}",
            where=str(args.config_dir),
            hint=f"known: {', '.join(sorted(scenarios)) or 'none'}",
        )
    s = scenarios[args.scenario]
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

"""``twinsite agent | status | verify | digest``: the replication engine's commands (``receive`` is in receive_cmd)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from twinsite.apply.applier import SeqFile
from twinsite.engine import agent
from twinsite.errors import ConfigError, HostUnreachableError
from twinsite.sync.progress import describe
from twinsite.transport.channels import Endpoint, openssh_argv
from twinsite.tree import Entry, differences, digest, entries


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("agent", help="run every scenario this host is active for, until stopped")
    _dirs(p)
    p.add_argument("--host", default=None, help="this host's name in the scenarios (default: hostname)")
    p.set_defaults(handler=_agent, raw=True)

    p = sub.add_parser("status", help="per scenario: role, state, positions, lag, backlog, last error")
    _dirs(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_status)

    p = sub.add_parser("verify", help="compare a scenario's source and replica by tree digest, list differences")
    p.add_argument("scenario")
    _dirs(p)
    p.add_argument("--replica", help="which standby (default: every one)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_verify)

    p = sub.add_parser("digest", help="the canonical tree digest of a directory (what verify compares)")
    p.add_argument("path", type=Path)
    p.add_argument("--entries", action="store_true", help="include every entry")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_digest)


def _dirs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config-dir", type=Path, default=agent.DEFAULT_CONFIG_DIR)
    p.add_argument("--state-dir", type=Path, default=agent.DEFAULT_STATE_DIR)


def _agent(args: argparse.Namespace) -> tuple[Any, str]:
    raise SystemExit(agent.run(args.config_dir, args.state_dir, args.host or agent.this_host()))


def read_status(config_dir: Path, state_dir: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    host = agent.this_host()
    for s in agent.load_dir(config_dir):
        role = "active" if s.master == host else ("standby" if host in s.replicas else "other")
        for i, root in enumerate(s.roots):
            if role == "active":
                for replica in s.replicas:
                    f = agent.sender_state(state_dir, s.name, i, replica) / "status.json"
                    st: dict[str, Any] = json.loads(f.read_text()) if f.exists() else {"state": "stopped"}
                    st.update(scenario=s.name, role=role, root=root.path, replica=replica)
                    if agent.is_stopped(config_dir, s.name):
                        st["state"] = "stopped"
                    elif st.get("updated_at") and st["state"] != "stopped" and time.time() - st["updated_at"] > 30:
                        st["state"] = "stale"  # the agent stopped writing: it is not running
                    rows.append(st)
            else:
                f = agent.receiver_state(state_dir, s.name, i) / "applied_seq"
                applied = 0
                if f.exists():
                    sf = SeqFile(f)
                    applied = sf.read()
                    sf.close()
                rows.append(
                    {"scenario": s.name, "role": role, "root": root.path, "state": "standby", "applied_seq": applied}
                )
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


def _entries_json(listing: dict[bytes, Entry]) -> list[list[Any]]:
    return [
        [
            k.hex(),
            e.kind,
            e.mode,
            e.uid,
            e.gid,
            e.size,
            e.content,
            [[a.hex(), b.hex()] for a, b in e.xattrs],
            e.mtime_ns,
            e.link_group.hex(),
        ]
        for k, e in sorted(listing.items())
    ]


def _entries_from_json(rows: list[list[Any]]) -> dict[bytes, Entry]:
    return {
        bytes.fromhex(r[0]): Entry(
            bytes.fromhex(r[0]),
            r[1],
            r[2],
            r[3],
            r[4],
            r[5],
            r[6],
            tuple((bytes.fromhex(a), bytes.fromhex(b)) for a, b in r[7]),
            r[8],
            bytes.fromhex(r[9]),
        )
        for r in rows
    }


def _digest(args: argparse.Namespace) -> tuple[Any, str]:
    if not args.path.is_dir():
        raise ConfigError(f"not a directory: {args.path}")
    listing = entries(args.path)
    result: dict[str, Any] = {"path": str(args.path), "digest": digest(args.path), "count": len(listing)}
    if args.entries:
        result["entries"] = _entries_json(listing)
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
    for root in s.roots:
        local = entries(Path(root.path), root.selects_bytes)
        for replica in [args.replica] if args.replica else s.replicas:
            remote = _remote_entries(s.replication.remote_twinsite, replica, root.path, s.replication.known_hosts)
            diffs = differences(local, remote)
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


def _remote_entries(remote_twinsite: str, host: str, root: str, known_hosts: str) -> dict[bytes, Entry]:
    ep = Endpoint(
        host=host,
        command=[remote_twinsite, "digest", "--entries", "--json", root],
        known_hosts=os.path.expanduser(known_hosts),
    )
    argv = openssh_argv(ep)
    proc = subprocess.run(argv, capture_output=True, timeout=600, check=False)
    try:
        body = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    except (ValueError, IndexError) as exc:
        raise HostUnreachableError(
            f"cannot read the replica's listing: {proc.stderr.decode().strip()}", where=host
        ) from exc
    if not body.get("ok"):
        raise HostUnreachableError(
            f"the replica could not list {root}: {body.get('error', {}).get('message')}", where=host
        )
    return _entries_from_json(body["result"]["entries"])

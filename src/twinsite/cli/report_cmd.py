"""``twinsite history`` (a host's own record of a period, agent.history) and ``twinsite report`` (the site's, put
together from every host's history: site.report; markdown, JSON or HTML)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from twinsite.cli.options import dirs
from twinsite.config.units import parse_duration
from twinsite.errors import ConfigError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("history", help="this host's record of a period: lag, tests, switchovers, alerts, changes")
    _period(p)
    dirs(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_history)

    p = sub.add_parser("report", help="the site's report over a period, per scenario: RPO against its target, "
                       "tests, switchovers with RTO/RPO, alerts, who changed what")  # fmt: skip
    p.add_argument("-i", "--inventory", help="ask every host of this Ansible inventory (default: this host only)")
    p.add_argument("--vault-password-file", default=None, help="for an inventory with vault-encrypted values")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds each host has to answer (default 30)")
    _period(p)
    p.add_argument("--format", choices=("md", "json", "html"), default="md", help="markdown (default), JSON, HTML")
    p.add_argument("-o", "--output", type=Path, help="write it to this file (default: standard output)")
    dirs(p)
    p.set_defaults(handler=_report)


def _period(p: argparse.ArgumentParser) -> None:
    p.add_argument("--since", default="30d", help="how far back: a duration such as 24h, 30d (default 30d)")
    p.add_argument("--buckets", type=int, default=240, help="slices of the period in the lag series (default 240)")


def since(args: argparse.Namespace, now: float) -> float:
    try:
        seconds = parse_duration(args.since)
    except ConfigError as exc:
        raise ConfigError(f"--since {args.since!r}: {exc.message}", hint="for example 24h or 30d") from exc
    if not 1 <= args.buckets <= 10000:
        raise ConfigError(f"--buckets {args.buckets}: give 1 to 10000")
    return now - seconds


def _history(args: argparse.Namespace) -> tuple[Any, str]:
    from twinsite.agent.history import summary
    from twinsite.site.report import facts, merge
    from twinsite.state.role import this_host

    now = time.time()
    h = summary(args.config_dir, args.state_dir, since=since(args, now), now=now, buckets=args.buckets)
    h["host"] = this_host()
    one = merge({h["host"]: {"view": h, "error": None, "seconds": 0.0}}, [], since=h["since"], now=now)
    lines = [f"{s['scenario']}: " + "; ".join(facts(s)) for s in one["scenarios"]]
    return h, "\n".join(lines) or "(no scenarios here)"


def _report(args: argparse.Namespace) -> tuple[Any, str]:
    from twinsite.agent.history import summary
    from twinsite.site import html, report
    from twinsite.state.role import this_host

    now = time.time()
    start = since(args, now)
    if args.inventory:
        from twinsite.site import inventory

        inv = inventory.read(args.inventory, vault_password_file=args.vault_password_file)
        hosts, names = inv.hosts()
        r = report.gather(
            hosts, names, inv.scenarios, seconds=now - start, timeout=args.timeout, buckets=args.buckets, now=now
        )
    else:
        view = summary(args.config_dir, args.state_dir, since=start, now=now, buckets=args.buckets)
        r = report.merge({this_host(): {"view": view, "error": None, "seconds": 0.0}}, [], since=start, now=now)
    text = {"md": report.markdown, "json": report.as_json, "html": html.report_page}[args.format](r)
    if args.output:
        args.output.write_text(text)
        return r, f"report written to {args.output}"
    return r, text.rstrip("\n")

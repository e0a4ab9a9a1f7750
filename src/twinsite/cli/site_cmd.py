"""``twinsite site status -i INVENTORY``: every host of an inventory asked at once from the controller
(twinsite.site.status), as a table per scenario for people or as JSON (schemas/site-status.schema.json)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from twinsite.errors import ConfigError
from twinsite.site import inventory
from twinsite.site.status import ask, merge
from twinsite.sync.progress import human_bytes, human_seconds

COLUMNS = (("STANDBY", 10), ("ROOT", 16), ("STATE", 35), ("LAG", 9), ("BACKLOG", 10), ("POINT", 10), ("REWIND", 16))


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("site", help="the whole site from the controller: every host of an inventory at once")
    actions = p.add_subparsers(dest="site_action", required=True)
    s = actions.add_parser("status", help="per scenario: active host, each standby's state, lag, backlog, "
                           "last point, rewind window, last test, alerts; an unreachable host says so")  # fmt: skip
    s.add_argument("-i", "--inventory", required=True, help="the Ansible inventory (what ansible-playbook -i takes)")
    s.add_argument("--vault-password-file", default=None, help="for an inventory with vault-encrypted values")
    s.add_argument("--timeout", type=float, default=10.0, help="seconds each host has to answer (default 10)")
    s.add_argument("--json", action="store_true", help="the same facts as JSON (schemas/site-status.schema.json)")
    s.add_argument("--watch", action="store_true", help="ask again every --interval seconds until Ctrl-C")
    s.add_argument("--interval", type=float, default=5.0, help="with --watch: seconds between rounds (default 5)")
    s.set_defaults(handler=_site_status)


def _site_status(args: argparse.Namespace) -> tuple[Any, str]:
    if args.watch and args.json:
        raise ConfigError("--watch redraws a table for people; --json gives one answer", hint="use one of them")
    inv = inventory.read(args.inventory, vault_password_file=args.vault_password_file)  # (once, also with --watch)
    hosts, names = inv.hosts()

    def collect() -> dict[str, Any]:
        return merge(ask(hosts, names, timeout=args.timeout), inv.scenarios, timeout=args.timeout)

    view = collect()
    if not args.watch:
        return view, render(view)
    tty = sys.stdout.isatty()
    try:
        while True:
            text = render(view)
            sys.stdout.write(("\x1b[H\x1b[2J" if tty else "") + f"{time.strftime('%H:%M:%S')}\n{text}\n")
            sys.stdout.flush()
            time.sleep(args.interval)
            view = collect()
    except KeyboardInterrupt:
        return view, ""


def render(view: dict[str, Any]) -> str:
    lines = []
    for h in view["hosts"]:
        if h["answered"]:
            lines.append(f"{h['host']:<12} answered in {h['seconds']:.2f} s (twinsite {h['version']})")
        else:
            why = "unreachable" if not h["reachable"] else "no answer"
            lines.append(f"{h['host']:<12} {why} after {h['seconds']:.1f} s: {h['error']}")
    for s in view["scenarios"]:
        lines += ["", _heading(s), "  " + _cells([c for c, _ in COLUMNS])]
        lines += ["  " + _cells(_row(b)) for b in s["standbys"]]
        lines += [f"  last error on {b['host']}: {b['last_error']}" for b in s["standbys"] if b["last_error"]]
        lines += [f"  cannot read {p}" for p in s["problems"]]
    if not view["scenarios"]:
        lines.append("(no scenarios declared in the inventory, and none found on its hosts)")
    return "\n".join(lines)


def _heading(s: dict[str, Any]) -> str:
    active = f"active {s['active']}" + ("" if s["active_answered"] else " (NOT ANSWERING: as its standbys last saw it)")
    test = s["last_test"]
    tested = f"last test {test['result']} {human_seconds(test['age_seconds'])} ago" if test else "never tested"
    al = s["alerts"]
    alerts = f"{al['open']} open ({', '.join(al['open_kinds'])})" if al["open"] else "none open"
    where = "" if s["declared"] else " (not in the inventory: declared on a host only)"
    return f"{s['scenario']}{where}: {active}, epoch {s['epoch']}; {tested}; alerts: {alerts}, {al['recent']} in 24 h"


def _row(b: dict[str, Any]) -> list[str]:
    def opt(v: Any, fmt: Any) -> str:
        return "-" if v is None else str(fmt(v))

    rewind = "-"
    if b["rewind_window_seconds"] is not None:
        rewind = f"{human_seconds(b['rewind_window_seconds'])}, {b['bookmarks']} bm"
    state = b["state"] if b["answered"] or b["state"].startswith("unknown") else f"{b['state']} (host silent)"
    return [
        b["host"],
        b["root"] or "-",
        state,
        opt(b["lag_seconds"], human_seconds),
        opt(b["backlog_bytes"], human_bytes),
        opt(b["point_age_seconds"], lambda v: f"{human_seconds(v)} old"),
        rewind,
    ]


def _cells(values: list[str]) -> str:
    return " ".join(f"{v[:w]:<{w}}" for v, (_, w) in zip(values, COLUMNS, strict=True)).rstrip()

"""``twinsite lab``: bring the lab up and down, look at it, cut and heal hosts, run commands in them."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from twinsite import lab as labmod
from twinsite.errors import ConfigError, LabError
from twinsite.lab import vcsim, wan
from twinsite.lab.topology import Lab


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("lab", help="the embedded lab: prod1, dr1, client1, DNS and a vCenter simulator")
    lsub = p.add_subparsers(dest="lab_command", required=True, metavar="ACTION")
    for name, text in (
        ("up", "bring every part of the lab up (idempotent)"),
        ("down", "stop everything and remove the namespaces (idempotent)"),
        ("status", "what runs and where"),
        ("build", "build the vCenter simulator (done by `up` when needed)"),
    ):
        q = lsub.add_parser(name, help=text)
        q.add_argument("--json", action="store_true", help="print the JSON contract instead of text")
        q.set_defaults(handler=_HANDLERS[name])
    for name, text in (
        ("cut", "pull a host's network cable (site failure)"),
        ("heal", "plug it back in (and undo its partitions)"),
    ):
        q = lsub.add_parser(name, help=text)
        q.add_argument("host", help="prod1, dr1 or client1")
        q.add_argument("--json", action="store_true")
        q.set_defaults(handler=_HANDLERS[name])
    q = lsub.add_parser("partition", help="cut only the link between two hosts (heal either to undo)")
    q.add_argument("host")
    q.add_argument("other")
    q.add_argument("--json", action="store_true")
    q.set_defaults(handler=_partition)
    q = lsub.add_parser("wan", help="give the path to a host a round trip (through port 2222) and a rate")
    q.add_argument("host")
    q.add_argument("--rtt", default="50ms", help="round trip added through port 2222 (50ms, 0.2s; default 50ms)")
    q.add_argument("--rate", default="100mbit", help="rate of the host's link, in tc's units (default 100mbit)")
    q.add_argument("--off", action="store_true", help="remove the delay and the rate")
    q.add_argument("--json", action="store_true")
    q.set_defaults(handler=_wan)
    q = lsub.add_parser("exec", help="run a command inside a lab host: twinsite lab exec HOST -- CMD...")
    q.add_argument("host")
    q.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD")
    q.set_defaults(handler=_exec)


def _up(args: argparse.Namespace) -> tuple[Any, str]:
    lab = Lab.from_env()
    report = labmod.up(lab)
    st = labmod.status(lab)
    return {"seconds": report.seconds, "status": st}, _status_text(st) + "\nstarted in: " + ", ".join(
        f"{k} {v:.2f}s" for k, v in report.seconds.items()
    )


def _down(args: argparse.Namespace) -> tuple[Any, str]:
    lab = Lab.from_env()
    labmod.down(lab)
    return labmod.status(lab), f"lab {lab.name} is down"


def _status(args: argparse.Namespace) -> tuple[Any, str]:
    st = labmod.status(Lab.from_env())
    return st, _status_text(st)


def _build(args: argparse.Namespace) -> tuple[Any, str]:
    exe = vcsim.build()
    return {"vcsim": str(exe)}, f"built {exe}"


def _cut(args: argparse.Namespace) -> tuple[Any, str]:
    h = labmod.cut(Lab.from_env(), args.host)
    return {"host": h.name, "link": "cut"}, f"{h.name}: link cut"


def _heal(args: argparse.Namespace) -> tuple[Any, str]:
    h = labmod.heal(Lab.from_env(), args.host)
    return {"host": h.name, "link": "up"}, f"{h.name}: link up"


def _partition(args: argparse.Namespace) -> tuple[Any, str]:
    a, b = labmod.partition(Lab.from_env(), args.host, args.other)
    return {"hosts": [a.name, b.name], "link": "partitioned"}, f"{a.name} <-/-> {b.name}: partitioned"


def _wan(args: argparse.Namespace) -> tuple[Any, str]:
    lab = Lab.from_env()
    if args.off:
        wan.off(lab, args.host)
        return {"host": args.host, "wan": None}, f"{args.host}: no WAN delay or rate"
    st = wan.on(lab, args.host, rtt=_seconds(args.rtt), rate=args.rate)
    return {"host": args.host, "wan": st}, (
        f"{args.host}: rate {st['rate']}; round trip +{st['rtt_seconds'] * 1000:g} ms through port {st['port']}"
    )


def _seconds(text: str) -> float:
    """50ms -> 0.05, 0.2s -> 0.2, 0.2 -> 0.2."""
    t = text.strip().lower()
    try:
        if t.endswith("ms"):
            return float(t[:-2]) / 1000
        return float(t[:-1] if t.endswith("s") else t)
    except ValueError as exc:
        raise ConfigError(f"--rtt {text!r} is not a duration", hint="e.g. 50ms or 0.2s") from exc


def _exec(args: argparse.Namespace) -> tuple[Any, str]:
    argv = list(args.argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise ConfigError("no command given", hint="twinsite lab exec prod1 -- hostname")
    full = labmod.exec_argv(Lab.from_env(), args.host, argv)
    sys.stdout.flush()
    try:
        os.execvp(full[0], full)  # noqa: S606 -- argv list, no shell; stdin, stdout, stderr and the exit code pass straight through
    except OSError as exc:
        raise LabError(f"cannot run {full[0]}: {exc}") from exc
    raise AssertionError("unreachable")  # pragma: no cover


def _status_text(st: dict[str, Any]) -> str:
    lines = [f"lab {st['name']} ({st['network']}, {st['root']}): {st['state']}"]
    for h in st["hosts"]:
        sshd = f"sshd pid {h['sshd_pid']}" if h["sshd_pid"] else "sshd not running"
        lines.append(f"  {h['name']:<8} {h['address']:<12} {h['site']:<7} link {h['link']:<6} {sshd}")
    d, v = st["dns"], st["vcenter"]
    lines.append(
        f"  dns      {d['server']}:{d['port']} zone {d['zone']}  " + (f"pid {d['pid']}" if d["pid"] else "down")
    )
    lines.append(f"  vcenter  https://{v['hostname']}/sdk  " + (f"pid {v['pid']}" if v["pid"] else "down"))
    lines.append(f"  ssh      ssh -F {st['ssh']['config']} prod1")
    return "\n".join(lines)


_HANDLERS = {"up": _up, "down": _down, "status": _status, "build": _build, "cut": _cut, "heal": _heal}

"""``twinsite service start|stop|status``: run the agent under twinsite's own supervisor (no systemd)."""

from __future__ import annotations

import argparse
from typing import Any

from twinsite.agent import service
from twinsite.cli.options import dirs, metrics, metrics_argv


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("service", help="start, stop or look at the supervised agent (where systemd does not run)")
    p.add_argument("action", choices=["start", "stop", "restart", "status", service.SUPERVISOR_MARK])
    dirs(p)
    metrics(p)  # (start, restart: passed to the agent)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_service)


def _service(args: argparse.Namespace) -> tuple[Any, str]:
    changed = False
    if args.action == service.SUPERVISOR_MARK:
        raise SystemExit(service.supervise(args.config_dir, args.state_dir, metrics_argv(args)))
    if args.action in ("stop", "restart"):
        changed = service.stop(args.state_dir)
    if args.action in ("start", "restart"):
        changed = service.start(args.config_dir, args.state_dir, metrics_argv(args)) or changed
    st = service.status(args.state_dir)
    st["changed"] = changed
    state = "running" if st["running"] else "stopped"
    return st, f"agent {state}" + (
        f" (supervisor pid {st['supervisor_pid']}, agent pid {st['agent_pid']})" if st["running"] else ""
    ) + (" [changed]" if changed else "")

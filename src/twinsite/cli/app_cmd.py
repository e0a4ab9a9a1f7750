"""``twinsite app SCENARIO status|check|start|stop``: the scenario's application on this host, by its plugin."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from twinsite.apps import DEFAULT_PLUGINS_DIR, for_scenario
from twinsite.cli.options import dirs
from twinsite.config.store import find
from twinsite.errors import AppError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("app", help="the scenario's application here: status, check, start, stop")
    p.add_argument("scenario")
    p.add_argument("action", choices=["status", "check", "start", "stop"])
    dirs(p, state=False)
    p.add_argument("--plugins-dir", type=Path, default=None, help=f"site plugins (default {DEFAULT_PLUGINS_DIR})")
    p.add_argument("--quick", action="store_true", help="check: leave out what reads a lot (what monitoring runs)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_app)


def _app(args: argparse.Namespace) -> tuple[Any, str]:
    s = find(args.config_dir, args.scenario)
    app = for_scenario(s, args.plugins_dir)
    head = f"{s.name} ({s.application})"
    if args.action in ("start", "stop"):
        was = app.running()
        if args.action == "start":
            app.start()
        else:
            app.stop()
        changed = was != (args.action == "start")
        verb = {"start": "started", "stop": "stopped"}[args.action]
        return {"scenario": s.name, "changed": changed, "running": app.running()}, (
            f"{head}: {verb}" if changed else f"{head}: already {'running' if was else 'stopped'}"
        )
    if args.action == "status":
        running = app.running()
        return {"scenario": s.name, "running": running}, f"{head}: {'running' if running else 'stopped'}"
    ok, results = app.healthy(quick=args.quick)
    lines = [f"{head}: {'healthy' if ok else 'UNHEALTHY'}"] + [
        f"  {'ok  ' if r.ok else 'FAIL'} {r.name} ({r.seconds:.2f} s): {r.output.splitlines()[-1] if r.output else ''}"
        for r in results
    ]
    if not ok:
        failed = [r for r in results if not r.ok]
        raise AppError(
            f"{len(failed)} check(s) failed: " + "; ".join(f"{r.name}: {r.output[-200:]}" for r in failed),
            where=f"scenario {s.name}",
        )
    return {"scenario": s.name, "healthy": ok, "checks": [r.to_dict() for r in results]}, "\n".join(lines)

"""``twinsite app SCENARIO status|check|start|stop``: the scenario's application on this host, by its plugin;
``twinsite probe SCENARIO...``: what a standby's monitoring asks the active host each round (monitor.probe)."""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path
from typing import Any

from twinsite.apps import DEFAULT_PLUGINS_DIR, for_scenario
from twinsite.cli.options import dirs
from twinsite.cli.output import envelope
from twinsite.config.scenario import Scenario
from twinsite.config.store import find
from twinsite.errors import AppError, TwinsiteError
from twinsite.status import collect


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("app", help="the scenario's application here: status, check, start, stop")
    p.add_argument("scenario")
    p.add_argument("action", choices=["status", "check", "start", "stop"])
    dirs(p, state=False)
    p.add_argument("--plugins-dir", type=Path, default=None, help=f"site plugins (default {DEFAULT_PLUGINS_DIR})")
    p.add_argument("--quick", action="store_true", help="check: leave out what reads a lot (what monitoring runs)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_app)
    p = sub.add_parser(
        "probe", help="for monitoring: quick checks of the named scenarios' applications and the status of all"
    )
    p.add_argument("scenarios", nargs="*", metavar="SCENARIO")
    dirs(p)
    p.add_argument("--plugins-dir", type=Path, default=None, help=f"site plugins (default {DEFAULT_PLUGINS_DIR})")
    p.add_argument(
        "--check-timeout", type=float, default=30.0, help="seconds each scenario's checks may take (default 30)"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_probe)


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
    return _check(s, args.plugins_dir, quick=args.quick)


def _check(s: Scenario, plugins_dir: Path | None, *, quick: bool) -> tuple[Any, str]:
    """The application's checks: its answer, or AppError naming the failed ones."""
    head = f"{s.name} ({s.application})"
    ok, results = for_scenario(s, plugins_dir).healthy(quick=quick)
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


def _probe(args: argparse.Namespace) -> tuple[Any, str]:
    """Each named scenario's quick checks, as ``twinsite app S check --json`` would answer them (run side by
    side, each within --check-timeout: one hung check does not hold up the others' answers), and
    ``twinsite status``'s result, in one answer."""
    apps: dict[str, dict[str, Any]] = {}

    def check(name: str) -> None:
        try:
            result, _ = _check(find(args.config_dir, name), args.plugins_dir, quick=True)
            apps[name] = envelope("app check", result=result)
        except TwinsiteError as exc:
            apps[name] = envelope("app check", error=exc)

    names = list(dict.fromkeys(args.scenarios))  # (each once, in the order asked)
    threads = [threading.Thread(target=check, args=(n,), daemon=True) for n in names]
    for t in threads:
        t.start()
    deadline = time.monotonic() + args.check_timeout
    for name, t in zip(names, threads, strict=True):
        t.join(max(0.0, deadline - time.monotonic()))
        if t.is_alive():
            late = AppError(f"the checks gave no answer within {args.check_timeout:g} s", where=f"scenario {name}")
            apps[name] = envelope("app check", error=late)
    answer = {"apps": dict(apps), "status": collect(args.config_dir, args.state_dir)}
    text = [f"{n}: {'healthy' if a['ok'] else a['error']['message']}" for n, a in answer["apps"].items()]
    return answer, "\n".join([*text, f"status: {len(answer['status']['scenarios'])} row(s)"])

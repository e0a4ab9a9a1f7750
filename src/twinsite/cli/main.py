"""Entry point of the ``twinsite`` command."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any

from twinsite import JSON_API, __version__, audit
from twinsite.cli.output import envelope, print_json
from twinsite.errors import TestFailed, TwinsiteError

#: command -> the module (in twinsite.cli) that registers it, in the order of ``twinsite --help``.
COMMANDS = {
    "lab": "lab_cmd",
    "validate": "validate_cmd",
    "schema": "schema_cmd",
    "receive": "receive_cmd",
    "agent": "replication_cmd",
    "status": "status_cmd",
    "verify": "replication_cmd",
    "point-hold": "replication_cmd",
    "digest": "replication_cmd",
    "rewind-points": "cdp_cmd",
    "bookmark": "cdp_cmd",
    "rewind": "cdp_cmd",
    "bundle": "bundle_cmd",
    "install-release": "bundle_cmd",
    "site": "site_cmd",
    "report": "report_cmd",
    "history": "report_cmd",
    "console": "console_cmd",
    "scenario": "scenario_cmd",
    "service": "service_cmd",
    "plan-placement": "vsphere_cmd",
    "fence": "vsphere_cmd",
    "alert": "alert_cmd",
    "events": "alert_cmd",
    "app": "app_cmd",
    "probe": "app_cmd",
    "switchover": "switchover_cmd",
    "switchback": "switchover_cmd",
    "rejoin": "switchover_cmd",
    "role": "switchover_cmd",
    "recover-test": "recovery_cmd",
    "drill-report": "drill_cmd",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser for every command, or with ``command`` only the module that defines it is imported: `twinsite
    receive` starts on every connection and must not wait for the lab's or the configuration's libraries."""
    parser = argparse.ArgumentParser(prog="twinsite", description="Host-based disaster recovery for applications.")
    parser.add_argument("--version", action="version", version=f"twinsite {__version__} (json api {JSON_API})")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    wanted = [COMMANDS[command]] if command in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    for name in wanted:
        importlib.import_module(f"twinsite.cli.{name}").register(sub)
    return parser


def _command_name(args: argparse.Namespace) -> str:
    return " ".join(str(x) for x in (args.command, getattr(args, "lab_command", None)) if x)


#: the commands that change something (twinsite.audit), each recorded unless it only reads or changed nothing
AUDITED = ("switchover", "switchback", "rejoin", "rewind", "bookmark", "recover-test", "scenario")
READ_ONLY = ("dry_run", "check", "history")


def _action(args: argparse.Namespace) -> str:
    """The change as the event log names it: the command and what says which change it was."""
    if args.command == "rewind":
        return "rewind" + (" --resume" if args.resume else f" --to {args.to}")
    if args.command in ("bookmark", "scenario"):
        return f"{args.command} {args.name if args.command == 'bookmark' else args.state}"
    for flag in ("cleanup", "end"):
        if getattr(args, flag, False):
            return f"{args.command} --{flag}"
    if getattr(args, "hold", None):
        return f"{args.command} --hold {args.hold}" + (f" --expose {args.expose}" if args.expose else "")
    return str(args.command)


def _audit(args: argparse.Namespace, result: Any, error: TwinsiteError | None) -> None:
    """Record a change (done or failed) in the host's event log: what, of which scenario, who asked."""
    if args.command not in AUDITED or any(getattr(args, k, False) for k in READ_ONLY):
        return
    if getattr(args, "report", None) is not None or getattr(args, "background", False):
        return  # (a test started in the background is recorded by its own process)
    if error is None and not (isinstance(result, dict) and result.get("changed", True)):
        return
    action = _action(args)
    ref = result.get("id") if isinstance(result, dict) else None
    if isinstance(error, TestFailed):  # (a test that ran and failed: its evidence is the reference)
        ref = error.record.get("id")
    outcome = "done" if error is None else f"failed: {error.message}"
    try:
        audit.record(
            args.state_dir,
            scenario=getattr(args, "scenario", None) or getattr(args, "name", None),
            action=action,
            outcome=outcome,
            ref=ref if isinstance(ref, str) else None,
            automatic=bool(getattr(args, "automatic", False)),
        )
    except OSError as exc:  # (the change is made: not recording it must not turn it into a failure)
        print(f"twinsite {args.command}: the change is not in the event log: {exc}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv[0] if argv else None).parse_args(argv)
    as_json = bool(getattr(args, "json", False))
    name = _command_name(args)
    try:
        result, text = args.handler(args)
    except TwinsiteError as exc:
        _audit(args, None, exc)
        if as_json:
            print_json(envelope(name, error=exc))
        else:
            print(f"twinsite {name}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"twinsite {name}: interrupted", file=sys.stderr)
        return 130
    _audit(args, result, None)
    if as_json:
        print_json(envelope(name, result=result))
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

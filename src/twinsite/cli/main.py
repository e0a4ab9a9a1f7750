"""Entry point of the ``twinsite`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from twinsite import JSON_API, __version__
from twinsite.cli import bundle_cmd, lab_cmd, replication_cmd, scenario_cmd, service_cmd, validate_cmd
from twinsite.cli.output import envelope, print_json
from twinsite.errors import TwinsiteError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="twinsite", description="Host-based disaster recovery for applications.")
    parser.add_argument("--version", action="version", version=f"twinsite {__version__} (json api {JSON_API})")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    lab_cmd.register(sub)
    validate_cmd.register(sub)
    replication_cmd.register(sub)
    bundle_cmd.register(sub)
    scenario_cmd.register(sub)
    service_cmd.register(sub)
    return parser


def _command_name(args: argparse.Namespace) -> str:
    return " ".join(str(x) for x in (args.command, getattr(args, "lab_command", None)) if x)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    as_json = bool(getattr(args, "json", False))
    name = _command_name(args)
    try:
        result, text = args.handler(args)
    except TwinsiteError as exc:
        if as_json:
            print_json(envelope(name, error=exc))
        else:
            print(f"twinsite {name}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"twinsite {name}: interrupted", file=sys.stderr)
        return 130
    if as_json:
        print_json(envelope(name, result=result))
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

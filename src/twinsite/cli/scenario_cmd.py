"""``twinsite scenario NAME --state S [--definition-stdin] [--check]``: declare a scenario on this host."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import yaml

from twinsite.cli.options import dirs
from twinsite.config import store
from twinsite.errors import ConfigError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("scenario", help="create, change, stop or remove a scenario on this host (idempotent)")
    p.add_argument("name")
    p.add_argument("--state", choices=store.STATES, default="present")
    p.add_argument("--definition-stdin", action="store_true", help="read the definition (JSON or YAML) on stdin")
    p.add_argument("--check", action="store_true", help="report what would change, change nothing")
    dirs(p)  # (the state directory's event log records the change: twinsite.audit)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_scenario)


def _scenario(args: argparse.Namespace) -> tuple[Any, str]:
    definition = None
    if args.definition_stdin:
        text = sys.stdin.read()
        try:
            definition = json.loads(text)
        except ValueError:
            definition = yaml.safe_load(text)
        if not isinstance(definition, dict):
            raise ConfigError("the definition on stdin is not a mapping")
    result = store.apply(args.config_dir, args.name, definition, args.state, check=args.check)
    verb = ("would change" if args.check else "changed") if result.changed else "unchanged"
    return result.to_json(), f"scenario {args.name}: {verb} ({result.before['state']} -> {result.after['state']})"

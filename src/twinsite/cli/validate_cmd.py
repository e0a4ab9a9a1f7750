"""``twinsite validate FILE...``: check scenario files against the schema, every error at once (for CI)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from twinsite.config.loader import validate_file, validate_text
from twinsite.errors import ConfigError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("validate", help="check scenario files (YAML) against the scenario schema")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE", help="YAML files; - reads standard input")
    p.add_argument("--json", action="store_true", help="print the JSON contract instead of text")
    p.set_defaults(handler=_validate)


def _validate(args: argparse.Namespace) -> tuple[Any, str]:
    problems = []
    names: list[str] = []
    for f in args.files:
        docs, found = validate_text(sys.stdin.read(), "<stdin>") if str(f) == "-" else validate_file(f)
        problems.extend(found)
        names.extend(str(d.get("name")) for d in docs)
    if problems:
        raise ConfigError(
            f"{len(problems)} problem(s):\n" + "\n".join(f"  {p}" for p in problems),
            hint="fix them; nothing was changed",
        )
    return {"files": [str(f) for f in args.files], "scenarios": names}, (
        f"ok: {len(names)} scenario(s) in {len(args.files)} file(s): {', '.join(map(str, names))}"
    )

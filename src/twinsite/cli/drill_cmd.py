"""``twinsite drill-report FILE --out-dir DIR``: the drill's report (twinsite.drill) as JSON and Markdown."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from twinsite import drill
from twinsite.errors import ConfigError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("drill-report", help="write and print the report of a drill from its recorded phases")
    p.add_argument("file", type=Path, metavar="FILE", help="the phases as JSON (playbooks/drill.yml); - reads stdin")
    p.add_argument("--out-dir", type=Path, required=True, help="where drill-<id>.json and drill-<id>.md go")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_report)


def _report(args: argparse.Namespace) -> tuple[Any, str]:
    where = "<stdin>" if str(args.file) == "-" else str(args.file)
    try:
        doc = json.loads(sys.stdin.read() if where == "<stdin>" else args.file.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the drill's phases: {exc}", where=where) from exc
    report = drill.build(doc)
    paths = drill.write(report, args.out_dir)
    return {**report, "files": paths}, drill.text(report) + f"\n  written: {paths['json']}, {paths['markdown']}"

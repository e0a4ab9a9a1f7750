"""``twinsite schema [--reference]``: the scenario schema (JSON Schema, e.g. for an editor), or its reference."""

from __future__ import annotations

import argparse
import json
from typing import Any

from twinsite.config import reference
from twinsite.config.loader import schema


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("schema", help="print the scenario schema (JSON Schema), or its reference in Markdown")
    p.add_argument(
        "--reference",
        action="store_true",
        help=f"the reference of every key, in Markdown (docs/scenario-reference.md: {reference.COMMAND})",
    )
    p.add_argument("--json", action="store_true", help="print the JSON contract instead of text")
    p.set_defaults(handler=_schema)


def _schema(args: argparse.Namespace) -> tuple[Any, str]:
    if args.reference:
        text = reference.markdown()
        return {"format": "markdown", "text": text}, text.removesuffix("\n")
    return schema(), json.dumps(schema(), indent=2, ensure_ascii=False)

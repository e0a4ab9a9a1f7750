"""``twinsite bundle``: build the tarball hosts install twinsite from (no package index needed on hosts)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from twinsite import bundle


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("bundle", help="build the host bundle (twinsite + dependencies) for the agent role")
    p.add_argument("--out", type=Path, default=Path("build"), help="directory for the bundle (default: build/)")
    p.add_argument("--source", type=Path, default=None, help="project checkout (default: the one running)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_bundle)


def _bundle(args: argparse.Namespace) -> tuple[Any, str]:
    path = bundle.build(args.out, args.source)
    return {"bundle": str(path.resolve()), "name": path.name}, str(path.resolve())

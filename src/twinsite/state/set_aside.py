"""``set-aside/<run>/manifest.json``: what a switch-back or rejoin copied aside before this host became a
standby (every path that differed from the active host: why, its size and hash, whether it was written here
and never replicated), with a summary. Written last: a manifest means the copy beside it is complete."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from twinsite.durable import write_json

MANIFEST = "manifest.json"


def read(directory: Path) -> dict[str, Any] | None:
    """The manifest of a finished set-aside in ``directory`` (None: none, or not finished)."""
    try:
        data: dict[str, Any] = json.loads((directory / MANIFEST).read_text())
    except FileNotFoundError:
        return None
    return data


def write(directory: Path, manifest: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    write_json(directory / MANIFEST, manifest)

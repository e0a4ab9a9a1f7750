"""``set-aside/<run>/manifest.json``: what a switch-back or rejoin copied aside before this host became a
standby (every path that differed from the active host: why, its size and hash, whether it was written here
and never replicated), with a summary. Written last: a manifest means the copy beside it is complete."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twinsite.durable import read_json, write_json

MANIFEST = "manifest.json"


def read(directory: Path) -> dict[str, Any] | None:
    """The manifest of a finished set-aside in ``directory`` (None: none, or not finished)."""
    data: dict[str, Any] | None = read_json(directory / MANIFEST, what="the set-aside manifest")
    return data


def write(directory: Path, manifest: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    write_json(directory / MANIFEST, manifest)

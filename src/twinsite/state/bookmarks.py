"""``bookmarks.json``: names for points of a replica ("before upgrade 4.2"), kept beside its rewind log.

``bookmarks.json`` in the receiver's state directory maps each name to the point it marks (the applied seq
when it was made, and that point's source time) and when it was made. A bookmark whose point has been
pruned from the rewind log is still listed, marked unreachable.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

from twinsite.durable import read_json, write_json
from twinsite.errors import ConfigError

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}$")


def load(path: Path) -> dict[str, dict[str, Any]]:
    data: dict[str, dict[str, Any]] | None = read_json(path, what="the bookmarks")
    return data or {}


def check_name(name: str) -> None:
    if not NAME.match(name) or name.isdigit():
        raise ConfigError(
            f"bad bookmark name {name!r}",
            hint="1-128 characters: letters, digits and . _ : @ + -, starting with a letter or digit, not all digits "
            "(a number is a seq)",
        )


def add(path: Path, name: str, seq: int, ts: float) -> tuple[bool, dict[str, Any]]:
    """Mark point ``seq`` as ``name``. Returns (created, bookmark); an existing name is left as it is."""
    check_name(name)
    marks = load(path)
    if name in marks:
        return False, marks[name]
    marks[name] = {"seq": seq, "ts": ts, "created_at": time.time()}
    write_json(path, marks)
    return True, marks[name]


def set_aside(path: Path, to: Path) -> None:
    """Keep the bookmarks of an epoch that ended under another name (their seqs are that epoch's numbering)."""
    if path.exists():
        os.replace(path, to)

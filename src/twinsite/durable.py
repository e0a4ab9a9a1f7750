"""Small state files made durable: written to a temporary file, fsynced, renamed over, directory fsynced.

One place for what every piece of state that must survive ``kill -9`` or a power cut does (run state,
roles, bookmarks, the rewind position): after :func:`write_json` returns, a reader sees the new content
or, had the machine died during the call, the old one; never a mix, never an empty file.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")  # (threads write one file too)
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def write_json(path: Path, data: Any, *, indent: int | None = 1) -> None:
    write_text(path, json.dumps(data, indent=indent, sort_keys=True))


def remove(path: Path) -> None:
    """Remove a state file durably (quiet when it is not there)."""
    path.unlink(missing_ok=True)
    if path.parent.exists():
        fsync_dir(path.parent)

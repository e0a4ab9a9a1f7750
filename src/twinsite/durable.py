"""Small state files made durable: written to a temporary file, fsynced, renamed over, directory fsynced;
and read back, with a clear error when one is damaged.

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

from twinsite.errors import TwinsiteError


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text(path: Path, text: str, *, private: bool = False) -> None:
    """``path`` holds ``text``, durably (fsynced, atomically replaced, directory fsynced); with ``private``
    readable by its owner only, whatever the umask."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")  # (threads write one file too)
    with open(tmp, "w", opener=private_opener if private else None) as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def write_json(path: Path, data: Any, *, indent: int | None = 1, private: bool = False) -> None:
    write_text(path, json.dumps(data, indent=indent, sort_keys=True), private=private)


def private_opener(path: str, flags: int) -> int:
    """An ``open()`` opener creating the file as 0600 (and leaving no wider mode on a leftover)."""
    fd = os.open(path, flags, 0o600)
    os.fchmod(fd, 0o600)
    return fd


def read_json(path: Path, *, what: str, hint: str | None = None, error: type[TwinsiteError] = TwinsiteError) -> Any:
    """The JSON in ``path``, None when there is no such file; ``error`` naming the file (``what`` it is, and
    ``hint``: what to do) when it is not JSON."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise error(f"{what} is not readable: {exc}", where=str(path), hint=hint) from exc


def remove(path: Path) -> None:
    """Remove a state file durably (quiet when it is not there)."""
    path.unlink(missing_ok=True)
    if path.parent.exists():
        fsync_dir(path.parent)

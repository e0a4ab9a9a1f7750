"""``recovery/end``: a request to end the running assured-recovery test (text: why), written by whoever
needs the replica back (a switchover, an operator) and read by the test between its steps."""

from __future__ import annotations

from pathlib import Path

from twinsite.durable import write_text


def request(path: Path, why: str) -> None:
    write_text(path, why + "\n")


def read(path: Path) -> str | None:
    """Why the test is asked to end; None when it is not."""
    try:
        return path.read_text().strip() or "asked to end"
    except FileNotFoundError:
        return None


def clear(path: Path) -> None:
    path.unlink(missing_ok=True)

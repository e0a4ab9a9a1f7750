"""``session``: the number of the newest ``twinsite receive`` session of a root, as text.

A session takes the next number when it begins (holding the apply lock), and applies nothing once the number
stored is no longer its own. A receiver whose sender died (the agent killed, the link cut) may still be
reading what was sent before, while the restarted sender's new session applies the same seqs and more: from
its stale position the old session would write older bytes over newer ones already acknowledged.
"""

from __future__ import annotations

from pathlib import Path

from twinsite.durable import write_text


def read(path: Path) -> int:
    """The newest session's number; 0 before the first (or unreadable: the next one begins at 1)."""
    try:
        return int(path.read_text())
    except (FileNotFoundError, ValueError):
        return 0


def begin(path: Path) -> int:
    """A new session's number (the caller holds the apply lock): every older session stops applying."""
    number = read(path) + 1
    write_text(path, f"{number}\n")
    return number

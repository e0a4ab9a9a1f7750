"""``heard``: when a receiver last heard its sender (a batch or a keep-alive), as text, Unix seconds.

Written at most once a second. An unplanned switchover takes the old active host to have failed after it
was last heard: its RPO runs from the last change applied to that moment (docs/switchover.md).
"""

from __future__ import annotations

from pathlib import Path

from twinsite.durable import write_text


def read(path: Path) -> float:
    """When the sender was last heard; 0.0 when never (or not recorded, or unreadable)."""
    try:
        return float(path.read_text())
    except (FileNotFoundError, ValueError):
        return 0.0


def write(path: Path, when: float) -> None:
    write_text(path, f"{when:.3f}\n")

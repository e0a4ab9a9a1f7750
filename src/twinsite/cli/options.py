"""Options many commands share: where the host keeps its scenarios and its state."""

from __future__ import annotations

import argparse
from pathlib import Path

from twinsite.engine.agent import DEFAULT_CONFIG_DIR, DEFAULT_STATE_DIR


def dirs(p: argparse.ArgumentParser, *, state: bool = True) -> None:
    """--config-dir (and with ``state`` --state-dir), with the host's defaults."""
    p.add_argument(
        "--config-dir", type=Path, default=DEFAULT_CONFIG_DIR, help=f"scenarios (default {DEFAULT_CONFIG_DIR})"
    )
    if state:
        p.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR, help=f"state (default {DEFAULT_STATE_DIR})")

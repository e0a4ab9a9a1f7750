"""Options many commands share: where the host keeps its scenarios and its state."""

from __future__ import annotations

import argparse
from pathlib import Path

from twinsite.config.store import DEFAULT_CONFIG_DIR
from twinsite.state.layout import DEFAULT_STATE_DIR


def dirs(p: argparse.ArgumentParser, *, state: bool = True) -> None:
    """--config-dir (and with ``state`` --state-dir), with the host's defaults."""
    p.add_argument(
        "--config-dir", type=Path, default=DEFAULT_CONFIG_DIR, help=f"scenarios (default {DEFAULT_CONFIG_DIR})"
    )
    if state:
        p.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR, help=f"state (default {DEFAULT_STATE_DIR})")


def metrics(p: argparse.ArgumentParser) -> None:
    """The agent's metrics (agent.metrics), both off unless given."""
    p.add_argument(
        "--metrics-listen",
        metavar="ADDR:PORT",
        help="serve Prometheus metrics at http://ADDR:PORT/metrics; a loopback address only (127.0.0.1:9810)",
    )
    p.add_argument(
        "--metrics-textfile",
        metavar="DIR",
        type=Path,
        help="write DIR/twinsite.prom for node-exporter's textfile collector (atomically, every 15 s)",
    )


def metrics_argv(args: argparse.Namespace) -> list[str]:
    """The metrics options given, as arguments to pass on to the agent (the supervisor starts it)."""
    out: list[str] = []
    if args.metrics_listen:
        out += ["--metrics-listen", args.metrics_listen]
    if args.metrics_textfile:
        out += ["--metrics-textfile", str(args.metrics_textfile)]
    return out

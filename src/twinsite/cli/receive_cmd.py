"""``twinsite receive``: the standby's end of a replication link, started by the sender over SSH.

Kept apart from the other commands so that it imports only what applying needs: the sender waits for it
to start on every connection.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from twinsite.engine import receiver
from twinsite.state.layout import ReceiverState


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("receive", help="(run by the sender over SSH) apply a replication stream on stdin")
    p.add_argument("--root", type=Path, required=True)
    p.add_argument("--state", type=Path, required=True)
    p.set_defaults(handler=_receive, raw=True)


def _receive(args: argparse.Namespace) -> tuple[Any, str]:
    raise SystemExit(receiver.run(args.root, ReceiverState(args.state)))

"""``twinsite receive``: the standby's end of a replication link, started by the sender over SSH.

Kept apart from the other commands so that it imports only what applying needs: the sender waits for it
to start on every connection.
"""

from __future__ import annotations

import argparse
from typing import Any

from twinsite.cli import options
from twinsite.engine import receiver


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "receive",
        allow_abbrev=False,  # (--state is not --state-dir)
        help="(the replication key's forced command) apply a replication stream on stdin; the stream names a "
        "scenario and a root, everything else comes from this host's own declaration",
    )
    options.dirs(p)
    p.add_argument(
        "--peer",
        help="the host whose key runs this (the forced command names it): a stream from it for a scenario it is "
        "not a host of, or that says it comes from another host, is refused",
    )
    p.set_defaults(handler=_receive, raw=True)


def _receive(args: argparse.Namespace) -> tuple[Any, str]:
    raise SystemExit(receiver.run(args.config_dir, args.state_dir, peer=args.peer))

"""``twinsite alert SCENARIO --test``: send a test alert through every channel of a scenario, and say
which delivered (exit 17 when one did not); ``twinsite events``: the event log."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path
from typing import Any

from twinsite.alerts import Alert
from twinsite.alerts.channels import EventLog
from twinsite.alerts.dispatch import Alerter, channels_from
from twinsite.cli.options import dirs
from twinsite.config.store import find
from twinsite.errors import AlertError
from twinsite.state.layout import DEFAULT_STATE_DIR, HostState


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("alert", help="send a test alert through a scenario's alert channels")
    p.add_argument("scenario")
    p.add_argument("--test", action="store_true", required=True, help="a test alert (the only kind sent by hand)")
    dirs(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_alert)
    e = sub.add_parser("events", help="the event log: alerts and what happened, newest last")
    e.add_argument("--scenario", help="only this scenario's events")
    e.add_argument("--last", type=int, default=50, help="how many (default 50)")
    e.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    e.add_argument("--json", action="store_true")
    e.set_defaults(handler=_events)


def _alert(args: argparse.Namespace) -> tuple[Any, str]:
    s = find(args.config_dir, args.scenario)
    alert = Alert(
        kind="test",
        severity="info",
        scenario=s.name,
        host=socket.gethostname(),
        what="a test alert (twinsite alert --test): nothing is wrong",
        action="nothing; this checks that alerts reach you",
    )
    deliveries = Alerter(args.state_dir, channels_from(s.alerts)).send(alert)
    result = {"alert": alert.to_dict(), "deliveries": [d.__dict__ for d in deliveries]}
    lines = [f"{s.name}: test alert"] + [
        f"  {d.channel}: {'delivered' if d.ok else 'FAILED: ' + str(d.error)}" for d in deliveries
    ]
    failed = [d for d in deliveries if not d.ok]
    if failed:
        raise AlertError(
            f"{len(failed)} of {len(deliveries)} channel(s) failed: "
            + "; ".join(f"{d.channel}: {d.error}" for d in failed),
            where=f"scenario {s.name}",
            hint="fix the channel's settings in the scenario (the failures are in the event log too)",
        )
    return result, "\n".join(lines)


def _events(args: argparse.Namespace) -> tuple[Any, str]:
    path = HostState(args.state_dir).events
    events = [e for e in EventLog(path).read() if args.scenario is None or e.get("scenario") == args.scenario]
    events = events[-args.last :] if args.last > 0 else events
    lines = [
        f"{e.get('at', '?')} {e.get('event')} {e.get('severity', '')} {e.get('scenario', '')} "
        f"{e.get('host', '')} {e.get('what') or e.get('error') or ''}".rstrip()
        for e in events
    ]
    return {"file": str(path), "events": events}, "\n".join(lines) or f"no events in {path}"

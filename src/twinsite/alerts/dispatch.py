"""Send one alert everywhere it should go: the event log first, then every channel of the scenario."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twinsite.alerts import Alert
from twinsite.alerts.channels import Channel, Email, EventLog, Syslog, Webhook
from twinsite.errors import AlertError
from twinsite.state.layout import HostState


@dataclass(frozen=True)
class Delivery:
    channel: str
    ok: bool
    error: str | None = None


def channels_from(specs: Sequence[dict[str, Any]]) -> list[Channel]:
    """Channels from a scenario's ``alerts`` list (already checked by the schema)."""
    out: list[Channel] = []
    for s in specs:
        kind = s["type"]
        if kind == "syslog":
            out.append(Syslog(address=s.get("address", "/dev/log"), facility=s.get("facility", "daemon")))
        elif kind == "email":
            out.append(
                Email(
                    smtp_host=s["smtp_host"],
                    smtp_port=int(s.get("smtp_port", 25)),
                    to=tuple(s["to"]),
                    sender=s["from"],
                    starttls=bool(s.get("starttls", False)),
                    username=s.get("username"),
                    password_file=s.get("password_file"),
                    timeout=float(s.get("timeout", 10)),
                    insecure_login=bool(s.get("insecure_login", False)),
                )
            )
        elif kind == "webhook":
            out.append(
                Webhook(
                    url=s.get("url"),
                    headers=tuple(sorted((str(k), str(v)) for k, v in s.get("headers", {}).items())),
                    timeout=float(s.get("timeout", 5)),
                    ca_file=s.get("ca_file"),
                    url_file=s.get("url_file"),
                    headers_file=s.get("headers_file"),
                )
            )
    return out


class Alerter:
    """Writes every alert to the event log, then tries each channel; a failed channel is logged as an
    event of its own and reported, never raised, so that one dead mail server hides nothing else."""

    def __init__(self, state_dir: Path, channels: Sequence[Channel]) -> None:
        self.eventlog = EventLog(HostState(state_dir).events)
        self.channels = list(channels)

    def send(self, alert: Alert) -> list[Delivery]:
        out = [self._one(self.eventlog, alert)]
        for ch in self.channels:
            d = self._one(ch, alert)
            out.append(d)
            if not d.ok:
                with contextlib.suppress(AlertError):  # (the event log's own failure is already in ``out``)
                    self.eventlog.append(
                        {
                            "event": "alert-delivery-failed",
                            "channel": ch.name,
                            "error": d.error,
                            "scenario": alert.scenario,
                            "kind": alert.kind,
                            "at": alert.to_dict()["at"],
                        }
                    )
        return out

    @staticmethod
    def _one(ch: Channel, alert: Alert) -> Delivery:
        try:
            ch.send(alert)
        except AlertError as exc:
            return Delivery(ch.name, False, str(exc))
        except Exception as exc:  # a channel's own bug or an unforeseen error: the next channel still gets it
            return Delivery(ch.name, False, f"{type(exc).__name__}: {exc}")
        return Delivery(ch.name, True)

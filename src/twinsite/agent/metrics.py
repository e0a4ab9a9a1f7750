"""Prometheus metrics of a host's scenarios, from the same view as ``twinsite status`` (twinsite.status).

The agent exports them in the text exposition format (version 0.0.4) two ways, each off unless asked for
(docs/status.md):

* ``--metrics-listen 127.0.0.1:9810``: an HTTP endpoint (``GET /metrics``) bound to a loopback address
  only; any other address is refused, since the metrics name hosts, paths and errors and have no
  authentication (expose them through a local Prometheus agent or a reverse proxy);
* ``--metrics-textfile DIR``: ``DIR/twinsite.prom`` for node-exporter's textfile collector, rewritten
  every ``every`` seconds through a temporary file renamed over it (twinsite.durable), so the collector
  never reads half a file. A clean stop leaves ``twinsite_agent_up 0`` there.

Rows are labelled ``scenario``, ``root`` and ``replica`` (on the active host the standby the row is about,
on a standby this host); facts of a whole scenario (the last test, switchovers, alerts) by ``scenario``.
Only the standard library: hosts run from a bundle without prometheus_client.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from twinsite import __version__
from twinsite.durable import write_text
from twinsite.errors import ConfigError
from twinsite.status import collect

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
TEXTFILE = "twinsite.prom"
log = logging.getLogger(__name__)

# name -> (type, help); the order of the exposition
METRICS: dict[str, tuple[str, str]] = {
    "twinsite_agent_up": ("gauge", "1 while the agent runs (0 in a textfile left by a clean stop)"),
    "twinsite_agent_info": ("gauge", "The agent's host and version (always 1)"),
    "twinsite_status_timestamp_seconds": ("gauge", "When these figures were read (Unix time): a textfile's age"),
    "twinsite_replication_info": ("gauge", "A row's role and state as labels (always 1)"),
    "twinsite_lag_seconds": ("gauge", "Age of the oldest change not yet durable on the standby (active host)"),
    "twinsite_backlog_bytes": ("gauge", "Journal bytes waiting for the standby's acknowledgement (active host)"),
    "twinsite_planned_seq": ("gauge", "The newest seq planned (active host)"),
    "twinsite_acked_seq": ("gauge", "The newest seq the standby acknowledged as durably applied (active host)"),
    "twinsite_applied_seq": ("gauge", "The newest seq durably applied here (standby)"),
    "twinsite_sync_bytes_total": ("gauge", "Bytes of the root the current (or the last) sync compares (active host)"),
    "twinsite_sync_bytes_done": ("gauge", "Bytes of it the standby acknowledged (active host)"),
    "twinsite_rewind_window_seconds": ("gauge", "Source time between the oldest and the newest rewind point (CDP)"),
    "twinsite_rewind_oldest_timestamp_seconds": ("gauge", "Source time of the oldest rewind point (CDP)"),
    "twinsite_bookmarks": ("gauge", "Bookmarks kept of the replica (CDP)"),
    "twinsite_recovery_test_passed": ("gauge", "1 when the newest assured-recovery test here passed, else 0"),
    "twinsite_recovery_test_timestamp_seconds": ("gauge", "When the newest assured-recovery test here ended"),
    "twinsite_recovery_test_data_age_seconds": ("gauge", "How old the data of the newest test was (its RPO)"),
    "twinsite_switchovers_total": ("counter", "Switchovers, failovers and switch-backs: the role's epoch"),
    "twinsite_alerts_open": ("gauge", "Monitoring conditions alerting now"),
    "twinsite_alerts_recent": ("gauge", "Critical and warning alerts of the last 24 hours in the event log"),
}

Sample = tuple[str, dict[str, str], float]


def samples(view: dict[str, Any]) -> list[Sample]:
    """Every sample of a status view (twinsite.status.collect)."""
    out: list[Sample] = [
        ("twinsite_agent_up", {}, 1),
        ("twinsite_agent_info", {"host": view["host"], "version": view["version"]}, 1),
        ("twinsite_status_timestamp_seconds", {}, view["generated_at"]),
    ]
    seen: set[str] = set()
    for r in view["scenarios"]:
        out += _row(r, view["host"])
        if r["scenario"] not in seen:
            seen.add(r["scenario"])
            out += _scenario(r)
    return out


def _row(r: dict[str, Any], host: str) -> list[Sample]:
    labels = {"scenario": r["scenario"], "root": r["root"], "replica": r.get("replica") or host}
    out: list[Sample] = [("twinsite_replication_info", {**labels, "role": r["role"], "state": r["state"]}, 1)]
    if r["role"] == "active":
        out += [(f"twinsite_{k}", labels, r[k]) for k in ("lag_seconds", "backlog_bytes", "planned_seq", "acked_seq")]
        if r.get("sync"):
            out += [(f"twinsite_sync_{k}", labels, r["sync"][k]) for k in ("bytes_total", "bytes_done")]
    else:
        out.append(("twinsite_applied_seq", labels, r["applied_seq"]))
    rw = r.get("rewind")
    if rw:
        out += [
            ("twinsite_rewind_window_seconds", labels, rw["window_seconds"]),
            ("twinsite_bookmarks", labels, rw["bookmarks"]),
        ]
        if rw["oldest_ts"] is not None:
            out.append(("twinsite_rewind_oldest_timestamp_seconds", labels, rw["oldest_ts"]))
    return out


def _scenario(r: dict[str, Any]) -> list[Sample]:
    labels = {"scenario": r["scenario"]}
    out: list[Sample] = [
        ("twinsite_switchovers_total", labels, r["switchovers"]),
        ("twinsite_alerts_open", labels, r["alerts"]["open"]),
        ("twinsite_alerts_recent", labels, r["alerts"]["recent"]),
    ]
    t = r.get("last_test")
    if t:
        out += [
            ("twinsite_recovery_test_passed", labels, 1 if t["result"] == "passed" else 0),
            ("twinsite_recovery_test_timestamp_seconds", labels, t["ended_ts"]),
        ]
        if t["data_age_seconds"] is not None:
            out.append(("twinsite_recovery_test_data_age_seconds", labels, t["data_age_seconds"]))
    return out


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(v: float) -> str:
    return str(int(v)) if isinstance(v, bool | int) else repr(float(v))


def exposition(items: Iterable[Sample]) -> str:
    """The text format 0.0.4: each metric's HELP and TYPE, then its samples."""
    by_name: dict[str, list[Sample]] = {}
    for s in items:
        by_name.setdefault(s[0], []).append(s)
    lines: list[str] = []
    for name, (kind, text) in METRICS.items():
        if name not in by_name:
            continue
        lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
        for _, labels, value in by_name[name]:
            lab = ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items())
            lines.append(f"{name}{{{lab}}} {_number(value)}" if lab else f"{name} {_number(value)}")
    return "\n".join(lines) + "\n"


def render(config_dir: Path, state_dir: Path, host: str | None = None) -> str:
    return exposition(samples(collect(config_dir, state_dir, host=host)))


def loopback(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) as an address to bind, refusing anything but loopback."""
    host, sep, port = listen.rpartition(":")
    host = host.strip("[]") if host.startswith("[") else host
    host = "127.0.0.1" if host == "localhost" else host
    try:
        addr = ipaddress.ip_address(host)
        number = int(port)
    except ValueError:
        addr, number = None, -1
    if not sep or addr is None or not 0 <= number <= 65535:
        raise ConfigError(
            f"--metrics-listen {listen!r} is not HOST:PORT with an IP address",
            hint="for example 127.0.0.1:9810 or [::1]:9810",
        )
    if not addr.is_loopback:
        raise ConfigError(
            f"--metrics-listen {listen!r}: {host} is not a loopback address; the metrics have no authentication "
            "and name hosts, paths and errors",
            hint="listen on 127.0.0.1 (or ::1) and let a local Prometheus agent, node-exporter's textfile "
            "(--metrics-textfile) or a reverse proxy with authentication publish them",
        )
    return str(addr), number


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    page: Callable[[], str]


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] not in ("/metrics", "/"):
            self.send_error(404, "only /metrics is here")
            return
        try:
            body, code, kind = self.server.page().encode(), 200, CONTENT_TYPE
        except Exception as exc:  # a scrape must say what failed, and the endpoint live on
            body, code, kind = f"twinsite: cannot read the status: {exc}\n".encode(), 500, "text/plain; charset=utf-8"
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # (http.server's signature)
        pass  # (a scrape every 15 s is not news)


@dataclass
class Exporter:
    """The agent's metrics: the loopback endpoint and/or the textfile, both off by default."""

    config_dir: Path
    state_dir: Path
    host: str | None = None
    listen: str | None = None
    textfile_dir: Path | None = None
    every: float = 15.0
    address: tuple[str, int] | None = field(default=None, init=False)  # where the endpoint listens
    _server: _Server | None = field(default=None, init=False, repr=False)
    _written: float = field(default=0.0, init=False, repr=False)

    def start(self) -> None:
        """Check the settings and bind the endpoint: a wrong address or directory stops the agent at once (a
        configuration error); an address it cannot bind (in use) is reported and the agent runs without it."""
        if self.textfile_dir is not None and not self.textfile_dir.is_dir():
            raise ConfigError(
                f"--metrics-textfile {self.textfile_dir}: no such directory",
                hint="give node-exporter's --collector.textfile.directory (it must exist)",
            )
        if self.listen is None:
            return
        bind = loopback(self.listen)
        try:
            self._server = (_Server6 if ":" in bind[0] else _Server)(bind, _Handler)
        except OSError as exc:  # (a port in use: the agent goes on replicating, without the endpoint)
            log.warning("--metrics-listen %s: cannot listen: %s", self.listen, exc.strerror)
            return
        self._server.page = lambda: render(self.config_dir, self.state_dir, self.host)
        self.address = self._server.server_address[:2]  # type: ignore[assignment]
        threading.Thread(target=self._server.serve_forever, name="metrics", daemon=True).start()

    def tick(self, now: float | None = None) -> None:
        """Rewrite the textfile when ``every`` seconds have passed since the last time."""
        now = time.monotonic() if now is None else now
        if self.textfile_dir is not None and (not self._written or now - self._written >= self.every):
            self._written = now
            write_text(self.textfile_dir / TEXTFILE, render(self.config_dir, self.state_dir, self.host))

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self.textfile_dir is not None:
            info = {"host": self.host or "", "version": __version__}
            down = [("twinsite_agent_up", {}, 0), ("twinsite_agent_info", info, 1)]
            write_text(
                self.textfile_dir / TEXTFILE,
                exposition([*down, ("twinsite_status_timestamp_seconds", {}, time.time())]),
            )

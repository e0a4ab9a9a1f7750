"""``twinsite console``: a read-only web console of the whole site, served from the controller.

**What it shows.** Every ``refresh`` seconds it asks every host of the inventory, at once and each within a
timeout, for its status and its recent history (``twinsite status``, ``twinsite history``: the same as
``twinsite site status`` and ``twinsite report``), and every ``report_every`` seconds for the period's history;
the pages (site.pages) are rendered from the latest answers: the overview, a page per scenario, the switchovers
and tests, the report, and each switchover's report or test's evidence (fetched from its host when asked for).
Nothing on a page changes anything: each shows the command that does what it describes.

**Who may see it.** By default it listens on 127.0.0.1 only, without a login: whoever can reach it is on the
controller already (SSH port forwarding brings it to a laptop). Any other address needs TLS (``--tls-cert``,
``--tls-key``) and a users file (``--users``): HTTP Basic authentication over TLS, against scrypt hashes. Basic,
because the console is read-only: no form, cookie or session to protect from cross-site requests, nothing to
store on the server, and every browser, curl and monitoring probe speaks it; TLS keeps the password off the
wire, and a wrong password costs a second. ``twinsite console --users FILE --set-password NAME`` adds a user.

**What a page may load.** Only itself: the style is inline, the charts are inline SVG, there is no script, and
the Content-Security-Policy header forbids every other source, so a page works without internet access and
makes no request outside the console.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import logging
import os
import secrets
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from twinsite.errors import ConfigError, TwinsiteError
from twinsite.plans.hosts import Hosts
from twinsite.site import html, pages
from twinsite.site.report import gather
from twinsite.site.status import ask
from twinsite.site.status import merge as merge_status

log = logging.getLogger(__name__)

HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'none'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


# -- users ------------------------------------------------------------------------------------------------------
SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **SCRYPT, dklen=32)
    return f"scrypt${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def check_password(password: str, stored: str) -> bool:
    try:
        kind, salt, digest = stored.split("$")
        ours = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), **SCRYPT, dklen=32)
    except (ValueError, TypeError):
        return False
    return kind == "scrypt" and hmac.compare_digest(ours, base64.b64decode(digest))


def read_users(path: Path) -> dict[str, str]:
    """``NAME:scrypt$SALT$HASH`` lines; a file others can read is refused (it holds the hashes)."""
    try:
        if path.stat().st_mode & 0o077:
            raise ConfigError(f"--users {path}: others can read it", hint=f"chmod 600 {path}")
        text = path.read_text()
    except FileNotFoundError as exc:
        raise ConfigError(
            f"--users {path}: no such file", hint=f"twinsite console --users {path} --set-password NAME"
        ) from exc
    users = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        name, sep, stored = line.partition(":")
        if not sep or not name or not stored.startswith("scrypt$"):
            raise ConfigError(f"--users {path}, line {n}: not NAME:scrypt$...", where=f"{path}:{n}")
        users[name] = stored
    return users


def set_password(path: Path, name: str, password: str) -> bool:
    """Add or replace ``name``'s password (the file 0600); True when the user is new."""
    if not name or ":" in name or any(c.isspace() for c in name):
        raise ConfigError(f"{name!r} is not a user name (no ':' or spaces)")
    if len(password) < 12:
        raise ConfigError("the password is shorter than 12 characters")
    users = read_users(path) if path.exists() else {}
    new = name not in users
    users[name] = hash_password(password)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("".join(f"{n}:{h}\n" for n, h in sorted(users.items())))
    os.replace(tmp, path)
    return new


# -- where it listens --------------------------------------------------------------------------------------------
def address(listen: str) -> tuple[str, int, bool]:
    """``HOST:PORT`` as (address, port, is loopback)."""
    host, sep, port = listen.rpartition(":")
    host = host.strip("[]")
    host = "127.0.0.1" if host == "localhost" else host
    try:
        addr, number = ipaddress.ip_address(host), int(port)
    except ValueError:
        addr, number = None, -1
    if not sep or addr is None or not 0 <= number <= 65535:
        raise ConfigError(f"--listen {listen!r} is not HOST:PORT with an IP address", hint="for example 127.0.0.1:8470")
    return str(addr), number, addr.is_loopback


# -- what it serves ----------------------------------------------------------------------------------------------
@dataclass
class Console:
    """The collected answers and the pages made from them."""

    hosts: Hosts
    names: Sequence[str]
    declared: Sequence[dict[str, Any]]
    inventory: str
    timeout: float = 10.0
    refresh: float = 15.0
    recent_seconds: float = 6 * 3600.0
    period_seconds: float = 30 * 86400.0
    report_every: float = 300.0
    snap: dict[str, Any] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _reported: float = 0.0

    def collect(self) -> None:
        """One round: the status and recent history of every host; the period's history when it is due."""
        now = time.time()
        status = merge_status(ask(self.hosts, self.names, timeout=self.timeout), self.declared, timeout=self.timeout)
        recent = self._history(now, self.recent_seconds, buckets=360)
        month = None
        if not self._reported or now - self._reported >= self.report_every:
            month = self._history(now, self.period_seconds, buckets=240)
            self._reported = now
        self.snap = {**self.snap, "status": status, "recent": recent, **({"month": month} if month else {})}

    def _history(self, now: float, seconds: float, *, buckets: int) -> dict[str, Any]:
        return gather(
            self.hosts, self.names, self.declared, seconds=seconds, timeout=self.timeout, buckets=buckets, now=now
        )

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self.collect()
            except (TwinsiteError, OSError) as exc:  # (a round that failed; the pages keep the last answers)
                log.warning("console: hosts not asked: %s", exc)
            self._stop.wait(self.refresh)

    def stop(self) -> None:
        self._stop.set()

    def page(self, path: str) -> tuple[int, str]:
        parts = [urllib.parse.unquote(p) for p in path.split("?", 1)[0].strip("/").split("/")] if path != "/" else []
        snap = self.snap
        if not parts:
            return 200, pages.overview(snap, self.inventory)
        if parts == ["history"]:
            return 200, pages.history(snap)
        if parts == ["report"]:
            return 200, pages.report(snap, self.inventory)
        if len(parts) == 2 and parts[0] == "scenario":
            found = pages.scenario(snap, parts[1], self.inventory)
            if found is not None:
                return 200, found
        if len(parts) == 5 and parts[0] == "run" and parts[3] in ("switchover", "test"):
            return 200, self.run_page(*parts[1:])
        return 404, html.page("not found", f"<p>{html.e(path)} is not a page of the console</p>", nav=pages.NAV)

    def run_page(self, host: str, name: str, kind: str, run_id: str) -> str:
        known = {  # (only a run the console has seen: no other id, host or scenario reaches a host)
            (x["scenario"], o["host"], o["id"])
            for x in (self.snap.get("month") or {}).get("scenarios", [])
            for o in (x["switchovers"] if kind == "switchover" else x["tests"]["list"])
        }
        if (name, host, run_id) not in known:
            return pages.run(kind, host, name, run_id, None, f"no {kind} {run_id} of {name} on {host} in the period")
        cli = ["switchover" if kind == "switchover" else "recover-test", name, "--report", run_id]
        try:
            return pages.run(kind, host, name, run_id, self.hosts.twinsite(host, cli, timeout=self.timeout), None)
        except TwinsiteError as exc:
            return pages.run(kind, host, name, run_id, None, exc.message)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    console: Console
    users: dict[str, str] | None

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection that failed (plain HTTP to the TLS port, a client gone): one line, not a traceback."""
        log.warning("console: a connection from %s failed", client_address[0], exc_info=False)


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "twinsite-console"
    sys_version = ""
    timeout = 30  # (seconds a connection may sit idle: a slow client holds a thread that long at most)

    def do_GET(self) -> None:
        if not self._allowed():
            return
        try:
            code, body = self.server.console.page(self.path)
        except Exception as exc:  # (a page that cannot be made says why; the console lives on)
            log.exception("console: %s", self.path)
            code, body = 500, html.page("error", f"<p>{html.e(exc)}</p>", nav=pages.NAV)
        self._send(code, body.encode(), "text/html; charset=utf-8")

    def do_HEAD(self) -> None:
        self._send(405, b"", "text/plain")

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD

    def _allowed(self) -> bool:
        users = self.server.users
        if users is None:
            return True
        kind, _, given = (self.headers.get("Authorization") or "").partition(" ")
        try:
            name, _, password = base64.b64decode(given).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            name, password = "", ""
        if kind.lower() == "basic" and name in users and check_password(password, users[name]):
            return True
        if given:
            time.sleep(1.0)  # (a wrong password costs a second)
            log.warning("console: refused %r from %s", name, self.client_address[0])
        self._send(401, b"login required\n", "text/plain", {"WWW-Authenticate": 'Basic realm="twinsite"'})
        return False

    def _send(self, code: int, body: bytes, kind: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(code)
        for k, v in {**HEADERS, "Content-Type": kind, "Content-Length": str(len(body)), **(extra or {})}.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # (http.server's signature)
        log.info("console: %s %s", self.client_address[0], format % args)


def serve(
    console: Console,
    listen: str,
    *,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    users_file: Path | None = None,
    ready: Callable[[tuple[str, int], Callable[[], None]], None] | None = None,
) -> None:
    """Serve until interrupted (KeyboardInterrupt, SIGTERM through the CLI), or until the function given to
    ``ready`` (with the address it listens on) is called."""
    host, port, loopback = address(listen)
    if not loopback and not (tls_cert and tls_key and users_file):
        raise ConfigError(
            f"--listen {listen}: {host} is not a loopback address; the console shows the whole site, so anywhere "
            "else it needs TLS and a login",
            hint="give --tls-cert, --tls-key and --users (twinsite console --users FILE --set-password NAME), "
            "or listen on 127.0.0.1 and reach it through `ssh -L 8470:127.0.0.1:8470 CONTROLLER`",
        )
    if bool(tls_cert) != bool(tls_key):
        raise ConfigError("--tls-cert and --tls-key go together")
    users = read_users(users_file) if users_file else None
    if users is not None and not users:
        raise ConfigError(f"--users {users_file}: no users in it", hint="add one with --set-password NAME")
    try:
        server = (_Server6 if ":" in host else _Server)((host, port), _Handler)
    except OSError as exc:
        raise ConfigError(f"--listen {listen}: cannot listen: {exc.strerror}") from exc
    if tls_cert and tls_key:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            ctx.load_cert_chain(tls_cert, tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"--tls-cert {tls_cert} / --tls-key {tls_key}: {exc}") from exc
        # (the handshake in each connection's own thread: a client slow to shake hands holds up no other)
        server.socket = ctx.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    server.console, server.users = console, users
    collector = threading.Thread(target=console.run, name="console-collect", daemon=True)
    collector.start()
    if ready:
        ready(server.server_address[:2], server.shutdown)  # type: ignore[arg-type]
    try:
        server.serve_forever()
    finally:
        console.stop()
        server.server_close()

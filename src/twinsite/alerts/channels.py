"""Where alerts go: the event log, syslog, email over SMTP, a webhook. Each ``send`` raises AlertError
with the reason when it cannot deliver; nothing here retries (the caller records the failure)."""

from __future__ import annotations

import email.message
import email.policy
import json
import os
import smtplib
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from twinsite.alerts import Alert
from twinsite.config.secrets import shown_url
from twinsite.errors import AlertError
from twinsite.state import events

FACILITIES = {"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "local0": 16, "local1": 17,
              "local2": 18, "local3": 19, "local4": 20, "local5": 21, "local6": 22, "local7": 23}  # fmt: skip
LEVELS = {"critical": 2, "warning": 4, "info": 6, "resolved": 5}  # crit, warning, info, notice


class Channel(Protocol):
    @property
    def name(self) -> str: ...

    def send(self, alert: Alert) -> None: ...


@dataclass(frozen=True)
class EventLog:
    """JSON lines, one per event, appended and fsynced: the record that is always there."""

    path: Path
    name: str = "eventlog"

    def append(self, event: dict[str, Any]) -> None:
        try:
            events.append(self.path, event)
        except OSError as exc:
            raise AlertError(f"cannot write the event log: {exc.strerror}", where=str(self.path)) from exc

    def send(self, alert: Alert) -> None:
        self.append({"event": "alert", **alert.to_dict()})

    def read(self) -> list[dict[str, Any]]:
        """Every event, oldest first (state.events)."""
        return events.read(self.path)


@dataclass(frozen=True)
class Syslog:
    """RFC 5424 over a unix datagram socket (``/dev/log``) or UDP (``host:port``)."""

    address: str = "/dev/log"
    facility: str = "daemon"
    name: str = "syslog"

    def message(self, alert: Alert) -> bytes:
        pri = FACILITIES[self.facility] * 8 + LEVELS[alert.severity]
        host = alert.reported_by or "-"
        text = f"{alert.subject} | since {alert.to_dict()['since']} | what to do: {alert.action}"
        return f"<{pri}>1 {alert.to_dict()['at']} {host} twinsite {os.getpid()} {alert.kind} - {text}".encode()

    def send(self, alert: Alert) -> None:
        data = self.message(alert)
        try:
            if self.address.startswith("/"):
                with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
                    s.connect(self.address)
                    s.send(data)
            else:
                host, _, port = self.address.rpartition(":")
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.sendto(data, (host, int(port)))
        except OSError as exc:
            raise AlertError(f"syslog at {self.address} refused the alert: {exc.strerror or exc}") from exc


@dataclass(frozen=True)
class Email:
    """One message per alert over SMTP (STARTTLS verified when asked; login with a password from a file)."""

    smtp_host: str
    to: tuple[str, ...]
    sender: str
    smtp_port: int = 25
    starttls: bool = False
    username: str | None = None
    password_file: str | None = None
    timeout: float = 10.0
    insecure_login: bool = False  # allow the login without STARTTLS (a lab, a trusted local relay)
    name: str = "email"

    def message(self, alert: Alert) -> email.message.EmailMessage:
        # (no folding below RFC 5322's hard limit: Python folds "Subject: [twinsite] ..." badly)
        msg = email.message.EmailMessage(policy=email.policy.default.clone(max_line_length=998))
        msg["Subject"] = alert.subject
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.to)
        msg["X-Twinsite-Kind"] = alert.kind
        msg.set_content(alert.text())
        return msg

    def send(self, alert: Alert) -> None:
        where = f"{self.smtp_host}:{self.smtp_port}"
        if self.username and not (self.starttls or self.insecure_login):
            raise AlertError(
                f"email channel: will not send the SMTP password to {where} in clear text",
                hint="set starttls: true (or insecure_login: true for a trusted local relay)",
            )
        try:
            with smtplib.SMTP(self.smtp_host, self.smtp_port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username:
                    smtp.login(self.username, self._password())
                smtp.send_message(self.message(alert))
        except smtplib.SMTPException as exc:
            raise AlertError(f"the mail server {where} refused the alert: {exc}") from exc
        except OSError as exc:
            raise AlertError(f"cannot reach the mail server {where}: {exc.strerror or exc}") from exc

    def _password(self) -> str:
        if not self.password_file:
            raise AlertError(f"email channel: username {self.username!r} given without password_file")
        return _secret_file(self.password_file, "the SMTP password file").strip()


@dataclass(frozen=True)
class Webhook:
    """An HTTP POST of the alert as JSON; any 2xx answer is delivery. The URL and headers are given, or read
    at each send from files on this host (``url_file``; ``headers_file``, a JSON object added to
    ``headers``), so that they stay out of the declaration and everything that shows it."""

    url: str | None = None
    headers: tuple[tuple[str, str], ...] = field(default=())
    timeout: float = 5.0
    ca_file: str | None = None
    url_file: str | None = None
    headers_file: str | None = None
    name: str = "webhook"

    def send(self, alert: Alert) -> None:
        url, headers = self._target()
        if not url.startswith(("http://", "https://")):
            raise AlertError(f"the webhook URL {shown_url(url)} is neither http:// nor https://")
        body = json.dumps({"twinsite": 1, **alert.to_dict(), "subject": alert.subject, "text": alert.text()}).encode()
        req = urllib.request.Request(url, data=body, method="POST")  # noqa: S310 (scheme checked above)
        req.add_header("Content-Type", "application/json")
        for k, v in headers:
            req.add_header(k, v)
        try:
            ctx = ssl.create_default_context(cafile=self.ca_file) if url.startswith("https:") else None
            with urllib.request.urlopen(req, timeout=self.timeout, context=ctx) as resp:  # noqa: S310
                status = resp.status
        except urllib.error.HTTPError as exc:
            raise AlertError(f"the webhook {shown_url(url)} answered HTTP {exc.code}") from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise AlertError(f"cannot reach the webhook {shown_url(url)}: {reason}") from exc
        if not 200 <= status < 300:
            raise AlertError(f"the webhook {shown_url(url)} answered HTTP {status}")

    def _target(self) -> tuple[str, list[tuple[str, str]]]:
        """The URL and the headers, read from their files where they are kept there."""
        url = self.url or _secret_file(self.url_file, "the webhook's url_file").strip()
        headers = list(self.headers)
        if self.headers_file:
            text = _secret_file(self.headers_file, "the webhook's headers_file")
            try:
                more = json.loads(text)
            except ValueError as exc:
                raise AlertError("the webhook's headers_file is not JSON", where=self.headers_file) from exc
            if not isinstance(more, dict) or not all(isinstance(v, str) for v in more.values()):
                raise AlertError(
                    "the webhook's headers_file must hold a JSON object of strings", where=self.headers_file
                )
            headers += sorted(more.items())
        return url, headers


def _secret_file(path: str | None, what: str) -> str:
    """The text of a file a channel keeps a secret in (``what`` names it in the error)."""
    if not path:
        raise AlertError(f"{what} is not set")
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise AlertError(f"cannot read {what}: {exc.strerror}", where=path) from exc

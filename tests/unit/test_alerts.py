"""Alerts reach real endpoints: an SMTP server (aiosmtpd), an HTTP server, syslog over UDP and a unix
datagram socket, and the event log; a dead channel does not stop the others, and says why."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from harness.cli import twinsite_cmd
from twinsite.alerts import Alert
from twinsite.alerts.channels import Webhook
from twinsite.alerts.dispatch import Alerter, channels_from
from twinsite.errors import AlertError
from twinsite.state import events as state_events
from twinsite.state.layout import HostState


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(
            (envelope.rcpt_tos, message_from_bytes(envelope.content, policy=policy.default), session.authenticated)
        )
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Controller, Inbox]]:
    inbox = Inbox()

    def check(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"alerts", b"s3cret-Pa55")
        return AuthResult(success=ok)

    with socket.socket() as probe:  # (aiosmtpd checks it is up by connecting: it needs a real port number)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ctl = Controller(inbox, hostname="127.0.0.1", port=port, authenticator=check, auth_require_tls=False)
    ctl.start()
    yield ctl, inbox
    ctl.stop()


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]], list[int]]]:
    received: list[dict[str, Any]] = []
    answer = [204]

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"body": json.loads(body), "headers": dict(self.headers), "path": self.path})
            self.send_response(answer[0])
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/hooks/twinsite?token=t0ps3cret", received, answer
    srv.shutdown()


@pytest.fixture
def udp_syslog() -> Iterator[tuple[str, socket.socket]]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(5)
    yield f"127.0.0.1:{s.getsockname()[1]}", s
    s.close()


def alert() -> Alert:
    return Alert(
        kind="application-down",
        severity="critical",
        scenario="db",
        host="prod1",
        what="PostgreSQL does not accept connections",
        action="check the database on prod1; twinsite switchover db if it cannot be brought back",
        details=(("checks failed", "3 in a row"),),
    )


def test_an_alert_reaches_every_channel_with_what_where_since_and_what_to_do(
    tmp_path: Path,
    smtp: tuple[Controller, Inbox],
    webhook: tuple[str, list[dict[str, Any]], list[int]],
    udp_syslog: tuple[str, socket.socket],
) -> None:
    ctl, inbox = smtp
    url, received, _ = webhook
    addr, syslog = udp_syslog
    pw = tmp_path / "smtp.pass"
    pw.write_text("s3cret-Pa55\n")
    unix = tmp_path / "log.sock"
    dev_log = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dev_log.bind(str(unix))
    dev_log.settimeout(5)
    channels = channels_from(
        [
            {"type": "syslog", "address": addr, "facility": "local3"},
            {"type": "syslog", "address": str(unix)},
            {"type": "email", "smtp_host": "127.0.0.1", "smtp_port": ctl.port, "from": "twinsite@dr1.dr.test",
             "to": ["oncall@dr.test", "dba@dr.test"], "username": "alerts", "password_file": str(pw),
             "insecure_login": True},
            {"type": "webhook", "url": url, "headers": {"X-Team": "dba"}},
        ]
    )  # fmt: skip
    a = alert()
    deliveries = Alerter(tmp_path / "state", channels).send(a)
    assert [(d.channel, d.ok) for d in deliveries] == [
        ("eventlog", True), ("syslog", True), ("syslog", True), ("email", True), ("webhook", True),
    ]  # fmt: skip

    since = a.to_dict()["since"]
    rcpts, mail, authenticated = inbox.messages[0]
    assert rcpts == ["oncall@dr.test", "dba@dr.test"] and authenticated
    assert mail["Subject"] == "[twinsite] CRITICAL db on prod1: PostgreSQL does not accept connections"
    body = mail.get_content()
    expected = [
        "What:        PostgreSQL does not accept connections",
        "Where:       scenario db, host prod1",
        f"Since:       {since}",
        "What to do:  check the database on prod1",
        "checks failed: 3 in a row",
    ]
    for part in expected:
        assert part in body, body

    hook = received[0]
    assert hook["path"] == "/hooks/twinsite?token=t0ps3cret" and hook["headers"]["X-Team"] == "dba"
    assert {k: hook["body"][k] for k in ("kind", "severity", "scenario", "host", "since")} == {
        "kind": "application-down", "severity": "critical", "scenario": "db", "host": "prod1", "since": since,
    }  # fmt: skip
    assert hook["body"]["action"].startswith("check the database on prod1")

    msg = syslog.recv(4096).decode()
    assert msg.startswith(f"<{19 * 8 + 2}>1 ")  # local3.crit, RFC 5424
    assert "twinsite" in msg and "application-down" in msg and "what to do: check the database" in msg
    assert dev_log.recv(4096).decode().startswith(f"<{3 * 8 + 2}>1 ")  # daemon.crit
    dev_log.close()

    events = state_events.read(HostState(tmp_path / "state").events)
    assert events == [{"event": "alert", **a.to_dict()}]


def test_a_dead_channel_does_not_stop_the_others_and_its_failure_is_logged(
    tmp_path: Path, webhook: tuple[str, list[dict[str, Any]], list[int]]
) -> None:
    url, received, answer = webhook
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    dead.close()  # nothing listens there now
    channels = channels_from(
        [
            {"type": "email", "smtp_host": "127.0.0.1", "smtp_port": port, "from": "a@b.c", "to": ["d@e.f"],
             "timeout": 2},
            {"type": "webhook", "url": url},
            {"type": "syslog", "address": str(tmp_path / "no-such.sock")},
        ]
    )  # fmt: skip
    answer[0] = 500
    deliveries = Alerter(tmp_path, channels).send(alert())
    assert [(d.channel, d.ok) for d in deliveries] == [
        ("eventlog", True), ("email", False), ("webhook", False), ("syslog", False),
    ]  # fmt: skip
    assert f"cannot reach the mail server 127.0.0.1:{port}" in str(deliveries[1].error)
    assert "answered HTTP 500" in str(deliveries[2].error) and "t0ps3cret" not in str(deliveries[2].error)
    assert "/hooks/twinsite" not in str(deliveries[2].error)  # tokens also live in paths (Slack, Teams)
    assert len(received) == 1  # the webhook was tried once
    events = state_events.read(HostState(tmp_path).events)
    assert [e["event"] for e in events] == ["alert"] + ["alert-delivery-failed"] * 3
    assert [e["channel"] for e in events[1:]] == ["email", "webhook", "syslog"]


def test_wrong_smtp_password_fails_without_showing_it(tmp_path: Path, smtp: tuple[Controller, Inbox]) -> None:
    ctl, inbox = smtp
    pw = tmp_path / "smtp.pass"
    pw.write_text("not-the-one\n")
    [email] = channels_from(
        [
            {
                "type": "email",
                "smtp_host": "127.0.0.1",
                "smtp_port": ctl.port,
                "from": "a@b.c",
                "to": ["d@e.f"],
                "username": "alerts",
                "password_file": str(pw),
                "timeout": 2,
                "insecure_login": True,
            }
        ]
    )  # fmt: skip  (aiosmtpd holds the line after a failed login: the channel's timeout ends it)
    [_, d] = Alerter(tmp_path, [email]).send(alert())
    assert not d.ok and "refused the alert" in str(d.error) and "not-the-one" not in str(d.error)
    assert inbox.messages == []


def test_the_cli_sends_a_test_alert_and_fails_when_a_channel_does(
    tmp_path: Path, webhook: tuple[str, list[dict[str, Any]], list[int]]
) -> None:
    url, received, answer = webhook
    conf, state = tmp_path / "conf", tmp_path / "state"
    conf.mkdir()
    scenario = {"name": "db", "master": "prod1", "replicas": ["dr1"], "roots": [{"path": "/srv/db"}],
                "alerts": [{"type": "webhook", "url": url}]}  # fmt: skip
    (conf / "db.yml").write_text(yaml.safe_dump(scenario))
    args = ["--config-dir", str(conf), "--state-dir", str(state), "--json"]
    ok = twinsite_cmd("alert", "db", "--test", *args)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert [d["ok"] for d in json.loads(ok.stdout)["result"]["deliveries"]] == [True, True]
    assert received[0]["body"]["kind"] == "test"
    answer[0] = 503
    bad = twinsite_cmd("alert", "db", "--test", *args)
    assert bad.returncode == 17
    assert "1 of 2 channel(s) failed: webhook: the webhook" in json.loads(bad.stdout)["error"]["message"]
    events = twinsite_cmd("events", "--scenario", "db", "--state-dir", str(state), "--json")
    kinds = [e["event"] for e in json.loads(events.stdout)["result"]["events"]]
    assert kinds == ["alert", "alert", "alert-delivery-failed"]


def test_the_schema_refuses_a_bad_channel_with_the_key_path(tmp_path: Path) -> None:
    f = tmp_path / "db.yml"
    scenario = {"name": "db", "master": "prod1", "replicas": ["dr1"], "roots": [{"path": "/srv/db"}],
                "alerts": [{"type": "webhook", "url": "ftp://x"}, {"type": "email", "smtp_host": "m", "to": []},
                           {"type": "pager"}]}  # fmt: skip
    f.write_text(yaml.safe_dump(scenario))
    proc = twinsite_cmd("validate", str(f))
    assert proc.returncode == 3
    for part in ("alerts[0].url", "alerts[1]", "missing required key 'from'", "alerts[2].type"):
        assert part in proc.stderr, proc.stderr


def test_no_password_in_clear_text_and_a_broken_channel_does_not_stop_the_next(
    tmp_path: Path, webhook: tuple[str, list[dict[str, Any]], list[int]]
) -> None:
    url, received, _ = webhook
    pw = tmp_path / "smtp.pass"
    pw.write_text("s3cret-Pa55\n")
    channels = channels_from(
        [
            {"type": "email", "smtp_host": "127.0.0.1", "from": "a@b.c", "to": ["d@e.f"], "username": "alerts",
             "password_file": str(pw)},
            {"type": "webhook", "url": url.replace("http://", "https://"), "ca_file": str(tmp_path / "missing.pem")},
            {"type": "webhook", "url": url},
        ]
    )  # fmt: skip
    deliveries = Alerter(tmp_path, channels).send(alert())
    assert [d.ok for d in deliveries] == [True, False, False, True]
    assert "will not send the SMTP password" in str(deliveries[1].error)
    assert len(received) == 1


def test_a_webhook_reads_its_url_and_headers_from_files_at_each_alert(
    tmp_path: Path, webhook: tuple[str, list[dict[str, Any]], list[int]]
) -> None:
    url, received, _answer = webhook
    url_file, headers_file = tmp_path / "url", tmp_path / "headers.json"
    url_file.write_text(url + "\n")
    headers_file.write_text(json.dumps({"Authorization": "Bearer from-a-file"}))
    hook = Webhook(url_file=str(url_file), headers_file=str(headers_file), headers=(("X-Team", "dr"),))
    hook.send(alert())
    assert received[-1]["path"] == "/hooks/twinsite?token=t0ps3cret"
    assert received[-1]["headers"]["Authorization"] == "Bearer from-a-file"
    assert received[-1]["headers"]["X-Team"] == "dr"
    url_file.write_text(url.replace("t0ps3cret", "r0tated") + "\n")  # a rotated token: read at each alert
    hook.send(alert())
    assert received[-1]["path"] == "/hooks/twinsite?token=r0tated"
    headers_file.write_text("[1, 2]")
    with pytest.raises(AlertError, match="must hold a JSON object of strings"):
        hook.send(alert())
    url_file.unlink()
    with pytest.raises(AlertError, match="cannot read the webhook's url_file") as err:
        hook.send(alert())
    assert err.value.where == str(url_file)

"""The ``http`` check any scenario can add (apps.checks.http): against real HTTP and HTTPS servers on loopback
(Python's http.server; TLS from a certificate made by openssl), each way it can pass or fail, and its settings
checked by `twinsite validate`."""

from __future__ import annotations

import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from harness.cli import twinsite_cmd
from twinsite.apps.checks import extra_checks

PAGES = {"/": (200, b"<h1>orders: 1042</h1>"), "/gone": (404, b"not here"), "/moved": (301, b"")}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/slow":
            time.sleep(3)
        code, body = PAGES.get(self.path, (200, b"slow"))
        self.send_response(code)
        if code == 301:
            self.send_header("Location", "/")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # (the slow page's client has gone by the time it answers)


def _serve(tls: ssl.SSLContext | None = None) -> Iterator[str]:
    server = _Server(("127.0.0.1", 0), _Handler)
    if tls:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"{'https' if tls else 'http'}://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem"), "-days", "2", "-subj", "/CN=web.test",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return d / "cert.pem", d / "key.pem"


@pytest.fixture(scope="module")
def web() -> Iterator[str]:
    yield from _serve()


@pytest.fixture(scope="module")
def tls_web(cert: tuple[Path, Path]) -> Iterator[str]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*cert)
    yield from _serve(ctx)


def check(tmp_path: Path, **spec: object) -> tuple[bool, str]:
    [r] = extra_checks([{"type": "http", **spec}], tmp_path)
    return r.ok, r.output


def test_the_status_and_the_body_decide(web: str, tmp_path: Path) -> None:
    assert check(tmp_path, url=web + "/", body=r"orders: \d+") == (True, f"{web}/ answered 200 with 'orders: \\\\d+'")
    ok, out = check(tmp_path, url=web + "/", body="invoices")
    assert not ok and "without 'invoices'" in out
    ok, out = check(tmp_path, url=web + "/gone")
    assert not ok and out == f"{web}/gone answered 404, not 200"
    assert check(tmp_path, url=web + "/gone", status=404)[0]  # (an error page can be what is expected)
    ok, out = check(tmp_path, url=web + "/moved")
    assert not ok and "answered 301" in out  # (a redirect is not followed)
    assert check(tmp_path, url=web + "/moved", status=301)[0]


def test_a_slow_or_absent_server_fails_within_the_timeout(web: str, tmp_path: Path) -> None:
    t0 = time.monotonic()
    ok, out = check(tmp_path, url=web + "/slow", timeout=0.5)
    assert not ok and "timed out" in out and time.monotonic() - t0 < 2.5
    ok, out = check(tmp_path, url="http://127.0.0.1:9/")
    assert not ok and "refused" in out.lower()


def test_tls_is_verified_against_the_given_ca_unless_told_not_to(tls_web: str, cert: tuple[Path, Path],
                                                                tmp_path: Path) -> None:  # fmt: skip
    ok, out = check(tmp_path, url=tls_web + "/")
    assert not ok and "CERTIFICATE_VERIFY_FAILED" in out  # (the host's CAs do not know the lab's)
    assert check(tmp_path, url=tls_web + "/", ca_file=str(cert[0]), body="orders")[0]
    assert check(tmp_path, url=tls_web + "/", verify_tls=False)[0]


def test_validate_refuses_a_bad_url_or_pattern_and_says_where(tmp_path: Path) -> None:
    f = tmp_path / "web.yml"
    f.write_text(
        "name: web\nmaster: prod1\nreplicas: [dr1]\nroots: [{path: /srv/www}]\n"
        "application:\n  type: files\n  checks:\n    - {type: http, url: 'file:///etc/passwd'}\n"
        "    - {type: http, url: 'http://127.0.0.1/', body: 'orders: ('}\n"
        "    - {type: http, url: 'http://127.0.0.1/', status: 99}\n"
    )
    proc = twinsite_cmd("validate", str(f))
    assert proc.returncode != 0
    err = proc.stdout + proc.stderr
    assert "application.checks[0].url" in err and "application.checks[1].body" in err, err
    assert "not a regular expression" in err and "application.checks[2].status" in err, err

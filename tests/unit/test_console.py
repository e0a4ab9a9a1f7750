"""The console beyond loopback (site.console): TLS with a certificate made by openssl, HTTP Basic logins against
the users file `twinsite console --set-password` writes; refused without them; read-only (no other method)."""

from __future__ import annotations

import base64
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness.cli import VENV_BIN
from twinsite.errors import ConfigError
from twinsite.plans.hosts import Hosts
from twinsite.site.console import Console, address, read_users, serve
from twinsite.state import reports


def set_password(users: Path, name: str, password: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "twinsite"), "console", "--users", str(users), "--set-password", name],
        input=password + "\n", capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.fixture
def users(tmp_path: Path) -> Path:
    f = tmp_path / "users"
    for name, password in (("alice", "correct horse battery"), ("bob", "another long secret")):
        done = set_password(f, name, password)
        assert done.returncode == 0, done.stderr
    return f


@pytest.fixture
def tls(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=console.test",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def served(users: Path, tls: tuple[Path, Path]) -> Iterator[str]:
    where: list[tuple[tuple[str, int], Callable[[], None]]] = []
    console = Console(Hosts({}), [], [], "inventories/site", refresh=3600)
    t = threading.Thread(
        target=serve,
        args=(console, "127.0.0.1:0"),
        kwargs={"tls_cert": tls[0], "tls_key": tls[1], "users_file": users, "ready": lambda a, s: where.append((a, s))},
        daemon=True,
    )
    t.start()
    deadline = time.monotonic() + 30
    while not where:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    (host, port), stop = where[0]
    yield f"https://{host}:{port}"
    stop()
    t.join(timeout=30)


def get(
    url: str, cafile: Path, login: tuple[str, str] | None = None, method: str = "GET"
) -> tuple[int, dict[str, str], str]:
    req = urllib.request.Request(url, method=method)  # noqa: S310
    if login:
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{login[0]}:{login[1]}".encode()).decode())
    ctx = ssl.create_default_context(cafile=str(cafile))
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as r:  # noqa: S310
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


def test_users_are_scrypt_hashes_in_a_private_file_and_short_passwords_are_refused(users: Path) -> None:
    assert oct(users.stat().st_mode & 0o777) == "0o600"
    text = users.read_text()
    assert "correct horse" not in text and text.count(":scrypt$") == 2
    assert sorted(read_users(users)) == ["alice", "bob"]
    short = set_password(users, "carol", "short")
    assert short.returncode != 0 and "shorter than 12" in short.stderr
    users.chmod(0o644)
    with pytest.raises(ConfigError, match="others can read it"):
        read_users(users)


def test_beyond_loopback_the_console_needs_tls_and_users() -> None:
    assert address("127.0.0.1:8470") == ("127.0.0.1", 8470, True)
    assert address("[::1]:8470") == ("::1", 8470, True)
    assert address("10.0.0.5:443") == ("10.0.0.5", 443, False)
    with pytest.raises(ConfigError, match="not HOST:PORT"):
        address("console.example.com:443")
    console = Console(Hosts({}), [], [], "inv")
    with pytest.raises(ConfigError, match="not a loopback address") as exc:
        serve(console, "0.0.0.0:0")
    assert "--tls-cert" in (exc.value.hint or "")


def test_over_tls_only_a_user_with_the_right_password_sees_a_page(served: str, tls: tuple[Path, Path]) -> None:
    cafile = tls[0]
    code, head, _ = get(served + "/", cafile)
    assert code == 401 and head["WWW-Authenticate"] == 'Basic realm="twinsite"'
    t0 = time.monotonic()
    code, _, _ = get(served + "/", cafile, ("alice", "wrong password here"))
    assert code == 401 and time.monotonic() - t0 >= 1.0  # (a wrong password costs a second)
    code, _, _ = get(served + "/", cafile, ("mallory", "correct horse battery"))
    assert code == 401
    code, head, body = get(served + "/", cafile, ("alice", "correct horse battery"))
    assert code == 200 and "twinsite site" in body
    assert "default-src 'none'" in head["Content-Security-Policy"] and head["Cache-Control"] == "no-store"
    code, _, _ = get(served + "/", cafile, ("bob", "another long secret"), method="POST")
    assert code == 405  # (read-only)
    with pytest.raises((urllib.error.URLError, ConnectionError)):  # (no plain HTTP on the TLS port)
        urllib.request.urlopen(served.replace("https", "http") + "/", timeout=10)  # noqa: S310


def test_a_run_page_reaches_a_host_only_for_a_run_the_console_has_seen(tmp_path: Path) -> None:
    """An id, host or scenario made up in the address asks no host (and a report's id is never a path there)."""
    console = Console(Hosts({}), [], [], "inv")
    seen = {"scenario": "db", "hosts": ["dr1"], "switchovers": [{"id": "abc123", "host": "dr1"}], "tests": {"list": []}}
    console.snap = {"month": {"scenarios": [seen]}}
    for path in ("/run/dr1/db/switchover/..%2F..%2Fetc%2Fpasswd", "/run/prod9/db/switchover/abc123",
                 "/run/dr1/db/test/abc123"):  # fmt: skip
        code, body = console.page(path)
        assert code == 200 and "in the period" in body, path
    code, body = console.page("/run/dr1/db/switchover/abc123")  # (seen: asked of dr1, which Hosts({}) lacks)
    assert "dr1 is not a host of the inventory" in body
    with pytest.raises(ConfigError, match="is not a run's id"):
        reports.load(tmp_path, "../../etc/passwd")

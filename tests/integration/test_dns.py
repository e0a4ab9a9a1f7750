"""The lab's DNS server: TSIG-signed RFC 2136 updates are applied and seen by users; bad keys are refused."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator

import pytest

from harness.cli import twinsite_cmd
from twinsite.errors import DnsError
from twinsite.lab import dns as labdns
from twinsite.lab.topology import Lab
from twinsite.redirect.dns import TsigKey, resolve_addresses, update_address

pytestmark = pytest.mark.lab


@pytest.fixture
def app_record(lab: Lab) -> Iterator[str]:
    """app.dr.test, restored to prod1's address after the test."""
    yield "app.dr.test"
    update_address(
        server=lab.ctl_address,
        zone="dr.test",
        name="app",
        addresses=[lab.host("prod1").address],
        ttl=60,
        key=labdns.ensure_key(lab),
    )


def test_signed_update_is_read_back_from_client1(lab: Lab, app_record: str) -> None:
    key = TsigKey.load(lab.tsig_file)
    assert resolve_addresses(server=lab.ctl_address, name=app_record) == [lab.host("prod1").address]
    update_address(
        server=lab.ctl_address, zone="dr.test", name="app", addresses=[lab.host("dr1").address], ttl=30, key=key
    )
    assert resolve_addresses(server=lab.ctl_address, name=app_record) == [lab.host("dr1").address]
    # the users' side sees it through its own resolver configuration
    proc = twinsite_cmd("lab", "exec", "client1", "--", "getent", "hosts", app_record)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[0] == lab.host("dr1").address


@pytest.mark.parametrize(
    ("key_name", "secret"),
    [
        ("twinsite-lab", base64.b64encode(os.urandom(32)).decode()),  # right name, wrong secret
        ("intruder", base64.b64encode(os.urandom(32)).decode()),  # a key the server does not know
    ],
)
def test_update_with_a_wrong_key_is_refused_and_changes_nothing(
    lab: Lab, app_record: str, key_name: str, secret: str
) -> None:
    bad = TsigKey(name=key_name, algorithm="hmac-sha256", secret=secret)
    with pytest.raises(DnsError) as err:
        update_address(server=lab.ctl_address, zone="dr.test", name="app", addresses=["10.77.0.99"], ttl=30, key=bad)
    assert "refused" in err.value.message
    assert err.value.where == f"DNS server {lab.ctl_address}:53, zone dr.test"
    assert resolve_addresses(server=lab.ctl_address, name=app_record) == [lab.host("prod1").address]


def test_unreachable_dns_server_is_a_clear_error(lab: Lab) -> None:
    with pytest.raises(DnsError) as err:
        resolve_addresses(server="127.0.0.1", port=1, name="app.dr.test", timeout=0.5)
    assert "127.0.0.1:1" in str(err.value)

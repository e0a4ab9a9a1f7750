"""The lab's description: names, addresses and the errors for bad settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from twinsite.errors import ConfigError
from twinsite.lab.topology import Lab


def test_default_lab_layout() -> None:
    lab = Lab.create(name="twl", root=Path("/var/lib/twinsite-lab"), network="10.77.0.0/24")
    assert [(h.name, h.address, h.netns) for h in lab.hosts] == [
        ("prod1", "10.77.0.11", "twl-prod1"),
        ("dr1", "10.77.0.12", "twl-dr1"),
        ("client1", "10.77.0.13", "twl-client1"),
        ("dr2", "10.77.0.14", "twl-dr2"),
    ]
    assert (lab.ctl_address, lab.uplink_address, lab.uplink) == ("10.77.0.1", "10.77.0.254", "twl-up")
    # every interface name fits Linux's 15-character limit
    assert all(len(n) <= 15 for n in [lab.uplink, *(h.veth for h in lab.hosts)])


@pytest.mark.parametrize("ref", ["dr1", "dr1.dr.test", "10.77.0.12"])
def test_host_lookup_by_name_fqdn_or_address(ref: str) -> None:
    lab = Lab.create(name="twl", root=Path("/x"), network="10.77.0.0/24")
    assert lab.host(ref).name == "dr1"


def test_unknown_host_names_the_known_ones() -> None:
    lab = Lab.create(name="twl", root=Path("/x"), network="10.77.0.0/24")
    with pytest.raises(ConfigError) as err:
        lab.host("prod2")
    assert "prod2" in str(err.value)
    assert "prod1, dr1, client1" in str(err.value)


@pytest.mark.parametrize(
    ("name", "root", "network", "where", "fragment"),
    [
        ("TOOLONGNAME", "/x", "10.77.0.0/24", "TWINSITE_LAB_NAME", "1-4 lower-case"),
        ("1ab", "/x", "10.77.0.0/24", "TWINSITE_LAB_NAME", "starting with a letter"),
        ("twl", "/x", "10.77.0.0/16", "TWINSITE_LAB_NET", "private /24"),
        ("twl", "/x", "8.8.8.0/24", "TWINSITE_LAB_NET", "private /24"),
        ("twl", "/x", "not-a-net", "TWINSITE_LAB_NET", "not an IPv4 network"),
        ("twl", "relative/dir", "10.77.0.0/24", "TWINSITE_LAB_DIR", "absolute path"),
    ],
)
def test_bad_lab_settings_are_refused_with_where_and_why(
    name: str, root: str, network: str, where: str, fragment: str
) -> None:
    with pytest.raises(ConfigError) as err:
        Lab.create(name=name, root=Path(root), network=network)
    assert err.value.where == where
    assert fragment in err.value.message

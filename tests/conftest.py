"""Shared fixtures: the lab (brought up once per session), and helpers to reach its hosts."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from twinsite import lab as labmod
from twinsite.lab.topology import Lab

REPO = Path(__file__).resolve().parent.parent
# The collection's module_utils are imported by the unit tests as Ansible would import them.
sys.path.insert(0, str(REPO / "collections"))
VENV_BIN = Path(sys.executable).parent


def twinsite_cmd(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the real `twinsite` console script of this environment."""
    return subprocess.run(
        [str(VENV_BIN / "twinsite"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ, **(env or {})),
        check=False,
    )


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """The demo lab, as `twinsite lab up` makes it. Left running if it was running before the tests."""
    if os.geteuid() != 0:
        pytest.fail("the lab tests need root (network namespaces, mounts); run them as root")
    the_lab = Lab.from_env()
    was_up = labmod.status(the_lab)["state"] == "up"
    labmod.up(the_lab)
    yield the_lab
    for h in the_lab.hosts:  # a failed test must not leave a host cut for the next one
        if labmod.status(the_lab)["state"] != "down":
            labmod.heal(the_lab, h.name)
    if not was_up:
        labmod.down(the_lab)


@pytest.fixture
def healed(lab: Lab) -> Iterator[Lab]:
    """The lab, with every host's link restored after the test whatever happened in it."""
    yield lab
    for h in lab.hosts:
        labmod.heal(lab, h.name)


def ssh(
    lab: Lab,
    host: str,
    command: str,
    *,
    timeout: float = 30,
    known_hosts: Path | None = None,
    extra: list[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` on a lab host through real OpenSSH, host key verified against the lab's known_hosts."""
    argv = ["ssh", "-F", str(lab.ssh_config), *(extra or [])]
    if known_hosts is not None:
        argv += ["-o", f"UserKnownHostsFile={known_hosts}"]
    argv += [host, command]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)

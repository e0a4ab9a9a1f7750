"""Shared fixtures: the lab (brought up once per session), its links healed after a test, and the lab's `db`
scenario prepared and put back. How the tests reach the lab (and the benchmarks too) is in ``harness``."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest

from harness.cli import REPO
from tests.btrfs import volume  # noqa: F401 (a fixture: a loop btrfs for lab-free tests)
from twinsite import lab as labmod
from twinsite.lab.topology import Lab

# The collection's module_utils are imported by the unit tests as Ansible would import them.
sys.path.insert(0, str(REPO / "collections"))
# The tests' helper modules that assert are rewritten like the tests: a failed check says what it compared.
pytest.register_assert_rewrite("tests.unit.replicating")


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


@pytest.fixture
def db(lab: Lab) -> Iterator[Lab]:
    """The lab's `db` scenario as configure.yml declares it: prod1 active and replicating to dr1, with the load
    generator's table. Put back afterwards whatever the test did: an assured-recovery test it left on dr1
    ended, prod1 active again (PostgreSQL there only, db.dr.test -> prod1, prod1-vm on), and every declaration
    as configure.yml writes it (a test may change them: automatic mode, checks, a schedule)."""
    from harness.db import prepare_db, restore_db  # (here: the unit tests need neither PostgreSQL nor vCenter)
    from harness.hosts import TWINSITE, on_host
    from harness.scenarios import ensure_configured

    prepare_db(lab)
    try:
        yield lab
    finally:
        on_host(lab, "dr1", TWINSITE, "recover-test", "db", "--end")  # (a running one too, an interactive one)
        restore_db(lab)
        ensure_configured(lab)

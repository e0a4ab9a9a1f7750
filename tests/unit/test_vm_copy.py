"""Which VMs are our copies of a replica VM, and which of them go when only the newest are kept (no vCenter
needed: the choice is pure; tests/ansible/test_vsphere.py makes and removes copies in the simulator)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from pyVmomi import vim

from twinsite.errors import VSphereError
from twinsite.vsphere.vm_copy import MARK, Copy, choose_host, marker, read_marker, to_remove


def copy(name: str, created: str, power_state: str = "poweredoff") -> Copy:
    return Copy(name, "dr1", "t", created, None, "DR", "CopyDS", power_state)


def opts(**values: str) -> list[Any]:
    return [vim.option.OptionValue(key=k.replace("_", "."), value=v) for k, v in values.items()]


def test_the_oldest_beyond_keep_go_by_creation_time_not_by_name() -> None:
    a, b, c = (
        copy("dr1-copy-z", "2026-01-01T00:00:00+00:00"),
        copy("dr1-copy-a", "2026-01-02T00:00:00+00:00"),
        copy("dr1-copy-m", "2026-01-03T00:00:00+00:00"),
    )
    assert to_remove([c, a, b], 2) == ([a], [])
    assert to_remove([c, a, b], 1) == ([a, b], [])
    assert to_remove([c, a, b], 3) == ([], [])
    assert to_remove([], 2) == ([], [])
    same = replace(b, created=a.created)  # created in the same instant: the name decides, so the choice is stable
    assert to_remove([a, same], 1) == ([same], [])


def test_a_copy_that_is_powered_on_is_left_alone_whatever_its_age() -> None:
    on = copy("dr1-copy-1", "2026-01-01T00:00:00+00:00", "poweredon")
    old = copy("dr1-copy-2", "2026-01-02T00:00:00+00:00")
    new = copy("dr1-copy-3", "2026-01-03T00:00:00+00:00")
    assert to_remove([new, old, on], 1) == ([old], [on])


def test_keep_must_be_at_least_one() -> None:
    with pytest.raises(VSphereError, match="keep must be at least 1, got 0"):
        to_remove([copy("dr1-copy-1", "2026")], 0)


def test_only_a_marker_naming_the_vm_itself_makes_it_ours() -> None:
    mark = marker("dr1", "uuid-1", "dr1-copy-7", "test 7", "2026-01-01T00:00:00+00:00", None)
    got = read_marker("dr1-copy-7", opts(govcsim="TRUE", twinsite_copy=mark))
    assert got is not None and (got["source"], got["label"], got["source_uuid"]) == ("dr1", "test 7", "uuid-1")
    assert read_marker("dr1-copy-7 (1)", opts(twinsite_copy=mark)) is None  # a clone of a copy, made by hand
    assert read_marker("dr1-copy-7", opts(govcsim="TRUE")) is None  # not ours
    assert read_marker("dr1-copy-7", opts(twinsite_copy="{not json")) is None
    assert read_marker("dr1-copy-7", opts(twinsite_copy='["dr1"]')) is None
    assert read_marker("dr1-copy-7", None) is None
    assert MARK == "twinsite.copy"


def test_the_copy_is_made_on_the_sources_host_when_it_reaches_the_datastore_else_on_one_that_does() -> None:
    hosts = [("esx1", True), ("esx2", True), ("esx3", False)]  # esx3: disconnected or in maintenance
    assert choose_host(hosts, {"esx1", "esx2"}, "esx2") == "esx2"
    assert choose_host(hosts, {"esx1", "esx2"}, "esx9") == "esx1"  # (the source is in another cluster)
    assert choose_host(hosts, {"esx1"}, "esx2") == "esx1"  # its host does not mount the datastore
    assert choose_host(hosts, {"esx3"}, "esx3") is None  # the only one that mounts it cannot be used
    assert choose_host(hosts, set(), None) is None

"""A real btrfs filesystem for lab-free tests: a sparse loop file in the test's tmp_path, mounted, with a
subvolume `data` (a scenario root that can have consistency points). Needs root and btrfs-progs (`make setup`)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

needs_btrfs = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("mkfs.btrfs") is None, reason="a loop btrfs needs root and btrfs-progs"
)


@pytest.fixture
def volume(tmp_path: Path) -> Iterator[Path]:
    """A btrfs filesystem on a sparse loop file, mounted at tmp_path/mnt, with a subvolume `data`."""
    img, mnt = tmp_path / "bt.img", tmp_path / "mnt"
    with open(img, "wb") as f:
        f.truncate(256 << 20)
    subprocess.run(["mkfs.btrfs", "-q", "-f", str(img)], check=True, capture_output=True)
    mnt.mkdir()
    subprocess.run(["mount", "-o", "loop", str(img), str(mnt)], check=True)
    try:
        subprocess.run(["btrfs", "subvolume", "create", str(mnt / "data")], check=True, capture_output=True)
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)

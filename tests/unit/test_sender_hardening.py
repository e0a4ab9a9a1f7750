"""Issue 18, items 8 and 9: what the sender reads is the file it planned, inside the root; neither side crosses
into another filesystem mounted inside a root."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.replicating import Pipe
from twinsite.apply.applier import Applier
from twinsite.journal.record import Meta, Op, Record
from twinsite.sync import manifest
from twinsite.tree import entries

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root (CI runs as root)")


@contextlib.contextmanager
def tmpfs(at: Path) -> Iterator[Path]:
    at.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "twinsite-test-tmpfs", str(at)], check=True)
    try:
        yield at
    finally:
        subprocess.run(["umount", "-l", str(at)], check=True)


def shipped(records: list[Record]) -> bytes:
    return b"".join(r.data for r in records if r.op == Op.WRITE)


def test_a_parent_swapped_for_a_link_out_of_the_root_is_never_read_through(tmp_path: Path) -> None:
    """CVE-2024-12747's shape: a local user who can write in the root replaces the directory `a` with a link to a
    directory holding a secret, under the name an event just reported (`a/f`). The sender never reads the
    secret: the path is opened one component at a time without following links."""
    src, dst, outside = tmp_path / "src", tmp_path / "dst", tmp_path / "outside"
    (src / "a").mkdir(parents=True)
    (src / "a" / "f").write_bytes(b"public")
    outside.mkdir()
    (outside / "f").write_bytes(b"root's secret")
    pipe = Pipe(src, dst)
    pipe.ship(list(pipe.planner.plan_all()))
    (src / "a" / "f").unlink()
    (src / "a").rmdir()
    (src / "a").symlink_to(outside)  # the swap, then the event for the old name is planned
    records = list(pipe.planner.plan_path(b"a/f"))
    assert b"secret" not in shipped(records), records
    assert pipe.planner.stats.vanished >= 1


def test_a_file_replaced_between_its_stat_and_its_open_is_not_shipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file planned (its lstat) is the one read, or nothing is: a hard link to a secret swapped in under the
    planned name right after the stat is refused by device and inode."""
    from twinsite.sync import planner as planner_mod

    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    (src / "f").write_bytes(b"public")
    secret = tmp_path / "secret"
    secret.write_bytes(b"root's secret")
    pipe = Pipe(src, dst)
    real_lstat = os.lstat

    class SwapAfterStat:
        def __getattr__(self, name: str) -> object:
            return getattr(os, name)

        @staticmethod
        def lstat(path: bytes) -> os.stat_result:
            st = real_lstat(path)
            if path.endswith(b"/f"):
                os.unlink(path)
                os.link(secret, path)  # (the same size is not needed: the planner reads what is there)
            return st

    monkeypatch.setattr(planner_mod, "os", SwapAfterStat())
    records = list(pipe.planner.plan_all())
    monkeypatch.undo()
    assert b"secret" not in shipped(records), records


@needs_root
def test_a_filesystem_mounted_inside_the_root_is_neither_listed_nor_replicated_into(tmp_path: Path) -> None:
    """The sender's walk, the digest's, the receiver's listing and its DELETE stop at another filesystem: the
    mount point is a directory like any other, what is mounted there is not the root's."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "keep").mkdir(parents=True)
    (src / "keep" / "k").write_bytes(b"k")
    with tmpfs(src / "mnt") as mnt:
        (mnt / "inside").write_bytes(b"another filesystem")
        pipe = Pipe(src, dst)
        records = list(pipe.planner.plan_all())
        assert all(not r.path.startswith(b"mnt/") for r in records), [r.path for r in records]
        assert pipe.planner.stats.skipped_mounts == 1
        assert sorted(entries(src)) == [b"keep", b"keep/k", b"mnt"]
        pipe.ship(records)
    # the standby: a filesystem mounted inside the replica is never written to, listed or emptied
    with tmpfs(dst / "mnt") as mnt:
        (mnt / "theirs").write_bytes(b"mounted by someone else")
        applier = Applier(dst)
        write_into = Record(seq=100, ts=0.0, op=Op.CREATE, path=b"mnt/new", meta=Meta(0o644, 0, 0, 0))
        applier.apply(write_into)
        assert applier.stats.refused_parents == 1 and not (mnt / "new").exists()
        assert sorted(e["p"] for e in manifest.encode(dst)) == [b"keep".hex(), b"keep/k".hex(), b"mnt".hex()]
        applier.apply(Record(seq=101, ts=0.0, op=Op.DELETE, path=b"mnt"))
        applier.commit()
        applier.close()
        assert applier.stats.refused_parents == 2 and (mnt / "theirs").read_bytes() == b"mounted by someone else"

"""The planner's picture of the replica on disk (sync.index): what it keeps, how ranges of paths behave, and
that the planner's memory no longer grows with the tree."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from twinsite.sync.index import InodeIndex, RemoteTree, Stamp, _journaled
from twinsite.tree import Entry

FILE = Entry("file", 0o640, 1000, 1000, 12, 1_700_000_000_123_456_789)


def test_entries_come_back_as_they_were_kept() -> None:
    kept = {
        b"d": Entry("dir", 0o755, 0, 0, xattrs=((b"user.a", b"\x00\xff"),)),
        b"d/f": FILE,
        b"d/l": Entry("link", 0o777, 0, 0, mtime_ns=5, target=b"../\xff\xfename"),
        b"d/p": Entry("fifo", 0o600, 7, 8),
        b"d/h": Entry(
            "file", 0o644, 0, 0, 3, -1, xattrs=((b"user.x", b""), (b"user.y", b"v")), content="ab", link_group=b"d/f"
        ),
    }
    tree = RemoteTree(kept)
    assert dict(tree.items()) == kept
    assert len(tree) == 5
    tree[b"d/f"] = FILE.sized(13, 1)
    assert tree[b"d/f"] == FILE.sized(13, 1)
    del tree[b"d/p"]
    assert b"d/p" not in tree and tree.get(b"d/p") is None


def test_a_subtree_is_its_paths_and_nothing_that_only_shares_their_prefix() -> None:
    names = [b"a", b"a!", b"a.txt", b"a/b", b"a/b!x", b"a/b/c", b"a/b0", b"a0", b"ab"]
    tree = RemoteTree((n, FILE) for n in names)
    assert tree.subtree(b"a/b") == [b"a/b", b"a/b/c"]
    assert tree.subtree(b"a") == [b"a", b"a/b", b"a/b!x", b"a/b/c", b"a/b0"]  # (parents before children)
    assert tree.has_under(b"a/b") and not tree.has_under(b"a/b0") and not tree.has_under(b"a.txt")
    assert list(tree.drop(b"a/b")) == [b"a/b", b"a/b/c"]
    assert list(tree) == [b"a", b"a!", b"a.txt", b"a/b!x", b"a/b0", b"a0", b"ab"]
    assert not tree.holds(b"a/b") and tree.holds(b"a") and tree.holds(b"a0")


def test_a_move_takes_the_whole_range_and_keeps_inode_groups() -> None:
    tree = RemoteTree((b"x/%05d" % i, FILE) for i in range(2500))  # (more than one page of rows)
    tree[b"x"] = Entry("dir", 0o755, 0, 0)
    tree[b"xy"] = FILE
    tree.link(b"x/00001", b"x/00000")
    moved = list(tree.move(b"x", b"z/x"))
    assert moved[0] == (b"x", b"z/x") and len(moved) == 2501
    assert not tree.holds(b"x") and tree.subtree(b"z/x")[:2] == [b"z/x", b"z/x/00000"]
    assert len(tree.subtree(b"z/x")) == 2501 and b"xy" in tree
    assert tree.same_inode(b"z/x/00001", b"z/x/00000")


def test_names_are_one_inode_only_once_linked_and_stay_so_when_the_inode_changes() -> None:
    tree = RemoteTree({b"a": FILE, b"b": FILE})
    assert not tree.same_inode(b"a", b"b")  # (equal entries are not one inode)
    tree.link(b"b", b"a")
    tree.link(b"c", b"a")
    assert tree.same_inode(b"b", b"a") and tree.same_inode(b"c", b"b")
    tree[b"a"] = FILE.sized(99, 2)  # new content through one name: still the same inode
    assert tree.same_inode(b"a", b"b")
    list(tree.drop(b"b"))
    tree[b"b"] = FILE  # (created again: another inode)
    assert not tree.same_inode(b"a", b"b") and tree.same_inode(b"a", b"c")


def test_the_inode_index_takes_any_64_bit_number_and_finds_by_path() -> None:
    tree = RemoteTree()
    index = InodeIndex(tree.db)
    big = (2**64 - 1, 2**63 + 5)
    assert index.add(big, b"d/f") == b"d/f"
    assert index.add(big, b"d/g") == b"d/f"  # (indexed already: left as it is)
    index[(3, 4)] = b"d/sub/h"
    index[(3, 5)] = b"e"
    assert index.get(big) == b"d/f" and big in index and (9, 9) not in index
    assert sorted(index.under(b"d")) == [((3, 4), b"d/sub/h"), (big, b"d/f")]
    assert index.at(b"e") == [((3, 5), b"e")]
    del index[big]
    assert index.get(big) is None and len(index) == 2


_MEASURE = """
import os, resource, sys, time
from pathlib import Path
from twinsite.sync.planner import Planner, SigCache

def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

seq = iter(range(1, 10**9))
for root in sys.argv[1:]:
    p = Planner(Path(root), block_size=4096, next_seq=lambda: next(seq), now=time.time, fetch_sigs=lambda *a: b"")
    p.sigs = SigCache(1 << 20)  # (the kept signatures have their own cap, 32 MiB by default)
    for _ in p.plan_all():
        pass
    for _ in p.plan_all():  # (and compared again, as a restarted agent does)
        pass
    print(len(p.remote), round(peak_mib(), 1))
"""


def test_the_planners_memory_does_not_grow_with_the_tree(tmp_path: Path) -> None:
    """Planning 60,000 files peaks within 6 MiB of planning 10,000 (kept in memory, the picture cost about 690
    bytes a file: 34 MiB more)."""
    roots = []
    for name, files in (("small", 10_000), ("big", 60_000)):
        root = tmp_path / name
        for d in range(files // 1000):
            (root / f"d{d:03d}").mkdir(parents=True)
            for f in range(1000):
                (root / f"d{d:03d}" / f"file-{f:06d}.dat").write_bytes(b"x" * (f % 40))
        roots.append(str(root))
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {**os.environ, "PYTHONPATH": src}
    small, big = (
        subprocess.run(
            [sys.executable, "-c", textwrap.dedent(_MEASURE), root], env=env, check=True, capture_output=True, text=True
        ).stdout.split()
        for root in roots
    )
    assert (int(small[0]), int(big[0])) == (10_010, 60_060)  # (every file and directory is in the picture)
    assert float(big[1]) - float(small[1]) < 6, (small, big)


def test_a_full_filesystem_under_the_index_is_a_clear_error(tmp_path: Path) -> None:
    """The index spills past its cache to a file in SQLITE_TMPDIR: with no room there, the agent reports where
    and what to do (engine.sender turns the failure into this error), instead of an SQLite traceback."""
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)], check=True)
    code = """
import os, sqlite3, sys
from twinsite.sync.index import RemoteTree, failure
from twinsite.tree import Entry
tree = RemoteTree()
try:
    for i in range(400_000):
        tree[b"d/%07d" % i] = Entry("file", 0o644, 0, 0, i, i)
except sqlite3.Error as exc:
    print(failure(exc))
    sys.exit(3)
"""
    try:
        env = {
            **os.environ,
            "SQLITE_TMPDIR": str(small),
            "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src"),
        }
        got = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    finally:
        subprocess.run(["umount", str(small)], check=True)
    assert got.returncode == 3, got.stderr
    assert got.stdout.startswith(f"{small}: the planner's picture of the replica (a temporary SQLite database)")
    assert "full" in got.stdout and "what to do: free space there" in got.stdout


def test_a_listing_groups_the_names_of_one_inode_across_its_pages() -> None:
    """The standby's listing says which files share an inode, page by page (sync.manifest.shared): names on two
    pages are one group; the inodes seen are kept in the database, not in memory."""
    tree = RemoteTree({b"a": FILE, b"b": FILE, b"c": FILE, b"d": FILE})
    tree.group_by({b"a": 2**64 - 3})
    tree.group_by({b"b": 2**64 - 3, b"c": 8})
    assert tree.same_inode(b"a", b"b") and tree.shared(b"a") and tree.shared(b"b")
    assert not tree.same_inode(b"a", b"c") and not tree.shared(b"c") and not tree.shared(b"d")
    tree.link(b"e", b"c")  # (the planner's own groups never meet the listing's)
    assert tree.same_inode(b"e", b"c") and not tree.same_inode(b"e", b"a")


def test_a_kept_picture_comes_back_as_last_committed_with_its_stamp(tmp_path: Path) -> None:
    """What is committed with a stamp is what a later run gets back, groups and inodes included; what was
    changed after the last commit is not (a process killed between a change and its commit)."""
    path = tmp_path / "index.sqlite"
    tree = RemoteTree.fresh(path)
    tree[b"a"] = Entry("dir", 0o755, 0, 0)
    tree[b"a/f"] = FILE
    tree.link(b"a/g", b"a/f")
    InodeIndex(tree.db)[(2**64 - 1, 7)] = b"a/f"
    stamp = Stamp(seq=41, since_ns=1_700_000_000_000_000_000, identity="root-x")
    tree.commit(stamp)
    tree[b"a/late"] = FILE  # (never committed)
    del tree[b"a/f"]
    tree.db.close()  # (as a kill leaves it: the open transaction is lost)
    got = RemoteTree.kept(path)
    assert got is not None
    again, their = got
    assert their == stamp
    assert sorted(again) == [b"a", b"a/f", b"a/g"]
    assert again.same_inode(b"a/g", b"a/f")
    again.link(b"a/h", b"a")  # a new group after the kept ones, not one of theirs
    assert not again.same_inode(b"a/h", b"a/f")
    assert InodeIndex(again.db).get((2**64 - 1, 7)) == b"a/f"


def test_a_picture_without_a_stamp_is_not_taken_and_a_fresh_one_starts_empty(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite"
    assert RemoteTree.kept(path) is None  # (none kept)
    tree = RemoteTree.fresh(path)
    tree[b"x"] = FILE
    tree.commit(None)  # committed while a sync fills it: in step with nothing
    tree.close()
    assert RemoteTree.kept(path) is None
    tree = RemoteTree(path=path)
    tree.commit(Stamp(seq=1, since_ns=0, identity=""))
    tree.close()
    assert RemoteTree.kept(path) is not None
    fresh = RemoteTree.fresh(path)
    assert len(fresh) == 0
    fresh.close()
    assert RemoteTree.kept(path) is None


def test_a_stamp_of_another_layout_or_unreadable_is_none() -> None:
    assert Stamp.loads(Stamp(seq=3, since_ns=4, identity="i").dumps()) == Stamp(seq=3, since_ns=4, identity="i")
    assert Stamp.loads('{"seq": 3, "since_ns": 4, "identity": "i", "schema": 1}') is None
    assert Stamp.loads("not json") is None
    assert Stamp.loads('{"seq": "x"}') is None


def test_the_children_of_a_path_are_its_direct_names_whatever_sorts_between_them() -> None:
    """Names that sort between a directory and its own subtree ("a-b" before "a/x"), a path held without its
    parent, bytes that are not UTF-8: each child once, and nothing deeper."""
    d = Entry("dir", 0o755, 0, 0)
    held = [b"a", b"a/x", b"a/x/y", b"a-b", b"a-b/z", b"a.c", b"b", b"c/d/e", b"a/y", b"\xff", b"\xff/\x00q"]
    tree = RemoteTree(dict.fromkeys(held, d))
    assert sorted(tree.children(b"")) == [b"a", b"a-b", b"a.c", b"b", b"c", b"\xff"]
    assert list(tree.children(b"a")) == [b"a/x", b"a/y"]
    assert list(tree.children(b"a/x")) == [b"a/x/y"]
    assert list(tree.children(b"c")) == [b"c/d"]
    assert list(tree.children(b"\xff")) == [b"\xff/\x00q"]
    assert list(tree.children(b"b")) == list(tree.children(b"zz")) == []


class _NoWalConnection:
    """A stand-in for a connection on a filesystem where SQLite cannot keep a write-ahead log (it keeps the
    mode it had and answers with it): such a filesystem (no shared memory for the log's index) is not here."""

    def __init__(self, keeps: str) -> None:
        self.keeps, self.said = keeps, []

    def execute(self, sql: str) -> Any:
        self.said.append(sql)
        mode = self.keeps if sql == "PRAGMA journal_mode=WAL" else sql.rpartition("=")[2].lower()
        return type("Cursor", (), {"fetchone": lambda _self: (mode,)})()


def test_a_picture_that_cannot_have_a_log_gets_a_rollback_journal_or_an_error() -> None:
    """Commits stay atomic where a write-ahead log cannot be had: a rollback journal instead; and where not even
    that can be set, a clear failure rather than commits without a journal."""
    fell_back = _NoWalConnection("off")
    _journaled(fell_back)  # type: ignore[arg-type]
    assert fell_back.said == ["PRAGMA journal_mode=WAL", "PRAGMA journal_mode=DELETE", "PRAGMA synchronous=NORMAL"]
    stuck = _NoWalConnection("off")
    stuck.execute = lambda sql: type("Cursor", (), {"fetchone": lambda _self: ("off",)})()  # type: ignore[method-assign]
    with pytest.raises(sqlite3.OperationalError, match="cannot have a journal"):
        _journaled(stuck)  # type: ignore[arg-type]

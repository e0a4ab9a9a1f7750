"""The read-ahead of a whole-root walk (sync.ahead): the kernel reads what the planner will read next, and the
read-ahead opens nothing the planner would not (no link followed, nothing outside the root, nothing that blocks).

Residency is judged by util-linux's ``fincore`` (the kernel's page-cache residency of a file), not by our code.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from inotify_simple import INotify, flags

from harness.wait import eventually
from twinsite.sync import ahead
from twinsite.sync.ahead import ReadAhead
from twinsite.sync.planner import Planner


def resident(path: Path) -> int:
    """Bytes of ``path`` in the page cache, as fincore says."""
    out = subprocess.run(["fincore", "-b", "-n", "-o", "RES", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def evict(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def idle(ra: ReadAhead) -> bool:
    return not ra._running


def test_the_files_a_walk_enters_are_read_into_the_page_cache_before_the_planner_gets_there(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "d").mkdir(parents=True)
    files = [root / "d" / f"f{i}" for i in range(20)] + [root / "top"]
    for i, f in enumerate(files):
        f.write_bytes(os.urandom(20_000 + i))
    for f in files:
        evict(f)
    if any(resident(f) for f in files):
        pytest.skip("this filesystem keeps evicted pages (fincore sees them): residency cannot be judged here")
    ra = ReadAhead(os.fsencode(root))
    ra.directory(b"", [b"d", b"top"])
    ra.directory(b"d", [f.name.encode() for f in files[:-1]])
    assert eventually(
        lambda: all(resident(f) >= f.stat().st_size for f in files), timeout=5, what="the files resident"
    ), [resident(f) for f in files]
    assert eventually(lambda: idle(ra), timeout=5, what="the read-ahead idle")
    assert ra.advised == len(files)  # the directory "d" is not a file: not advised


def test_no_more_than_its_depth_ahead_of_the_walk_and_it_lets_go_of_a_walk_that_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ahead, "STALL_S", 0.2)
    names = [f"f{i}".encode() for i in range(40)]
    for n in names:
        (tmp_path / n.decode()).write_bytes(b"x" * 100)
    ra = ReadAhead(os.fsencode(tmp_path), depth=8)
    ra.directory(b"", names)
    assert eventually(lambda: ra.advised == 8, timeout=5, what="8 files advised")
    time.sleep(0.1)
    assert ra.advised == 8  # waits for the walk
    for _ in range(6):
        ra.passed()
    assert eventually(lambda: ra.advised == 14, timeout=5, what="14 files advised")
    assert eventually(
        lambda: idle(ra), timeout=3, what="the stopped walk let go"
    )  # nothing passed for STALL_S: the rest is forgotten
    assert ra.advised == 14
    ra.directory(b"", names[:3])  # a new walk starts afresh
    assert eventually(lambda: ra.advised == 17, timeout=5, what="17 files advised")


def test_it_opens_nothing_outside_the_root_and_never_blocks_on_a_fifo(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret").write_bytes(b"s" * 5000)
    (root / "dirlink").symlink_to(outside)  # a directory swapped for a link
    (root / "filelink").symlink_to(outside / "secret")
    os.mkfifo(root / "fifo")
    (root / "plain").write_bytes(b"p" * 5000)
    watch = INotify()
    watch.add_watch(str(outside), flags.OPEN)
    ra = ReadAhead(os.fsencode(root))
    ra.directory(b"", [b"dirlink", b"fifo", b"filelink", b"plain"])
    ra.directory(b"dirlink", [b"secret"])  # (what a walk fooled by the swap would hand it)
    assert eventually(lambda: idle(ra), timeout=5, what="the read-ahead idle")
    assert ra.advised == 1  # "plain" only
    assert watch.read(timeout=100) == []  # nothing under "outside" was opened


def test_a_missing_root_is_no_error_and_a_later_walk_still_reads_ahead(tmp_path: Path) -> None:
    ra = ReadAhead(os.fsencode(tmp_path / "gone"))
    ra.directory(b"", [b"a"])
    assert eventually(lambda: idle(ra), timeout=5, what="the read-ahead idle")
    assert ra.advised == 0
    ra.base = os.fsencode(tmp_path)
    (tmp_path / "a").write_bytes(b"a")
    ra.directory(b"", [b"a"])
    assert eventually(lambda: ra.advised == 1, timeout=5, what="1 files advised")


def test_the_planner_reads_ahead_while_it_walks_and_plans_the_same(tmp_path: Path) -> None:
    root = tmp_path / "root"
    for d in range(3):
        (root / f"d{d}").mkdir(parents=True)
        for i in range(30):
            (root / f"d{d}" / f"f{i}").write_bytes(os.urandom(3000))
    seq = iter(range(1, 10**6))
    planner = Planner(root, block_size=4096, next_seq=lambda: next(seq), now=time.time, fetch_sigs=lambda *a: b"")
    records = list(planner.plan_all())
    assert eventually(lambda: idle(planner.ahead), timeout=5, what="the read-ahead idle")
    assert planner.ahead.advised == 90
    created = sorted(r.path for r in records if r.op.name == "CREATE")
    assert created == sorted(f"d{d}/f{i}".encode() for d in range(3) for i in range(30))

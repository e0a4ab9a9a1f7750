"""Real inotify capture while a workload runs: planning what capture reports converges on the source, byte exact."""

from __future__ import annotations

import os
import random
import shutil
import threading
import time
from pathlib import Path

import pytest

from tests.fsops import mutate, populate
from tests.unit.replicating import Pipe
from twinsite.capture.inotify import Watcher
from twinsite.proc import wait_until


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_capture_under_a_concurrent_workload_converges(tmp_path: Path, seed: int) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    populate(src, random.Random(seed), files=300)
    watcher = Watcher(src)  # capture starts before the initial sync
    reader = threading.Thread(target=watcher.run, daemon=True)
    reader.start()
    pipe = Pipe(src, dst)
    pipe.ship(list(pipe.planner.plan_all()))
    stop = threading.Event()

    def workload() -> None:
        rng = random.Random(seed + 100)
        while not stop.is_set():
            mutate(src, rng, ops=20)
            time.sleep(0.005)

    writer = threading.Thread(target=workload)
    writer.start()
    try:
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            watcher.wake.wait(0.2)
            pipe.ship(list(watcher.take().plan(pipe.planner)))
    finally:
        stop.set()
        writer.join()
    # the last events drain: the reader ends once it has read what it held, and what is still queued is read here
    watcher.stop()
    wait_until(lambda: not reader.is_alive(), timeout=5, what="the capture thread ending")
    while watcher.read(timeout_ms=0):
        pass
    pipe.ship(list(watcher.take().plan(pipe.planner)))
    watcher.close()
    assert watcher.events > 1000
    assert watcher.overflows == 0
    # The engine's periodic rescan (replication.rescan_interval) is part of continuous mode: it covers what
    # capture cannot see. Under this deliberately hostile workload (renames of directories while files are
    # created in them, hard links renamed over each other) it occasionally still finds a few paths: none on
    # a quiet machine, 25 once in CI with the lab's agents busy beside it. One cause was found and fixed (a
    # write through a hard link removed before it was planned: the test below); see the known gaps in
    # docs/replication.md. The bound scales with the activity: at most 0.5% of the events.
    pipe.settled()  # (files read while they were written are read again: that is not a gap of capture)
    rescan = list(pipe.planner.plan_all())
    pipe.ship(rescan)
    bound = max(20, watcher.events // 200)
    assert len(rescan) <= bound, f"the rescan had to repair {len(rescan)} records of {watcher.events} events"
    pipe.same()


def test_queue_overflow_turns_into_a_full_comparison(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    populate(src, random.Random(9), files=50)
    watcher = Watcher(src)
    pipe = Pipe(src, dst)
    pipe.ship(list(pipe.planner.plan_all()))
    max_events = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    for i in range(max_events // 2 + 100):  # two events each (create, close_write): more than the queue holds
        (src / f"burst{i % 5000}").write_bytes(b"x")
    while watcher.read(timeout_ms=100):
        pass
    assert watcher.overflows >= 1
    changes = watcher.take()
    assert changes.full  # a verified rescan, not a silent loss
    pipe.ship(list(changes.plan(pipe.planner)))
    watcher.close()
    pipe.same()


def test_a_write_through_a_hard_link_removed_before_it_is_planned_reaches_the_other_name(tmp_path: Path) -> None:
    """inotify reports a write under the name it went through only. A second name made for a file, written
    through and removed again before the planner looks (seen in the lab's kill -9 test: the replica kept the old
    bytes of `f98316`) left no trace of the write on the name that remains. Capture notes the file behind a name
    with other names when it sees the event; the planner then compares the names that remain."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    (src / "keep").write_bytes(b"before" * 100)
    watcher = Watcher(src)
    pipe = Pipe(src, dst)
    pipe.ship(list(pipe.planner.plan_all()))
    os.link(src / "keep", src / "twin")
    with open(src / "twin", "r+b") as f:  # the write goes through the second name
        f.write(b"AFTER!")
    watcher.read(timeout_ms=100)  # (capture reads the events at once, while the name is there)
    os.unlink(src / "twin")
    watcher.read(timeout_ms=100)
    pipe.ship(list(watcher.take().plan(pipe.planner)))
    watcher.close()
    assert (dst / "keep").read_bytes() == (src / "keep").read_bytes()
    assert not (dst / "twin").exists()
    pipe.same()


@pytest.mark.parametrize("how", ["deleted", "moved away"])
def test_a_root_removed_and_made_again_is_watched_again_and_compared_whole(tmp_path: Path, how: str) -> None:
    """Seen in the lab (bench site): a root deleted and made again under a running agent (a directory restored
    from a backup) lost its only watches, so nothing written in it afterwards reached the standby, while the
    sender said it was replicating with everything acknowledged."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    (src / "sub").mkdir()
    (src / "old").write_bytes(b"before")
    pipe = Pipe(src, dst)
    pipe.ship(list(pipe.planner.plan_all()))
    watcher = Watcher(src)
    if how == "deleted":
        shutil.rmtree(src)
    else:
        os.rename(src, tmp_path / "elsewhere")
    watcher.read(timeout_ms=100)
    pipe.ship(list(watcher.take().plan(pipe.planner)))
    assert not (dst / "old").exists()  # (what the source did: its files are gone)
    src.mkdir()
    (src / "restored").write_bytes(b"made in the new root before capture saw it")
    for _ in range(3):  # (the new root is found within a read or two)
        watcher.read(timeout_ms=100)
    pipe.ship(list(watcher.take().plan(pipe.planner)))
    (src / "sub2").mkdir()
    watcher.read(timeout_ms=100)
    (src / "sub2" / "later").write_bytes(b"made once the new root is watched")
    watcher.read(timeout_ms=100)
    pipe.ship(list(watcher.take().plan(pipe.planner)))
    if how == "moved away":  # the moved tree is not the root any more: nothing done there is taken for it
        (tmp_path / "elsewhere" / "not-ours").write_bytes(b"x")
        watcher.read(timeout_ms=100)
        assert not watcher.take().dirty
    watcher.close()
    assert (dst / "restored").read_bytes() == b"made in the new root before capture saw it"
    assert (dst / "sub2" / "later").read_bytes() == b"made once the new root is watched"
    pipe.same()


def test_a_directory_made_and_moved_before_capture_reads_it_is_watched_at_its_new_name(tmp_path: Path) -> None:
    """Seen in the lab's two-standby test: a directory made and renamed within one read of the events had no
    watch (its CREATE came when the name was gone already), so files made in it afterwards never reached the
    standbys, until a rescan."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    watcher = Watcher(src)
    pipe = Pipe(src, dst)
    (src / "made").mkdir()
    (src / "made" / "inner").mkdir()
    os.rename(src / "made", src / "moved")  # before capture reads the CREATE
    watcher.read(timeout_ms=100)
    pipe.ship(list(watcher.take().plan(pipe.planner)))
    (src / "moved" / "later").write_bytes(b"made after the move")
    (src / "moved" / "inner" / "deeper").write_bytes(b"and one level down")
    watcher.read(timeout_ms=100)
    pipe.ship(list(watcher.take().plan(pipe.planner)))
    watcher.close()
    assert (dst / "moved" / "later").read_bytes() == b"made after the move"
    assert (dst / "moved" / "inner" / "deeper").read_bytes() == b"and one level down"
    pipe.same()

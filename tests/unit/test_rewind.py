"""The rewind log and rewinding: real files, every point reproduced, interrupted moves resume, retention."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from harness.cli import twinsite_cmd
from tests.fsops import mutate, populate
from tests.unit.replicating import Pipe, apply_all, captured
from tests.unit.test_status import NOW, Site
from twinsite.apply.applier import Applier
from twinsite.apply.batching import cut
from twinsite.cdp.log import RewindLog, make_group
from twinsite.cdp.rewind import RUN_BYTES, go_live, move, points, resolve_seq, resolve_time, rewind_to, settle
from twinsite.cdp.undo import capture
from twinsite.errors import JournalError, RewindError
from twinsite.journal.record import Op, Record
from twinsite.locks import held
from twinsite.state import rewind
from twinsite.state.applied import AppliedFile
from twinsite.state.layout import ReceiverState
from twinsite.tree import digest


def recv(tmp_path: Path) -> ReceiverState:
    """The receiver's state of the replicas made here."""
    return ReceiverState(tmp_path / "state")


def replicate_with_log(tmp_path: Path, seed: int, rounds: int) -> tuple[Path, Path, RewindLog, dict[int, str]]:
    """A replica fed batch by batch like the receiver does with CDP on: the group (records and their undo)
    is appended to the rewind log before the batch is applied. Returns the source's digest at points."""
    rng = random.Random(seed)
    src, dst = tmp_path / "src", tmp_path / "dst"
    populate(src, rng, files=50)
    pipe = Pipe(src, dst, writers=False)  # (digests of the source at points: exact)
    pipe.ship(list(pipe.planner.plan_all()))
    log = RewindLog(recv(tmp_path).rewind_log, segment_size=200_000)
    ap = Applier(dst)
    at_points = {pipe.seq: digest(src)}
    for _ in range(rounds):
        recs = list(captured(mutate(src, rng, ops=25)).plan(pipe.planner))
        for batch in cut(recs, limit=rng.choice([7, 30])):
            log.append(make_group(batch, capture(ap.root_fd, batch)))
            apply_all(ap, batch)
        at_points[log.last_seq] = digest(src)
    ap.close()
    return src, dst, log, at_points


# runs of whole groups: everything in one run, or a few groups per run (runs end between groups)
RUNS = pytest.mark.parametrize("run_bytes", [RUN_BYTES, 4000], ids=["one-run", "small-runs"])


@RUNS
def test_moving_to_20_random_points_back_and_forth_reproduces_each_and_ends_at_the_head(
    tmp_path: Path, run_bytes: int
) -> None:
    src, dst, log, at_points = replicate_with_log(tmp_path, seed=11, rounds=20)
    head = log.last_seq
    assert len(log.segments()) > 1
    rng = random.Random(3)
    for target in rng.sample(sorted(at_points), 20):
        pos = move(dst, recv(tmp_path), log, head, target, run_bytes=run_bytes)
        assert digest(dst) == at_points[target], f"at seq {target}"
        assert (rewind.read(recv(tmp_path).rewind) is not None) == (
            target != head
        )  # marked rewound until back at the head
        assert pos.at == target
    move(dst, recv(tmp_path), log, head, head)
    assert digest(dst) == digest(src)
    assert rewind.read(recv(tmp_path).rewind) is None


@RUNS
def test_an_interrupted_move_resumes_and_ends_in_the_same_state(tmp_path: Path, run_bytes: int) -> None:
    _src, dst, log, at_points = replicate_with_log(tmp_path, seed=5, rounds=8)
    head = log.last_seq
    rng = random.Random(9)
    seqs = sorted(at_points)
    at, crashes = head, 0
    for _ in range(8):
        target = rng.choice([s for s in seqs if s != at])
        steps = {"n": 0, "crash_at": rng.randrange(1, 4)}

        def crash(_pos: object, steps: dict[str, int] = steps) -> None:
            steps["n"] += 1
            if steps["n"] == steps["crash_at"]:
                raise KeyboardInterrupt  # stands for kill -9: the position on disk is all that is left

        try:
            move(dst, recv(tmp_path), log, head, target, on_step=crash, run_bytes=run_bytes)
        except KeyboardInterrupt:
            crashes += 1
            other = rng.choice(seqs)  # the operator may even change their mind before running it again
            move(dst, recv(tmp_path), log, head, other, run_bytes=run_bytes)
            assert digest(dst) == at_points[other]
            move(dst, recv(tmp_path), log, head, target, run_bytes=run_bytes)
        assert digest(dst) == at_points[target]
        at = target
    assert crashes >= 4


def test_replaying_any_sub_batch_of_a_rewind_from_any_point_gives_the_same_tree(tmp_path: Path) -> None:
    """A rewind's sub-batches (undo records of many groups, cut with DELETE free) survive a crash anywhere:
    replaying the sub-batch from its start on whatever part of it took effect ends in the same tree."""
    _src, dst, log, at_points = replicate_with_log(tmp_path, seed=8, rounds=4)
    oldest = points(log, log.last_seq)[0][0]
    undo = [r for g in log.newest_first(above=oldest) for r in g.undo_records()]
    batches = cut(undo, deletes_free=True)
    assert len(batches) < len(cut(undo)) and any(r.op == Op.DELETE for r in undo)

    def copy(a: Path, b: Path) -> Path:
        shutil.rmtree(b, ignore_errors=True)
        subprocess.run(["cp", "-a", str(a), str(b)], check=True)  # keeps hard links, xattrs, times
        return b

    ref = copy(dst, tmp_path / "ref")
    apply_all(ap := Applier(ref), undo)
    ap.close()
    assert digest(ref) == at_points[oldest]
    before = copy(dst, tmp_path / "before")  # the tree at the start of sub-batch bi
    replays = 0
    for bi, batch in enumerate(batches):
        for crash in range(1, len(batch) + 1):
            work = copy(before, tmp_path / "work")
            ap = Applier(work)
            for r in batch[:crash]:
                ap.apply(r)  # then the crash, before the position was stored
            apply_all(ap, [r for b in batches[bi:] for r in b])
            ap.close()
            assert digest(work) == digest(ref), f"sub-batch {bi}, crash after {crash} records"
            replays += 1
        apply_all(ap := Applier(before), batch)
        ap.close()
    assert replays == len(undo)


def test_points_times_and_the_window(tmp_path: Path) -> None:
    _src, _dst, log, at_points = replicate_with_log(tmp_path, seed=2, rounds=3)
    head = log.last_seq
    pts = points(log, head)
    assert set(at_points) <= {s for s, _ in pts}
    assert pts[-1][0] == head
    mid = pts[len(pts) // 2]
    assert resolve_seq(log, head, mid[0] + 0) == mid[0]
    assert resolve_time(log, head, mid[1]) >= mid[0]
    with pytest.raises(RewindError, match=f"back to seq {pts[0][0]} and forward to seq {head}"):
        resolve_seq(log, head, pts[0][0] - 1)
    with pytest.raises(RewindError, match="outside the rewind window"):
        resolve_time(log, head, pts[0][1] - 3600)
    with pytest.raises(RewindError):
        move(_dst, recv(tmp_path), log, head, head + 1)


def test_retention_prunes_oldest_segments_by_size_and_age_but_never_what_a_rewind_needs(tmp_path: Path) -> None:
    _src, _dst, log, _ = replicate_with_log(tmp_path, seed=4, rounds=10)
    before = log.segments()
    assert len(before) >= 4
    size = log.disk_bytes()
    pinned = next(log.groups()).last_seq  # a rewind at the oldest group's end needs everything above it
    assert log.prune(max_age=None, max_size=0, keep_above=pinned) == 0
    freed = log.prune(max_age=None, max_size=size // 2)
    assert freed > 0 and log.disk_bytes() <= size // 2 + before[-1].stat().st_size
    assert log.segments() == before[len(before) - len(log.segments()) :]  # oldest first
    assert log.prune(max_age=0.0, max_size=None) > 0
    assert len(log.segments()) == 1  # the newest stays
    assert points(log, log.last_seq)[0][0] >= pinned


def test_a_torn_append_is_dropped_and_corruption_inside_is_refused(tmp_path: Path) -> None:
    _src, _dst, log, _ = replicate_with_log(tmp_path, seed=6, rounds=2)
    log.close()
    last = log.segments()[-1]
    whole = last.read_bytes()
    groups = list(log.groups())
    last.write_bytes(whole + groups[-1].encode()[:50])  # a crash in the middle of an append
    reopened = RewindLog(log.dir)
    assert reopened.dropped_tail == 50 and reopened.last_seq == groups[-1].last_seq
    assert len([g for g in groups if g.segment == last.name]) >= 2
    damaged = bytearray(whole)
    damaged[60] ^= 0x10  # inside the segment's first group, with whole groups after it
    last.write_bytes(bytes(damaged))
    with pytest.raises(JournalError, match="corrupt rewind log"):
        RewindLog(log.dir)


def test_headers_are_read_without_the_blobs_and_a_damaged_older_segment_is_refused(tmp_path: Path) -> None:
    _src, _dst, log, _ = replicate_with_log(tmp_path, seed=12, rounds=4)
    log.close()
    groups = list(log.groups())
    assert [(h.first_seq, h.last_seq, h.ts_first, h.ts_last) for h in log.heads()] == [
        (g.first_seq, g.last_seq, g.ts_first, g.ts_last) for g in groups
    ]
    segs = log.segments()
    assert len(segs) >= 2
    newest = segs[-1].read_bytes()
    segs[-1].write_bytes(newest + groups[-1].encode()[:90])  # a group being appended: the list ends before it
    assert list(log.heads())[-1].last_seq == groups[-1].last_seq
    oldest = segs[0].read_bytes()
    segs[0].write_bytes(oldest[:-7])  # an older segment cut inside its last group
    with pytest.raises(JournalError, match="ends inside a group"):
        list(log.heads())
    segs[0].write_bytes(oldest[:4] + b"\xff" * 8 + oldest[12:])  # a header's seq overwritten: first > last
    with pytest.raises(JournalError, match="bad group header at byte 0"):
        points(log, log.last_seq)


def test_settling_a_rewound_replica_makes_its_point_the_applied_position(tmp_path: Path) -> None:
    """A switchover to rewound data: the replica stays at its point, which becomes the applied position (seq and
    source time); the rewound state goes. An unfinished move is refused; settling again changes nothing."""
    _src, dst, log, at_points = replicate_with_log(tmp_path, seed=7, rounds=6)
    head = log.last_seq
    applied = AppliedFile(recv(tmp_path).applied)
    applied.write(head, 1.0, 3)
    assert settle(recv(tmp_path)) is None  # not rewound: nothing to do
    target = sorted(at_points)[2]

    def crash(_pos: object) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        move(dst, recv(tmp_path), log, head, target, on_step=crash, run_bytes=4000)
    with pytest.raises(RewindError, match=f"to seq {target} is unfinished"):
        settle(recv(tmp_path))
    move(dst, recv(tmp_path), log, head, target)
    when = dict(points(log, head))[target]
    assert settle(recv(tmp_path)) == (target, when)
    assert rewind.read(recv(tmp_path).rewind) is None
    pos = applied.position()
    assert (pos.seq, pos.ts, pos.epoch) == (target, when, 3)
    assert digest(dst) == at_points[target]  # the data did not move
    assert settle(recv(tmp_path)) is None
    assert applied.position().seq == target
    applied.close()


def test_going_live_at_a_point_drops_every_later_group_across_segments_and_the_log_goes_on(tmp_path: Path) -> None:
    """A switchover to a rewound replica keeps the log up to the promoted point (its history) and nothing
    after it, in the newest segment kept and in every later one; the log reopens there and takes new groups."""
    _src, dst, log, at_points = replicate_with_log(tmp_path, seed=8, rounds=10)
    head = log.last_seq
    assert len(log.segments()) >= 4
    target = next(s for s, _ in points(log, head) if s in at_points and s > next(log.heads()).last_seq)
    kept = [h for h in log.heads() if h.last_seq <= target]
    move(dst, recv(tmp_path), log, head, target)
    log.close()
    applied = AppliedFile(recv(tmp_path).applied)
    applied.write(head, 1.0)
    settle(recv(tmp_path))
    go_live(recv(tmp_path))
    again = RewindLog(recv(tmp_path).rewind_log, segment_size=200_000)
    assert again.last_seq == target and list(again.heads()) == kept
    assert [g.last_seq for g in again.groups()] == [h.last_seq for h in kept]  # (whole, checksummed groups)
    inside = next(h for h in kept if h.first_seq < h.last_seq)
    with pytest.raises(JournalError, match=f"no group ending at seq {inside.first_seq}"):
        again.drop_above(inside.first_seq)  # (between two records of one group: refused, nothing removed)
    assert list(again.heads()) == kept
    oldest = kept[0].first_seq - 1
    move(dst, recv(tmp_path), again, target, oldest)  # the history below is still there
    assert digest(dst) == at_points[oldest]
    applied.close()
    again.close()


def test_a_rewind_asked_for_during_a_batch_starts_where_that_batch_ends(tmp_path: Path) -> None:
    """`twinsite rewind` while the receiver applies a batch (it holds the apply lock): the rewind marks the
    replica rewound, waits for the lock, and moves from the head as that batch left it. (Moving from the head
    read before left the batch's changes over the rewound point: a PostgreSQL control file from after its
    WAL, found by the drill.)"""
    _src, dst, log, at_points = replicate_with_log(tmp_path, seed=11, rounds=3)
    first, before, head = sorted(at_points)[0], sorted(at_points)[-2], log.last_seq
    state = recv(tmp_path)
    move(dst, state, log, head, before)  # the replica as it was before the last round's batches
    rewind.store(state.rewind, None)
    positions = AppliedFile(state.applied)
    positions.write(before, 1.0)
    locked, done = threading.Event(), threading.Event()

    def receiver() -> None:
        """A batch: under the apply lock, the last round applied (as the receiver re-applies what the log holds
        above its position), then the position; it began before the rewind marked the replica."""
        with held(state.apply_lock):
            locked.set()
            while rewind.read(state.rewind) is None:  # (the rewind has asked; it waits for the lock now)
                time.sleep(0.01)
            other = ReceiverState(tmp_path / "receiver")
            rewind.store(other.rewind, rewind.RewindPosition(head=head, at=before, target=head))
            move(dst, other, log, head, head)
            positions.write(head, 2.0)
        done.set()

    t = threading.Thread(target=receiver)
    t.start()
    locked.wait(10)
    got = rewind_to(dst, state, lambda h: resolve_seq(log, h, first))
    t.join(10)
    positions.close()
    assert done.is_set() and got == (head, head, first)
    assert digest(dst) == at_points[first]  # the whole way back, the batch applied meanwhile included
    pos = rewind.read(state.rewind)
    assert pos is not None and (pos.head, pos.at, pos.target, pos.sub) == (head, first, first, 0)


def test_reading_the_points_beside_the_receiver_never_cuts_the_group_it_is_appending(tmp_path: Path) -> None:
    """`twinsite rewind-points` and `bookmark` (and a rewind choosing its target) read the rewind log while the
    receiver may be appending a group to it. The group's first bytes, as they stand mid-append, are left as they
    are: opening the log for writing would cut them as a torn tail, and the receiver's append would go on past
    the cut (the drill then found 'corrupt rewind log: bad group header')."""
    site = Site(tmp_path)
    site.standby()
    log_dir = site.place.receiver(0).rewind_log
    other = RewindLog(tmp_path / "other")
    other.append(make_group([Record(31, NOW, Op.WRITE, b"f", data=b"y" * 5000)], [Record(31, NOW, Op.TRUNCATE, b"f")]))
    other.close()
    [whole] = other.segments()
    [seg] = RewindLog(log_dir, readonly=True).segments()
    appending = whole.read_bytes()[: whole.stat().st_size // 2]
    with open(seg, "ab") as f:
        f.write(appending)
    size = seg.stat().st_size
    dirs = ("--config-dir", str(site.config), "--state-dir", str(site.state), "--json")
    listed = twinsite_cmd("rewind-points", "app", *dirs)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert json.loads(listed.stdout)["result"]["newest"]["seq"] == 30  # (the group being appended is not a point)
    assert twinsite_cmd("bookmark", "app", "after-upgrade", *dirs).returncode == 0
    assert seg.stat().st_size == size and seg.read_bytes().endswith(appending)

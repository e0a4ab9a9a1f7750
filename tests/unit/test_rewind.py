"""The rewind log and rewinding: real files, every point reproduced, interrupted moves resume, retention."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.fsops import mutate, populate
from tests.unit.test_apply import Pipe, captured
from tests.unit.test_undo import apply_all
from twinsite.apply.applier import Applier
from twinsite.apply.batching import cut
from twinsite.cdp.log import RewindLog, make_group
from twinsite.cdp.rewind import RewindError, move, points, read_position, resolve_seq, resolve_time
from twinsite.cdp.undo import capture
from twinsite.journal.segments import JournalError
from twinsite.tree import digest


def replicate_with_log(tmp_path: Path, seed: int, rounds: int) -> tuple[Path, Path, RewindLog, dict[int, str]]:
    """A replica fed batch by batch like the receiver does with CDP on: the group (records and their undo)
    is appended to the rewind log before the batch is applied. Returns the source's digest at points."""
    rng = random.Random(seed)
    src, dst = tmp_path / "src", tmp_path / "dst"
    populate(src, rng, files=50)
    pipe = Pipe(src, dst)
    pipe.ship(list(pipe.planner.plan_all()))
    log = RewindLog(tmp_path / "state" / "rewind", segment_size=200_000)
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


def test_moving_to_20_random_points_back_and_forth_reproduces_each_and_ends_at_the_head(tmp_path: Path) -> None:
    src, dst, log, at_points = replicate_with_log(tmp_path, seed=11, rounds=20)
    head = log.last_seq
    assert len(log.segments()) > 1
    rng = random.Random(3)
    for target in rng.sample(sorted(at_points), 20):
        pos = move(dst, log, head, target)
        assert digest(dst) == at_points[target], f"at seq {target}"
        assert (read_position(log.dir) is not None) == (target != head)  # marked rewound until back at the head
        assert pos.at == target
    move(dst, log, head, head)
    assert digest(dst) == digest(src)
    assert read_position(log.dir) is None


def test_an_interrupted_move_resumes_and_ends_in_the_same_state(tmp_path: Path) -> None:
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
            move(dst, log, head, target, on_step=crash)
        except KeyboardInterrupt:
            crashes += 1
            other = rng.choice(seqs)  # the operator may even change their mind before running it again
            move(dst, log, head, other)
            assert digest(dst) == at_points[other]
            move(dst, log, head, target)
        assert digest(dst) == at_points[target]
        at = target
    assert crashes >= 4


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
        move(_dst, log, head, head + 1)


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

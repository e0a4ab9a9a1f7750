"""A restart's comparison of only what changed since the kept picture (sync.since): after a random workload of
every kind of change (files made again at their names, hard links, renamed and removed directories, a
directory moved in from outside the root with its old times, another directory put where one was), planning
just the paths it names leaves the replica equal to the source byte for byte, with no record that finds nothing
to act on, while comparing fewer paths than the tree holds."""

from __future__ import annotations

import random
import shutil
import time
from pathlib import Path

import pytest

from tests.fsops import mutate, populate
from tests.unit.replicating import Pipe
from twinsite.sync import since as since_mod
from twinsite.sync.since import changed_since


@pytest.mark.parametrize("seed", range(12))
def test_planning_what_changed_since_leaves_the_replica_equal(
    tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (no margin: the changes are made 50 ms after the moment, far more than the coarse clock lags)
    monkeypatch.setattr(since_mod, "MARGIN_NS", 0)
    rng = random.Random(seed)
    src, dst, outside = tmp_path / "src", tmp_path / "dst", tmp_path / "outside"
    populate(src, rng, files=400)
    populate(outside / "moved", random.Random(seed + 1000), files=15)
    populate(outside / "other", random.Random(seed + 2000), files=10)
    dst.mkdir()
    pipe = Pipe(src, dst, writers=False)
    pipe.ship(list(pipe.planner.plan_all()))
    pipe.same()
    total = sum(1 for _ in src.rglob("*"))
    moment = time.time_ns()
    time.sleep(0.05)
    mutate(src, rng, 30, remakes=True)
    (outside / "moved").rename(src / "moved-in")
    dirs = sorted(p for p in src.iterdir() if p.is_dir() and p.name != "moved-in")
    if dirs:
        victim = dirs[rng.randrange(len(dirs))]
        shutil.rmtree(victim)  # (not moved out: names outside the root would still count as links)
        (outside / "other").rename(victim)
    paths = list(changed_since(pipe.planner, moment))
    for rel in paths:
        pipe.ship(list(pipe.planner.plan_path(rel)))
    assert pipe.resyncs == 0
    pipe.same()
    assert len(set(paths)) < total
    # nothing else differs: a comparison of everything now finds nothing to do
    assert list(pipe.planner.plan_all()) == []


def test_nothing_changed_is_nothing_compared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(since_mod, "MARGIN_NS", 0)
    src, dst = tmp_path / "src", tmp_path / "dst"
    populate(src, random.Random(1), files=100)
    dst.mkdir()
    pipe = Pipe(src, dst, writers=False)
    pipe.ship(list(pipe.planner.plan_all()))
    time.sleep(0.05)
    assert list(changed_since(pipe.planner, time.time_ns())) == []

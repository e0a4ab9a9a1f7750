"""Undo records (the rewind log's content): after any batch, applying its undo gives back the tree before it.

Real files: a mixed workload (creates, writes at random offsets, truncates, renames of files and
directories, deletes, hard links, symlinks, chmod, xattrs, odd names) is planned into records, cut into
batches the way the sender cuts them, and applied; the undo of each batch is captured first. Rewinding to
points in random order, back and forth (undo newest first, redo by applying the batches again), must
reproduce each point's tree digest exactly.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.fsops import mutate, populate
from tests.unit.replicating import Pipe, apply_all, captured
from twinsite.apply.applier import Applier
from twinsite.apply.batching import cut
from twinsite.cdp.undo import capture
from twinsite.journal.record import Meta, Op, Record
from twinsite.tree import differences, digest, entries


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rewinding_to_random_points_back_and_forth_reproduces_each_digest(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    src, dst = tmp_path / "src", tmp_path / "dst"
    populate(src, rng, files=60)
    pipe = Pipe(src, dst, writers=False)  # (digests of the source at points: exact)
    pipe.ship(list(pipe.planner.plan_all()))
    # the stream from here on, batch by batch, each with its undo captured before it is applied
    ap = Applier(dst)
    # points[n]: the source's digest when n batches were applied, at the end of a change set (a state the
    # source was in; inside a change set a file may have its data and not yet its attributes)
    points = {0: digest(src)}
    log: list[tuple[list[Record], list[Record]]] = []
    for _ in range(20):
        recs = list(captured(mutate(src, rng, ops=30)).plan(pipe.planner))
        for batch in cut(recs, limit=rng.choice([5, 20, 64])):
            undo = capture(ap.root_fd, batch)
            apply_all(ap, batch)
            log.append((batch, undo))
        points[len(log)] = digest(src)
    assert digest(dst) == digest(src)
    assert len(set(points.values())) == 21  # the workload really changed the tree at every point
    at = len(log)
    targets = rng.sample(sorted(points), 20)
    for target in [*targets, len(log)]:  # ... and back to the head at the end
        while at > target:  # rewind: undo newest first
            at -= 1
            apply_all(ap, log[at][1])
        while at < target:  # forward again: the batches themselves
            apply_all(ap, log[at][0])
            at += 1
        assert digest(dst) == points[target], f"rewound to point {target}"
    assert differences(entries(src), entries(dst)) == []
    ap.close()


def meta(mode: int = 0o644) -> Meta:
    return Meta(mode, 0, 0, 1_600_000_000_000_000_000)


def r(op: Op, path: bytes, **kw: object) -> Record:
    return Record(seq=1, ts=0.0, op=op, path=path, **kw)  # type: ignore[arg-type]


HAND_MADE = {
    "delete a tree with a hard link pair and a symlink inside": [r(Op.DELETE, b"d")],
    "rename over a directory": [r(Op.RENAME, b"a", path2=b"d")],
    "create over a file, into a missing parent": [r(Op.CREATE, b"x/y/a", meta=meta()), r(Op.CREATE, b"b", meta=meta())],
    "truncate to zero then write": [r(Op.TRUNCATE, b"a", offset=0), r(Op.WRITE, b"a", offset=3, data=b"new")],
    "extend with a hole, then chmod": [
        r(Op.WRITE, b"a", offset=1 << 20, data=b"far"),
        r(Op.SETATTR, b"a", meta=meta(0o600)),
    ],
    "rename a file onto another name of itself": [r(Op.RENAME, b"d/h1", path2=b"d/h2")],
    "rename a directory, then write into it": [
        r(Op.RENAME, b"d", path2=b"e"),
        r(Op.WRITE, b"e/f", offset=0, data=b"changed"),
        r(Op.TRUNCATE, b"e/f", offset=2),
    ],
    "mkdir over an existing directory": [r(Op.MKDIR, b"d", meta=meta(0o700))],
}


def _start(root: Path) -> None:
    (root / "d" / "sub").mkdir(parents=True)
    (root / "a").write_bytes(b"old-a" * 1000)
    (root / "b").write_bytes(b"old-b")
    (root / "d" / "f").write_bytes(b"old-f")
    (root / "d" / "h1").write_bytes(b"linked")
    (root / "d" / "h2").hardlink_to(root / "d" / "h1")
    (root / "d" / "sub" / "l").symlink_to("../nowhere")
    (root / "d" / "sub" / "s").write_bytes(b"\0" * 100_000 + b"tail")


@pytest.mark.parametrize("name", sorted(HAND_MADE))
def test_the_undo_of_each_kind_of_destruction_restores_the_tree(tmp_path: Path, name: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    _start(root)
    before = digest(root)
    ap = Applier(root)
    undo = capture(ap.root_fd, HAND_MADE[name])
    apply_all(ap, HAND_MADE[name])
    assert digest(root) != before
    apply_all(ap, undo)
    assert digest(root) == before
    ap.close()

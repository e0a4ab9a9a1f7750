"""Applying records: the replica equals the source byte for byte; hostile records are refused; replays are safe."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest

from tests.fsops import mutate, populate
from tests.unit.replicating import Pipe, captured, same
from twinsite.apply.applier import Applier
from twinsite.apply.batching import BatchCutter, cut
from twinsite.errors import ApplyError, UnsafePathError
from twinsite.journal.record import Meta, Op, Record
from twinsite.sync.planner import Planner
from twinsite.tree import differences, digest, entries


def rec(op: Op, path: bytes, **kw: object) -> Record:
    return Record(seq=1, ts=0.0, op=op, path=path, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_initial_sync_then_changes_replicate_byte_exact(tmp_path: Path, seed: int) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    rng = random.Random(seed)
    populate(src, rng, files=150)
    pipe = Pipe(src, dst)
    pipe.ship(list(pipe.planner.plan_all()))
    pipe.same()
    for _ in range(20):  # (with files made again at their names: hard links broken at the source)
        pipe.ship(list(captured(mutate(src, rng, ops=25, remakes=True)).plan(pipe.planner)))
        pipe.same()


@pytest.mark.parametrize("deletes_free", [False, True], ids=["sender", "rewind"])
def test_replaying_any_batch_from_any_point_gives_the_same_tree(tmp_path: Path, deletes_free: bool) -> None:
    src, dst, ref = tmp_path / "src", tmp_path / "dst", tmp_path / "ref"
    rng = random.Random(7)
    populate(src, rng, files=40)
    pipe = Pipe(src, ref)
    pipe.ship(list(pipe.planner.plan_all()))
    start = len(pipe.records)
    for _ in range(5):
        pipe.ship(list(captured(mutate(src, rng, ops=30)).plan(pipe.planner)))
    all_recs = pipe.records
    # cut the stream into batches the way the sender does, or the way a rewind does (fewer cuts)
    batches = cut(all_recs[start:], deletes_free=deletes_free)
    assert len(batches) > 3
    if deletes_free:
        assert len(batches) < len(cut(all_recs[start:]))
    # crash at every point of every batch, then replay that whole batch and go on
    for bi, batch in enumerate(batches):
        for crash in range(1, len(batch) + 1):
            rep = _fresh(dst, all_recs[:start] + [r for b in batches[:bi] for r in b])
            for r in batch[:crash]:
                rep.apply(r)
            for r in [r for b in batches[bi:] for r in b]:
                rep.apply(r)
            rep.close()
            same(ref, dst)


def _meta() -> Meta:
    return Meta(0o644, 0, 0, 1_000_000_000)


HAZARDS = {
    "write then rename onto it": [
        rec(Op.WRITE, b"a", data=b"new-a"),
        rec(Op.RENAME, b"b", path2=b"a"),
    ],
    "rename away then create the name again": [
        rec(Op.RENAME, b"a", path2=b"c"),
        rec(Op.CREATE, b"a", meta=_meta()),
        rec(Op.WRITE, b"a", data=b"fresh"),
    ],
    "write under a directory that a rename then replaces": [
        rec(Op.WRITE, b"d/f", data=b"new-d"),
        rec(Op.RENAME, b"e", path2=b"d"),
    ],
}


def _hazard_start(root: Path) -> None:
    shutil.rmtree(root, ignore_errors=True)
    (root / "d").mkdir(parents=True)
    (root / "e").mkdir()
    for name, text in (("a", "old-a"), ("b", "old-b"), ("d/f", "old-d"), ("e/f", "old-e")):
        (root / name).write_text(text)


@pytest.mark.parametrize("name", sorted(HAZARDS))
def test_batch_cuts_make_replay_safe_where_a_single_batch_is_not(tmp_path: Path, name: str) -> None:
    records = HAZARDS[name]
    ref, dst = tmp_path / "ref", tmp_path / "dst"
    _hazard_start(ref)
    ap = Applier(ref)
    for r in records:
        ap.apply(r)
    ap.close()
    cutter = BatchCutter()
    cut_at = next(i for i, r in enumerate(records) if cutter.conflicts(r) or cutter.add(r))
    assert cut_at > 0  # the cutter splits this sequence
    for batch_start, batch_end in ((0, len(records)), (0, cut_at)):  # unsplit (wrong), then split (right)
        _hazard_start(dst)
        ap = Applier(dst)
        for r in records[batch_start:batch_end]:  # applied, then the crash before applied_seq was stored
            ap.apply(r)
        for r in records[batch_start:]:  # replay from the start of the uncommitted batch
            ap.apply(r)
        ap.close()
        # these hand-made records carry no SETATTR, so mtimes are the apply times: compare the rest
        diffs = [d for d in differences(entries(ref), entries(dst)) if d[1] != "differs: mtime_ns"]
        if batch_end == len(records):
            assert diffs, "replaying an unsplit batch should have gone wrong here"
        else:
            assert diffs == []


def _fresh(dst: Path, records: list[Record]) -> Applier:
    shutil.rmtree(dst, ignore_errors=True)
    ap = Applier(dst)
    for r in records:
        ap.apply(r)
    return ap


HOSTILE = [
    b"../escape",
    b"a/../../escape",
    b"/etc/passwd",
    b"a\0b",
    b"",
    b"./x",
    b"a//b",
    b"x" * 256,
    b"a/" * 2100,
    b".twinsite-points",  # the root's point store: the standby's own, never replicated
    b".twinsite-points/1700000000000/etc",
]


@pytest.mark.parametrize("path", HOSTILE, ids=lambda p: repr(p[:20]))
@pytest.mark.parametrize("op", [Op.CREATE, Op.WRITE, Op.MKDIR, Op.DELETE, Op.SYMLINK])
def test_hostile_paths_are_refused_and_the_canary_is_untouched(tmp_path: Path, path: bytes, op: Op) -> None:
    root, canary = tmp_path / "root", tmp_path / "canary"
    canary.mkdir()
    (canary / "keep").write_text("keep")
    ap = Applier(root)
    with pytest.raises(UnsafePathError):
        ap.apply(rec(op, path, path2=b"t", data=b"x", meta=Meta(0o600, 0, 0, 0)))
    assert sorted(os.listdir(canary)) == ["keep"]
    assert (canary / "keep").read_text() == "keep"
    assert os.listdir(root) == []


@pytest.mark.parametrize("op", [Op.CREATE, Op.WRITE, Op.MKDIR, Op.DELETE, Op.SYMLINK, Op.RENAME])
def test_a_symlink_planted_in_a_parent_is_never_followed(tmp_path: Path, op: Op) -> None:
    root, canary = tmp_path / "root", tmp_path / "canary"
    canary.mkdir()
    (canary / "victim").write_text("keep")
    root.mkdir()
    (root / "sub").symlink_to(canary)  # a parent swapped for a link to outside the root
    ap = Applier(root)
    ap.apply(rec(op, b"sub/victim", path2=b"sub/other", data=b"evil", meta=Meta(0o600, 0, 0, 0)))
    # refused: never followed, nothing written, and counted (the sender then compares everything again)
    assert ap.stats.refused_parents == 1
    assert ap.stats.applied == 0
    assert sorted(os.listdir(canary)) == ["victim"]
    assert (canary / "victim").read_text() == "keep"


def test_a_symlink_is_replicated_as_a_link_and_writes_do_not_follow_it(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    outside.write_text("keep")
    ap = Applier(root)
    ap.apply(rec(Op.SYMLINK, b"link", path2=str(outside).encode()))
    assert os.readlink(root / "link") == str(outside)
    ap.apply(rec(Op.WRITE, b"link", data=b"evil"))  # O_NOFOLLOW: ELOOP, never followed
    assert ap.stats.refused_parents == 1  # refused and counted as a divergence (the sender compares again)
    assert outside.read_text() == "keep"


def test_disk_full_is_an_error_not_a_silent_skip(tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.mkdir()
    os.system(f"mount -t tmpfs -o size=1m twinsite-test {small}")  # noqa: S605
    try:
        ap = Applier(small / "root")
        ap.apply(rec(Op.CREATE, b"big", meta=Meta(0o600, 0, 0, 0)))
        with pytest.raises(ApplyError) as err:
            for i in range(4):
                ap.apply(rec(Op.WRITE, b"big", offset=i << 20, data=b"x" * (1 << 20)))
        assert "No space left on device" in err.value.message
        assert err.value.hint == "free space on the replica"
        ap.close()
    finally:
        os.system(f"umount {small}")  # noqa: S605


@pytest.mark.parametrize("method", ["metadata", "checksum"])
def test_sync_methods_metadata_trusts_size_and_mtime_checksum_does_not(tmp_path: Path, method: str) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    (src / "same-meta").write_bytes(b"A" * 10000)
    shutil.copytree(src, dst)
    (dst / "same-meta").write_bytes(b"B" * 10000)  # a silent difference: same size ...
    st = os.stat(src / "same-meta")
    os.utime(dst / "same-meta", ns=(st.st_atime_ns, st.st_mtime_ns))  # ... and same mtime
    from twinsite.engine.receiver import replica_signatures
    from twinsite.sync import manifest

    ap = Applier(dst)
    seq = iter(range(1, 1000))
    planner = Planner(
        src,
        block_size=4096,
        next_seq=lambda: next(seq),
        now=lambda: 0.0,
        fetch_sigs=lambda rel, first, count: replica_signatures(ap.root_fd, rel, 4096, first, count),
        checksum=method == "checksum",
    )
    planner.remote = manifest.decode(manifest.encode(dst))
    records = list(planner.plan_all())
    for r in records:
        ap.apply(r)
    ap.close()
    if method == "metadata":
        assert (dst / "same-meta").read_bytes() == b"B" * 10000
        assert not [r for r in records if r.op == Op.WRITE]
    else:
        assert (dst / "same-meta").read_bytes() == b"A" * 10000
        assert sum(len(r.data) for r in records if r.op == Op.WRITE) == 10000  # only the differing blocks: all


def test_a_rename_onto_another_name_of_the_same_file_removes_the_old_name(tmp_path: Path) -> None:
    # At the source the target was another file when the rename happened; on the replica it may still be a
    # hard link of the renamed file, where rename(2) would do nothing and leave the old name behind.
    root = tmp_path / "root"
    root.mkdir()
    (root / "a").write_text("data")
    os.link(root / "a", root / "b")
    ap = Applier(root)
    ap.apply(rec(Op.RENAME, b"a", path2=b"b"))
    ap.apply(rec(Op.RENAME, b"a", path2=b"b"))  # replayed: nothing left to do
    ap.close()
    assert sorted(os.listdir(root)) == ["b"]
    assert (root / "b").read_text() == "data"


@pytest.mark.parametrize("gone", ["renamed", "deleted", "replaced by a file", "parent renamed"])
def test_a_directory_kept_open_in_a_batch_is_let_go_when_it_goes(tmp_path: Path, gone: str) -> None:
    """The applier keeps the parent directories of a batch's records open; one renamed, deleted or replaced in
    the same batch (or one above it) must never take the records that follow, which name the new directory."""
    root = tmp_path / "root"
    meta = Meta(0o755, 0, 0, 0)

    def made(name: bytes, mtime_ns: int) -> list[Record]:
        """d/sub made, and the file d/sub/<name> holding its name, with this mtime."""
        path = b"d/sub/" + name
        return [
            rec(Op.MKDIR, b"d", meta=meta),
            rec(Op.MKDIR, b"d/sub", meta=meta),
            rec(Op.CREATE, path),
            rec(Op.WRITE, path, offset=0, data=name),
            rec(Op.SETATTR, path, meta=Meta(0o600, 0, 0, mtime_ns)),
        ]

    ap = Applier(root)
    for r in made(b"old", 5):
        ap.apply(r)
    changes = {
        "renamed": [rec(Op.RENAME, b"d/sub", path2=b"moved")],
        "deleted": [rec(Op.DELETE, b"d/sub")],
        "replaced by a file": [rec(Op.CREATE, b"d/sub"), rec(Op.DELETE, b"d/sub")],
        "parent renamed": [rec(Op.RENAME, b"d", path2=b"moved")],
    }[gone]
    for r in [*changes, *made(b"new", 7)]:
        ap.apply(r)
    ap.commit()
    ap.close()
    assert os.listdir(root / "d" / "sub") == ["new"]
    assert (root / "d" / "sub" / "new").read_bytes() == b"new"
    assert (root / "d" / "sub" / "new").stat().st_mtime_ns == 7
    moved = {"renamed": root / "moved" / "old", "parent renamed": root / "moved" / "sub" / "old"}.get(gone)
    if moved is not None:
        assert moved.read_bytes() == b"old" and moved.stat().st_mtime_ns == 5
    assert sorted(os.listdir(root)) == (["d", "moved"] if moved else ["d"])


@pytest.mark.parametrize("when", ["live", "after a restart"])
@pytest.mark.parametrize("change", ["b made again", "b made again and linked to d", "a and b made again"])
def test_a_name_of_a_hard_link_group_made_again_at_the_source_leaves_the_others_alone(
    tmp_path: Path, when: str, change: str
) -> None:
    """a and b are one file on both sides; then the source's b is another file (deleted and written again, as
    many programs save). Written in place on the replica, b's new bytes would change a there too, silently.
    The same after a restart, when the sender knows the replica's links only from its listing."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    (src / "a").write_bytes(b"A" * 5000)
    os.link(src / "a", src / "b")
    pipe = Pipe(src, dst, writers=False)
    pipe.ship(list(pipe.planner.plan_all()))
    pipe.same()
    assert os.stat(dst / "a").st_ino == os.stat(dst / "b").st_ino
    for name in ("a", "b") if change == "a and b made again" else ("b",):
        os.unlink(src / name)
        (src / name).write_bytes(name.encode() * 6000)
    if change == "b made again and linked to d":
        os.link(src / "b", src / "d")
    if when == "live":
        pipe.ship(list(captured([("path", b"b", b""), ("path", b"d", b"")]).plan(pipe.planner)))
    else:
        pipe.resync()
    pipe.same()
    assert (dst / "a").read_bytes() == (src / "a").read_bytes()


def test_a_resync_where_a_directory_of_the_replica_is_a_file_at_the_source_converges(tmp_path: Path) -> None:
    """The replica has d/f, the source has a file d now (a race the capture missed): looking up d/f on the
    source fails with ENOTDIR, not ENOENT; the resync must still delete it and ship the file (it kept failing
    and resyncing forever)."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f").write_bytes(b"inside")
    pipe = Pipe(src, dst)
    pipe.ship(list(pipe.planner.plan_all()))
    (src / "d" / "f").unlink()
    (src / "d").rmdir()
    (src / "d").write_bytes(b"a file now")
    pipe.resync()
    pipe.same()


def test_the_tree_digest_keeps_its_format(tmp_path: Path) -> None:
    """Digests are kept in evidence and compared between hosts: the same tree gives the same digest across
    versions. A golden value, computed by the digest of the first release on this tree (root's files, fixed
    times and modes: a file, an empty file, a hard link, a symlink, a FIFO, a directory). Changed once, when
    symlinks' mtimes began to count (replicated since, as ``rsync -a`` does)."""
    root = tmp_path / "t"
    (root / "dir").mkdir(parents=True)
    (root / "dir" / "file").write_bytes(b"some bytes\n" * 100)
    (root / "empty").write_bytes(b"")
    os.link(root / "dir" / "file", root / "hard")
    os.symlink("dir/file", root / "link")
    os.mkfifo(root / "fifo")
    for p in (root / "dir" / "file", root / "empty"):
        os.chmod(p, 0o640)
        os.utime(p, ns=(1_700_000_000_000_000_000, 1_700_000_000_123_456_789))
    os.utime(root / "link", ns=(1_700_000_000_000_000_000, 1_700_000_000_987_654_321), follow_symlinks=False)
    os.chmod(root / "dir", 0o750)  # noqa: S103 -- (a mode the golden value was taken with)
    assert (os.getuid(), os.getgid()) == (0, 0), "the golden value is of root's files"
    assert digest(root) == "6bf553478a0d862bfa34c209cd1dff46"


def test_a_file_rewritten_in_the_same_timestamp_tick_after_it_was_read_is_not_lost(tmp_path: Path) -> None:
    """File times come from a coarse clock (a jiffy; a second or two on some filesystems): a file read by the
    planner and written again within the same tick keeps its size and mtime. The read's mtime must not let
    the planner believe the replica holds the second write (the race behind a lost write under kill -9)."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    f = src / "f"
    f.write_bytes(b"a" * 5000)
    os.utime(f, ns=(1, 1))
    pipe = Pipe(src, dst)
    pipe.resync()
    pipe.planner.settle_ns = 10**12  # (nothing settles during the test: the tick is made by hand)
    f.write_bytes(b"b" * 5000)  # the planner reads it at once: its mtime is the clock's current tick ...
    tick = f.stat().st_mtime_ns
    pipe.ship(list(captured([("path", b"f", b"")]).plan(pipe.planner)))
    assert (dst / "f").read_bytes() == b"b" * 5000
    f.write_bytes(b"c" * 5000)  # ... and it is written again within that tick: same size, same mtime
    os.utime(f, ns=(tick, tick))
    pipe.ship(list(captured([("path", b"f", b"")]).plan(pipe.planner)))
    assert (dst / "f").read_bytes() == b"c" * 5000
    # the replica's mtime is the source's once the file has settled (read again after the tick was over)
    assert dst.joinpath("f").stat().st_mtime_ns != tick and list(pipe.planner.unsettled) == [b"f"]
    pipe.planner.settle_ns = 0
    pipe.ship(list(pipe.planner.settle()))
    assert list(pipe.planner.unsettled) == []
    same(src, dst)
    assert pipe.resyncs == 0


def test_reading_an_unsettled_hard_linked_file_again_ships_nothing_when_nothing_changed(tmp_path: Path) -> None:
    """A file read while it was being written is read again (unsettled); when nothing changed, that second
    read must ship nothing. It once shipped SETATTR and HARDLINK again for every name of the group, at every
    later change of any file (thousands of records a second under load)."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    (src / "a").write_bytes(b"shared")
    os.link(src / "a", src / "b")
    os.link(src / "a", src / "d")
    (src / "c").write_bytes(b"other")
    pipe = Pipe(src, dst)
    pipe.planner.settle_ns = 10**12  # (everything read now stays unsettled during the test)
    pipe.ship(list(pipe.planner.plan_all()))
    assert sorted(pipe.planner.unsettled) == [b"a", b"c"]
    os.chmod(src / "b", 0o600)  # a change through one name: the group's other names are compared too
    pipe.ship(list(captured([("path", b"b", b"")]).plan(pipe.planner)))
    for i in range(5):
        (src / "c").write_bytes(b"other %d" % i)
        recs = list(captured([("path", b"c", b"")]).plan(pipe.planner))
        assert {r.path for r in recs} == {b"c"}, recs
        pipe.ship(recs)
    assert os.stat(dst / "a").st_ino == os.stat(dst / "b").st_ino == os.stat(dst / "d").st_ino
    pipe.planner.settle_ns = 0
    pipe.ship(list(pipe.planner.settle()))
    same(src, dst)

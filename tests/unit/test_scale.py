"""Issue 19, no size cliffs: the replica's listing and a file's signatures cross the 64 MiB a frame may hold.

Before, the standby answered a listing request with one MANIFEST frame and a signature request with one SIGS
frame: a tree of a million files (97 MB of listing), or a file of 16 GiB in 4 KiB blocks, made an answer over
the cap, every attempt failed the same way and replication never resumed. Both go through a real
`twinsite receive` here, with the sender's own requests (engine.sender), over pipes instead of ssh; the trees
cross the old cap. The oracles are outside the code under test: `os.walk` for what the listing must hold, and
the file's bytes as Python reads them where the kernel says either file holds data (everywhere else both are
holes, which read as zeros).
"""

from __future__ import annotations

import os
import random
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fsops import same_bytes, sparse
from tests.unit.receiving import Piped, Standby
from twinsite.engine.sender import replica_listing, replica_signatures
from twinsite.journal.record import Op
from twinsite.sync.index import RemoteTree
from twinsite.sync.planner import FILE_SIGS, SIG_PAGE, Planner, SigCache
from twinsite.transport.frames import MAX_FRAME, Kind
from twinsite.transport.link import Link

MIB, GIB = 1 << 20, 1 << 30


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Path]:
    """A directory removed after the test (hundreds of thousands of files: not kept with pytest's last ones)."""
    yield tmp_path
    shutil.rmtree(tmp_path, ignore_errors=True)


def connect(dr1: Standby, ch: Piped) -> Link:
    link = Link(ch, where="dr1", idle_timeout=120)
    hello = {"scenario": "app", "root_index": 0, "root": str(dr1.root), "host": "prod1"}
    assert link.request(Kind.HELLO, hello, Kind.READY)["applied_seq"] == 0
    return link


def test_a_listing_of_700000_files_crosses_the_frame_cap_in_pages_in_bounded_memory(scratch: Path) -> None:
    dr1 = Standby(scratch)
    made = {b""}
    for d in range(70):
        top = dr1.root / f"dir-{d:02d}"
        top.mkdir(parents=True)
        for i in range(10_000):
            os.close(os.open(top / f"file-{i:07d}", os.O_CREAT | os.O_WRONLY, 0o644))
    for dirpath, dirnames, filenames in os.walk(dr1.root):
        rel = os.path.relpath(dirpath, dr1.root)
        made.update(os.fsencode(os.path.normpath(os.path.join(rel, n))) for n in [*dirnames, *filenames])
    made.discard(b"")
    ch = Piped(dr1)
    try:
        link = connect(dr1, ch)
        asked: list[Kind] = []
        request = link.request

        def counted(kind: Kind, obj: dict[str, object], reply: Kind, **kw: float) -> dict[str, object]:
            asked.append(kind)
            return request(kind, obj, reply, **kw)

        link.request = counted  # type: ignore[method-assign]
        listed = dict(replica_listing(link))
        peak = ch.peak_rss()
        link.close()
    finally:
        ch.close()
    assert set(listed) == made and len(made) == 700_070
    assert all(e.kind == "file" and e.size == 0 for p, e in listed.items() if b"/" in p)
    one_frame = sum(120 + 2 * len(p) for p in made)  # what the single answer of before came to, about
    assert one_frame > MAX_FRAME, one_frame
    assert asked == [Kind.MANIFEST_REQ] * 36, asked  # pages of 20,000 entries
    assert peak < 100 * MIB, f"the receiver's peak RSS {peak / MIB:.0f} MiB listing 700,070 entries"


def pieces(seed: int, size: int, n: int) -> dict[int, bytes]:
    rnd = random.Random(seed)
    return {
        rnd.randrange(0, size - 9000) // 4096 * 4096: rnd.randbytes(rnd.choice([100, 4096, 9000])) for _ in range(n)
    }


def differing_blocks(a: Path, b: Path, offsets: list[int]) -> set[int]:
    """The 4 KiB blocks that differ between ``a`` and ``b`` near ``offsets`` (where the pieces were written)."""
    out = set()
    with open(a, "rb") as fa, open(b, "rb") as fb:
        for block in {o // 4096 + i for o in offsets for i in range(4)}:
            fa.seek(block * 4096)
            fb.seek(block * 4096)
            if fa.read(4096) != fb.read(4096):
                out.add(block)
    return out


def test_a_sparse_17_gib_file_is_compared_in_pages_of_signatures_and_only_changed_blocks_travel(
    scratch: Path,
) -> None:
    """17 GiB in 4 KiB blocks: 4.5 million signatures, 72 MB in hex (over the cap), asked 8 MiB at a time.
    The source changed blocks everywhere (past 16 GiB too), put data in a hole and made a hole of data."""
    size = 17 * GIB
    dr1 = Standby(scratch)
    dr1.root.mkdir()
    src = scratch / "src"
    src.mkdir()
    old = pieces(1, size, 40)
    new = dict(old)
    changed = sorted(old)[::8]  # 5 of them rewritten ...
    for offset in changed:
        new[offset] = bytes(b ^ 0x5A for b in old[offset][:4096])
    new[16 * GIB + 123 * 4096] = b"past sixteen".ljust(4096, b"!")  # ... data where the replica has a hole
    gone = sorted(old)[3]  # ... and a hole where the replica has data
    sparse(dr1.root / "big", size, old)
    sparse(src / "big", size, {k: v for k, v in new.items() if k != gone})
    st = (dr1.root / "big").stat()
    os.utime(src / "big", ns=(st.st_atime_ns, st.st_mtime_ns + 1))  # (another mtime: compared by content)
    differ = differing_blocks(src / "big", dr1.root / "big", [*old, *new])

    asked: list[tuple[int, int]] = []
    ch = Piped(dr1)
    try:
        link = connect(dr1, ch)
        seq = iter(range(1, 10**6))

        def fetch(rel: bytes, first: int, count: int) -> bytes:
            asked.append((first, count))
            return replica_signatures(link, 4096, rel, first, count)

        started = time.monotonic()
        planner = Planner(src, block_size=4096, next_seq=lambda: next(seq), now=time.time, fetch_sigs=fetch)
        planner.remote = RemoteTree(replica_listing(link))
        records = list(planner.plan_all())
        planned = time.monotonic() - started
        link.send_batch(b"".join(r.encode() for r in records), records[-1].seq, compress=False)
        assert link.wait_acked(records[-1].seq, timeout=120)
        peak = ch.peak_rss()
        link.close()
    finally:
        ch.close()
    written = {
        b for r in records if r.op == Op.WRITE for b in range(r.offset // 4096, -(-(r.offset + len(r.data)) // 4096))
    }
    assert written == differ and len(differ) >= 7, (sorted(written), sorted(differ))  # only what changed travels
    assert asked == [(i * SIG_PAGE, SIG_PAGE) for i in range(-(-size // 4096 // SIG_PAGE))]  # asked page by page
    same_bytes(src / "big", dr1.root / "big")
    assert (dr1.root / "big").stat().st_blocks * 512 < 2 * MIB  # holes stayed holes
    assert planned < 120, f"planning took {planned:.0f} s"
    assert peak < 100 * MIB, f"the receiver's peak RSS {peak / MIB:.0f} MiB"


def test_the_signatures_kept_of_shipped_files_stay_within_their_budget() -> None:
    """A million small files shipped keep at most the cache's budget of signatures (names counted), the most
    recently used kept; a big file's are never kept (they are asked of the replica a page at a time)."""
    cache = SigCache(budget=1 << 20)
    for i in range(100_000):
        cache.put(f"d/f{i:07d}".encode(), b"s" * 8)
        assert cache.size <= cache.budget
    assert b"d/f0099999" in cache and b"d/f0000000" not in cache
    kept = sum(1 for i in range(100_000) if f"d/f{i:07d}".encode() in cache)
    assert 4000 < kept < 8000, kept  # (about 180 bytes each)
    cache.put(b"big", b"s" * (FILE_SIGS + 8))
    assert b"big" not in cache
    for i in range(100_000):
        cache.pop(f"d/f{i:07d}".encode())
    assert cache.size == 0


def test_the_wire_follows_the_bandwidth_limit_in_force_as_a_schedule_changes_it(scratch: Path) -> None:
    """replication.bandwidth_schedule: the link asks for the limit in force every second; a real receiver gets
    the data under 1 MiB/s while the schedule says so, and at full speed once it says 0 (no limit)."""
    from twinsite.apply.batching import wire_batches
    from twinsite.journal.record import Meta, Record

    dr1 = Standby(scratch)
    dr1.root.mkdir(parents=True)
    limit = [MIB]
    data = random.Random(5).randbytes(6 * MIB)
    seqs = iter(range(1, 1000))

    def records(offset: int, size: int) -> list[Record]:
        out = [] if offset else [Record(next(seqs), 0.0, Op.CREATE, b"big", meta=Meta(0o644, 0, 0, 0))]
        for at in range(offset, offset + size, 256 << 10):
            out.append(Record(next(seqs), 0.0, Op.WRITE, b"big", offset=at, data=data[at : at + (256 << 10)]))
        return out

    def send(recs: list[Record]) -> float:
        began = time.monotonic()
        for batch, blob in wire_batches(((r, r.encode()) for r in recs), 512 << 10):
            link.send_batch(blob, batch[-1].seq, compress=False)
        assert link.wait_acked(recs[-1].seq, timeout=60)
        return time.monotonic() - began

    ch = Piped(dr1)
    try:
        link = Link(ch, where="dr1", idle_timeout=120, bandwidth_limit=lambda: limit[0])
        hello = {"scenario": "app", "root_index": 0, "root": str(dr1.root), "host": "prod1"}
        link.request(Kind.HELLO, hello, Kind.READY)
        limited = send(records(0, 3 * MIB))  # a second's burst, then 1 MiB/s: at least 2 s
        limit[0] = 0
        time.sleep(1.1)  # (asked again at the next write after a second)
        free = send(records(3 * MIB, 3 * MIB))
        link.close()
    finally:
        ch.close()
    assert (dr1.root / "big").read_bytes() == data
    assert limited >= 1.8, limited
    assert free < limited / 3, (free, limited)

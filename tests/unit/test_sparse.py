"""Sparse files on the standby (found by `make fuzz`, issue 18): a file of 1 TiB holding a few KiB of data is
as cheap as those KiB. Its holes are never read, neither for the replica's block signatures nor for the undo of
a truncate, whose old tail is logged as its data only. Before, each read the terabyte of zeros: the receiver
hung for the time of reading it (and the signatures then could not be sent in one frame).

The oracle for the content is outside the code under test: Python's own reads of the file, and the blocks the
filesystem says it holds (a file that takes a few blocks reads zeros everywhere else)."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fsops import sparse
from tests.unit.receiving import Standby, blob, recs
from twinsite.apply.applier import Applier
from twinsite.cdp.log import RewindLog, make_group
from twinsite.cdp.rewind import move
from twinsite.cdp.undo import capture
from twinsite.journal.record import Op, Record
from twinsite.state.layout import ReceiverState
from twinsite.sync.signatures import block_signatures, signatures
from twinsite.transport.frames import Kind, pack_batch, pack_json

TIB = 1 << 40


@settings(max_examples=60, deadline=None)
@given(
    block=st.sampled_from([512, 4096, 65536]),
    size=st.integers(0, 400_000),
    pieces=st.lists(st.tuples(st.integers(0, 400_000), st.binary(min_size=1, max_size=9000)), max_size=5),
    shrink_to=st.none() | st.integers(0, 400_000),
)
def test_the_signatures_of_a_sparse_file_are_those_of_its_bytes(
    block: int, size: int, pieces: list[tuple[int, bytes]], shrink_to: int | None
) -> None:
    """Holes anywhere (at the start, between data in one block, at the end, a last short block in a hole),
    zeros written as data, and a file shorter than the size asked (it shrank): the same signatures as the
    blocks of the bytes Python reads."""
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"twinsite-sparse-{os.getpid()}"
    try:
        sparse(path, size, dict(pieces))
        if shrink_to is not None:
            os.truncate(path, min(shrink_to, path.stat().st_size))
        content = path.read_bytes()
        fd = os.open(path, os.O_RDONLY)
        try:
            got = signatures(fd, max(size, len(content)), block)
        finally:
            os.close(fd)
        assert got == block_signatures(content, block)
    finally:
        path.unlink(missing_ok=True)


def test_a_sparse_terabyte_cut_to_nothing_is_logged_undone_and_redone_in_the_time_of_its_data(tmp_path: Path) -> None:
    root, state = tmp_path / "root", ReceiverState(tmp_path / "state")
    root.mkdir()
    rnd = random.Random(18)
    pieces = {0: rnd.randbytes(4096), 300 << 30: rnd.randbytes(5000), TIB - 100: rnd.randbytes(100)}
    sparse(root / "big", TIB, pieces)
    batch = [Record(1, 10.0, Op.TRUNCATE, b"big", offset=0), Record(2, 10.0, Op.TRUNCATE, b"big", offset=2 * TIB)]
    started = time.monotonic()
    log = RewindLog(state.rewind_log)
    ap = Applier(root)
    log.append(make_group(batch, capture(ap.root_fd, batch, lazy=True)))
    for rec in batch:
        ap.apply(rec)
    ap.commit()
    ap.close()
    assert (root / "big").stat().st_size == 2 * TIB and (root / "big").stat().st_blocks == 0
    assert log.disk_bytes() < 64 << 10  # the data, not the terabyte
    move(root, state, log, 2, 0)
    st_ = (root / "big").stat()
    with open(root / "big", "rb") as f:
        for offset, data in pieces.items():
            f.seek(offset)
            assert f.read(len(data)) == data, offset
    assert st_.st_size == TIB and st_.st_blocks * 512 <= 64 << 10  # holes came back as holes: zeros elsewhere
    move(root, state, log, 2, 2)  # (forward to the head again)
    assert (root / "big").stat().st_size == 2 * TIB and (root / "big").stat().st_blocks == 0
    log.close()
    assert time.monotonic() - started < 10


def test_the_signatures_of_a_sparse_terabyte_are_answered_at_once(tmp_path: Path) -> None:
    """Through `twinsite receive` (16 MiB blocks: 65,536 signatures fit in a frame)."""
    dr1 = Standby(tmp_path)
    block, data = 16 << 20, random.Random(1).randbytes(1000)
    cut = Record(seq=2, ts=0.0, op=Op.TRUNCATE, path=b"f1", offset=TIB)
    write = Record(seq=3, ts=0.0, op=Op.WRITE, path=b"f1", offset=TIB // 2 + 10, data=data)
    started = time.monotonic()
    answers = dr1.receive(
        pack_json(Kind.HELLO, {"scenario": "app", "root_index": 0, "root": str(dr1.root)}),
        pack_batch(blob(recs(1, 1)) + cut.encode() + write.encode(), compress=False),
        pack_json(Kind.SIGS_REQ, {"block_size": block, "paths": [b"f1".hex()]}),
    )
    assert time.monotonic() - started < 20
    assert [k for k, _ in answers] == [Kind.READY, Kind.ACK, Kind.SIGS], dr1.last.stderr[-2000:]
    sigs = bytes.fromhex(answers[-1][1]["sigs"][b"f1".hex()])  # type: ignore[index]
    middle = bytearray(block)
    middle[10 : 10 + len(data)] = data
    zero = block_signatures(bytes(block), block)
    assert sigs == zero * (TIB // block // 2) + block_signatures(bytes(middle), block) + zero * (TIB // block // 2 - 1)

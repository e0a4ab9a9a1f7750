"""The wire's pipes and a record's encoding: what the data path's speed-ups must not change."""

from __future__ import annotations

import fcntl
import io
import os

import xxhash
from hypothesis import given
from hypothesis import strategies as st

from twinsite.journal.record import HEAD, META, TAIL, Meta, Op, Record, decode
from twinsite.transport.frames import PIPE_BYTES, widen_pipe


def test_a_pipe_carrying_frames_is_widened_and_anything_else_is_left_as_it_is(tmp_path) -> None:
    r, w = os.pipe()
    with os.fdopen(r, "rb") as reader, os.fdopen(w, "wb") as writer:
        assert fcntl.fcntl(writer.fileno(), fcntl.F_GETPIPE_SZ) < PIPE_BYTES  # (Linux's default, 64 KiB)
        widen_pipe(writer)
        assert fcntl.fcntl(reader.fileno(), fcntl.F_GETPIPE_SZ) == PIPE_BYTES  # (one pipe: both ends see it)
        writer.write(b"x" * (PIPE_BYTES - 1))  # room for it all: the write does not wait for a reader
        writer.flush()
        assert len(reader.read1(PIPE_BYTES)) > 0
    with open(tmp_path / "f", "wb") as f:
        widen_pipe(f)  # (a file: no error)
    widen_pipe(io.BytesIO())  # (no descriptor: no error)


def _as_documented(rec: Record) -> bytes:
    """docs/formats.md: header, metadata, path, path2, xattrs, data, then xxh3-64 of all that."""
    xattrs = b""
    body = HEAD.pack(
        b"TWR1", rec.op, 1 if rec.meta else 0, len(rec.path), len(rec.path2), len(rec.data), rec.seq, rec.offset, rec.ts
    )
    if rec.meta:
        xattrs = len(rec.meta.xattrs).to_bytes(4, "little") + b"".join(
            len(k).to_bytes(2, "little") + len(v).to_bytes(4, "little") + k + v for k, v in rec.meta.xattrs
        )
        m = rec.meta
        body += META.pack(m.mode, m.uid, m.gid, m.mtime_ns, len(xattrs))
    body += rec.path + rec.path2 + xattrs + rec.data
    return body + TAIL.pack(xxhash.xxh3_64_intdigest(body))


names = st.binary(min_size=1, max_size=40).filter(lambda b: b"\0" not in b)


@given(
    path=names,
    data=st.binary(max_size=5000),
    seq=st.integers(1, 2**62),
    offset=st.integers(0, 2**40),
    meta=st.none()
    | st.builds(
        Meta,
        st.integers(0, 0o7777),
        st.integers(0, 2**31),
        st.integers(0, 2**31),
        st.integers(0, 2**62),
        st.lists(st.tuples(names, st.binary(max_size=50)), max_size=3).map(tuple),
    ),
)
def test_a_record_is_encoded_as_the_format_says_and_decodes_to_itself(path, data, seq, offset, meta) -> None:
    rec = Record(op=Op.WRITE, path=path, data=data, seq=seq, offset=offset, ts=1.5, meta=meta)
    raw = rec.encode()
    assert raw == _as_documented(rec)
    assert len(raw) == rec.size
    got = decode(raw)
    assert got is not None and got[0] == rec and got[1] == len(raw)

"""Issue 18, fuzzing: property-based tests (hypothesis) of the frame and record decoders and of the applier.

Arbitrary bytes never make a decoder do anything but decode or refuse. Arbitrary record sequences, sent to a
real receiver session over a real tree whose neighbours hold secrets (links out of the root, a FIFO, setuid
modes, privileged xattrs), never write, chmod, chown or link outside the root, never hang, and every batch is
answered with an ACK unless an ERROR frame ends the session.

CI runs the ``ci`` profile (a bounded number of examples); ``make fuzz`` runs the ``fuzz`` profile with a
printed seed (``TWINSITE_FUZZ=fuzz pytest tests/unit/test_fuzz.py --hypothesis-seed=N`` replays it).
"""

from __future__ import annotations

import io
import os
import stat
import tempfile
import threading
from pathlib import Path

import pytest
import xxhash
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.unit.receiving import answers_in, declare
from twinsite.engine.receiver import session
from twinsite.errors import ProtocolError
from twinsite.journal.record import TAIL, Meta, Op, Record, RecordError, decode
from twinsite.transport.frames import Kind, pack, pack_batch, pack_json, read_frame

settings.register_profile(
    "ci", max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
settings.register_profile(
    "fuzz", max_examples=4000, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
settings.load_profile(os.environ.get("TWINSITE_FUZZ", "ci"))

NAMES = [b"f", b"g", b"d", b"d/x", b"d/y", b"out", b"out/secret", b"ldir/x", b"fifo", b"fifo/x", b"f/x"]
HOSTILE = [b"../outside/secret", b"/etc/passwd", b"", b".", b"d/../f", b"d//x", b"a\xff\xfe", b"n" * 256]
TARGETS = [b"../outside", b"../outside/secret", b"/etc/passwd", b"f", b"d/x", b"x" * 300]
XATTRS = [b"user.a", b"trusted.t", b"security.capability", b"system.posix_acl_access", b"user." + b"k" * 250]


def mostly(usual: list[object], hostile: list[object]) -> st.SearchStrategy[object]:
    """One of ``usual``, or one time in twenty one of ``hostile``: deep sessions, and every refusal seen."""
    return st.integers(0, 19).flatmap(lambda i: st.sampled_from(hostile if i == 0 else usual))


names = mostly(NAMES, HOSTILE)
metas = st.builds(
    Meta,
    mode=mostly([0o644, 0o755, 0o600], [0o4755, 0o2755, 0o7777, 0o000, 0o177777]),
    uid=mostly([0, 1000], [4242, 2**32 - 1]),
    gid=mostly([0, 1000], [4242]),
    mtime_ns=mostly([0, 10**18], [-(10**18), 2**62]),
    xattrs=st.lists(st.tuples(mostly([b"user.a"], XATTRS), st.binary(max_size=40)), max_size=2).map(tuple),
)


@st.composite
def records(draw: st.DrawFn, seq: int) -> Record:
    op = draw(st.sampled_from(list(Op)))
    path2 = (
        draw(mostly(NAMES, TARGETS) if op == Op.SYMLINK else names)
        if op in (Op.SYMLINK, Op.HARDLINK, Op.RENAME)
        else b""
    )
    meta = draw(metas) if op in (Op.MKDIR, Op.CREATE, Op.SETATTR, Op.MKFIFO) else None
    offset = draw(st.sampled_from([0, 1, 4095, 1 << 20, 1 << 40])) if op in (Op.WRITE, Op.TRUNCATE, Op.POINT) else 0
    data = draw(st.binary(max_size=64)) if op == Op.WRITE else b""
    return Record(seq=seq, ts=draw(st.floats(allow_nan=True)), op=op, path=draw(names), path2=path2,
                  offset=offset, data=data, meta=meta)  # fmt: skip


@st.composite
def sessions(draw: st.DrawFn) -> list[bytes]:
    """A sender's frames after its HELLO: batches of arbitrary records in seq order, and requests between them."""
    frames: list[bytes] = []
    seq = 0
    for _ in range(draw(st.integers(1, 6))):
        if draw(st.integers(0, 3)):
            batch = []
            for _ in range(draw(st.integers(1, 6))):
                seq += 1
                batch.append(draw(records(seq)))
            frames.append(pack_batch(b"".join(r.encode() for r in batch), compress=draw(st.booleans())))
        else:
            kind = draw(st.sampled_from([Kind.PING, Kind.MANIFEST_REQ, Kind.SIGS_REQ]))
            paths = [p.hex() for p in draw(st.lists(names, max_size=3))]
            frames.append(pack_json(kind, {"block_size": draw(st.sampled_from([4096] * 8 + [0, 3])), "paths": paths}))
    return frames


# -- the decoders ------------------------------------------------------------------------------------------
@given(st.binary(max_size=400))
def test_the_record_decoder_decodes_or_refuses_arbitrary_bytes(buf: bytes) -> None:
    try:
        got = decode(buf)
    except RecordError:
        return
    if got is not None:
        assert 0 < got[1] <= len(buf)


@given(records(1), st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=4), st.integers(0, 8))
def test_the_record_decoder_refuses_forged_records_with_valid_checksums(
    rec: Record, flips: list[tuple[int, int]], cut: int
) -> None:
    """A valid record, bytes changed, its checksum made right again (a sender that lies, not a line that
    garbles): decoded into something that encodes back the same, or refused."""
    body = bytearray(rec.encode()[: -TAIL.size])
    for at, value in flips:
        body[at % len(body)] = value
    body = body[: len(body) - cut] if cut < len(body) else body
    forged = bytes(body) + TAIL.pack(xxhash.xxh3_64_intdigest(bytes(body)))
    try:
        got = decode(forged)
    except RecordError:
        return
    if got is not None:
        assert got[0].encode() == forged[: got[1]]


@given(st.binary(max_size=200))
def test_the_frame_reader_reads_or_refuses_arbitrary_bytes(buf: bytes) -> None:
    stream = io.BytesIO(buf)
    try:
        while True:
            read_frame(stream)
    except ProtocolError:  # (the end of the stream, PeerClosed, is one)
        pass


@given(st.sampled_from(list(Kind)), st.binary(max_size=100))
def test_a_frame_with_any_kind_and_payload_round_trips(kind: Kind, payload: bytes) -> None:
    assert read_frame(io.BytesIO(pack(kind, payload))) == (kind, 0, bytearray(payload))


# -- the applier, through a receiver session ----------------------------------------------------------------
def _snapshot(top: Path) -> dict[str, tuple[object, ...]]:
    """Everything about the tree under ``top`` that a write, chmod, chown or link would change."""
    out: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in [*dirnames, *filenames, "."]:
            p = os.path.join(dirpath, name)
            st_ = os.lstat(p)
            content = Path(p).read_bytes() if stat.S_ISREG(st_.st_mode) else b""
            xattrs = sorted(os.listxattr(p, follow_symlinks=False)) if not stat.S_ISLNK(st_.st_mode) else []
            out[p] = (st_.st_mode, st_.st_uid, st_.st_gid, st_.st_nlink, st_.st_mtime_ns, content, xattrs)
    return out


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(frames=sessions(), cdp=st.booleans(), consistency=st.sampled_from(["file", "points"]))
def test_arbitrary_records_never_touch_anything_outside_the_root_and_always_get_an_answer(
    monkeypatch: pytest.MonkeyPatch, frames: list[bytes], cdp: bool, consistency: str
) -> None:
    monkeypatch.setenv("TWINSITE_HOST", "dr1")
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        outside, root, config = base / "outside", base / "root", base / "etc"
        (outside / "d").mkdir(parents=True)
        (outside / "secret").write_bytes(b"do not touch")
        (outside / "secret").chmod(0o600)
        os.mkfifo(outside / "pipe")
        root.mkdir()
        (root / "f").write_bytes(b"0123456789")
        (root / "d").mkdir()
        (root / "out").symlink_to("../outside")
        (root / "ldir").symlink_to("../outside/d")
        os.mkfifo(root / "fifo")
        declare(config, root, cdp=cdp, consistency=consistency)
        before = _snapshot(outside)
        hello = pack_json(Kind.HELLO, {"scenario": "app", "root_index": 0, "root": str(root), "host": "prod1"})
        out = io.BytesIO()
        done: list[int] = []
        worker = threading.Thread(
            target=lambda: done.append(session(config, base / "state", io.BytesIO(b"".join([hello, *frames])), out))
        )
        worker.start()
        worker.join(timeout=30)
        assert not worker.is_alive(), "the receiver hangs"
        after = _snapshot(outside)
        changed = sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
        assert changed == [], changed
        assert sorted(p.name for p in base.iterdir()) == ["etc", "outside", "root", "state"]
        decoded = answers_in(out)
        answers = [k for k, _ in decoded]
        event(f"acknowledged batches: {answers.count(Kind.ACK)}")
        event(
            f"ended with {answers[-1].name}"
            + (f": {str(decoded[-1][1]['message'])[:40]}" if answers[-1] == Kind.ERROR else "")
        )
        batches = sum(1 for f in frames if f[4] == Kind.BATCH)
        assert answers[-1] == Kind.ERROR or answers.count(Kind.ACK) == batches, answers
        assert done and (done[0] == 0) == (Kind.ERROR not in answers), (done, answers)

"""Records and journal segments: round trips, fsync'd appends, torn tails dropped, corruption refused."""

from __future__ import annotations

import os
import random
import struct
from pathlib import Path

import pytest

from twinsite.errors import JournalError
from twinsite.journal.record import HEAD, MAGIC, MAX_DATA, Meta, Op, Record, RecordError, decode
from twinsite.journal.segments import Journal


def sample(seq: int, rng: random.Random | None = None) -> Record:
    rng = rng or random.Random(seq)
    op = rng.choice(list(Op))
    meta = (
        Meta(0o640, 1000, 1000, 1_700_000_000_123_456_789, ((b"user.a", b"\x00\xff"),)) if rng.random() < 0.5 else None
    )
    return Record(
        seq=seq,
        ts=1_700_000_000.5 + seq,
        op=op,
        path=b"dir/f\n\xff" + str(seq).encode(),
        path2=b"other" if op in (Op.RENAME, Op.HARDLINK, Op.SYMLINK) else b"",
        offset=rng.randrange(1 << 40),
        data=rng.randbytes(rng.randrange(0, 5000)),
        meta=meta,
    )


def test_records_round_trip_byte_exact() -> None:
    recs = [sample(i) for i in range(1, 200)]
    buf = b"".join(r.encode() for r in recs)
    pos, out = 0, []
    while pos < len(buf):
        got = decode(buf, pos)
        assert got is not None
        rec, pos = got
        out.append(rec)
    assert out == recs
    assert [r.size for r in recs] == [len(r.encode()) for r in recs]


def test_every_flipped_bit_in_a_record_is_caught() -> None:
    enc = bytearray(sample(7).encode())
    for bit in range(0, len(enc) * 8, 7):
        bad = bytearray(enc)
        bad[bit // 8] ^= 1 << (bit % 8)
        try:
            got = decode(bytes(bad))
        except RecordError:
            continue
        assert got is None, f"flipped bit {bit} was accepted"  # a length made longer: waits for more bytes


def test_absurd_length_is_refused_before_allocating() -> None:
    head = HEAD.pack(MAGIC, Op.WRITE, 0, 4, 0, MAX_DATA + 1, 1, 0, 0.0)
    with pytest.raises(RecordError, match="absurd lengths"):
        decode(head + b"x" * 100)


def test_unknown_version_is_named() -> None:
    enc = b"TWR9" + sample(1).encode()[4:]
    with pytest.raises(RecordError, match="unknown version"):
        decode(enc)


def test_unknown_operation_is_refused() -> None:
    import xxhash

    body = HEAD.pack(MAGIC, 99, 0, 1, 0, 0, 5, 0, 0.0) + b"a"
    with pytest.raises(RecordError, match="unknown operation 99"):
        decode(body + struct.pack("<Q", xxhash.xxh3_64_intdigest(body)))


def test_journal_appends_reads_back_and_resumes_after_reopen(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j", segment_size=20_000)
    recs = [sample(i) for i in range(1, 301)]
    assert j.append(recs[:150]) == 150
    assert j.append(recs[150:]) == 300
    j.close()
    assert len(j.segments()) > 3  # rolled over
    j2 = Journal(tmp_path / "j", segment_size=20_000)
    assert j2.last_seq == 300
    assert j2.dropped_tail == 0
    assert list(j2.read_from(1)) == recs
    assert [r.seq for r in j2.read_from(123)] == list(range(123, 301))


def test_journal_refuses_a_sequence_gap(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j")
    j.append([sample(1)])
    with pytest.raises(JournalError, match="expected seq 2, got 3"):
        j.append([sample(3)])


@pytest.mark.parametrize("cut", [1, 10, HEAD.size + 3, -9, -1])
def test_torn_tail_is_dropped_and_only_it(tmp_path: Path, cut: int) -> None:
    j = Journal(tmp_path / "j")
    recs = [sample(i) for i in range(1, 21)]
    j.append(recs)
    j.close()
    seg = j.segments()[-1]
    last_len = len(recs[-1].encode())
    size = seg.stat().st_size
    keep = size - last_len + cut if cut > 0 else size + cut
    os.truncate(seg, keep)
    j2 = Journal(tmp_path / "j")
    assert j2.last_seq == 19
    assert j2.dropped_tail == keep - (size - last_len)
    assert list(j2.read_from(1)) == recs[:19]
    assert j2.append([recs[19]]) == 20  # appending resumes cleanly
    assert list(Journal(tmp_path / "j").read_from(1)) == recs


def test_corruption_in_the_middle_is_an_error_not_a_tail(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j")
    j.append([sample(i) for i in range(1, 21)])
    j.close()
    seg = j.segments()[-1]
    data = bytearray(seg.read_bytes())
    data[len(data) // 2] ^= 0x40
    seg.write_bytes(bytes(data))
    with pytest.raises(JournalError, match="corrupt record in the middle"):
        Journal(tmp_path / "j")


def test_trim_deletes_only_fully_acknowledged_segments(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j", segment_size=10_000)
    j.append([sample(i) for i in range(1, 201)])
    before = j.segments()
    firsts = [int(p.stem) for p in before]
    ack = firsts[3] + 1  # inside the fourth segment
    freed = j.trim(ack)
    after = j.segments()
    assert freed > 0
    assert [int(p.stem) for p in after] == firsts[3:]
    assert j.first_seq() <= ack + 1
    assert [r.seq for r in j.read_from(ack + 1)] == list(range(ack + 1, 201))


def test_reader_streams_appends_across_segments_trims_and_gaps(tmp_path: Path) -> None:
    """The shipper's cursor: each read returns only what is new, in order, with the exact encoded bytes."""
    j = Journal(tmp_path / "j", segment_size=20_000)
    reader = j.reader(1)
    assert reader.read() == []
    seen: list[Record] = []
    seq = 1
    rng = random.Random(5)
    for round_ in range(30):
        n = rng.randrange(1, 25)
        j.append([sample(s) for s in range(seq, seq + n)])
        seq += n
        if round_ == 12:
            j.trim(seen[-1].seq)  # what was acknowledged goes; the cursor is beyond it
        if round_ == 20:
            seq += 50
            j.skip_to(seq)  # numbering continues higher (records acknowledged without the journal)
        while got := reader.read(max_bytes=rng.choice([1, 3000, 1 << 20])):
            for rec, raw in got:
                assert bytes(raw) == rec.encode()
            seen += [rec for rec, _ in got]
    assert len(j.segments()) > 3
    assert [r.seq for r in seen] == sorted(r.seq for r in seen)
    assert seen == [sample(r.seq) for r in seen]
    gap = set(range(1, seq)) - {r.seq for r in seen}
    assert len(gap) == 50  # exactly the skipped numbers, nothing else missing
    assert reader.next_seq == seq


def test_reader_starts_mid_journal_and_leaves_records_not_yet_durable(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j", segment_size=10_000)
    j.append([sample(i) for i in range(1, 101)])
    reader = j.reader(57)
    assert [r.seq for r, _ in reader.read(max_bytes=1 << 30)] == list(range(57, 101))
    # bytes of a record being appended (written, not yet counted durable) are not read
    with open(j.segments()[-1], "ab") as f:
        f.write(sample(101).encode()[:40])
    assert reader.read() == []
    assert Journal(tmp_path / "j").last_seq == 100  # and reopening drops the torn tail


def test_reader_never_skips_records_appended_after_its_snapshot_when_the_segment_rotates(tmp_path: Path) -> None:
    """A read sees the journal's last_seq as it was when the read began; records appended since then to the
    current segment, followed by a new segment, must still be read before the new one (not skipped)."""
    j = Journal(tmp_path / "j", segment_size=3000)
    j.append([sample(i) for i in range(1, 3)])
    reader = j.reader(1)
    assert [r.seq for r, _ in reader.read()] == [1, 2]
    j.append([sample(i) for i in range(3, 30)])  # fills the segment and rotates into new ones
    assert len(j.segments()) > 2
    real = j.last_seq
    j.last_seq = 2  # what a read that began before those appends sees
    assert reader.read() == []
    j.last_seq = real
    seen = []
    while got := reader.read(max_bytes=2000):
        seen += [r.seq for r, _ in got]
    assert seen == list(range(3, 30))


def test_reader_started_deep_inside_a_big_segment_reads_on_to_its_records(tmp_path: Path) -> None:
    """After a reconnect the cursor starts at the acknowledged seq, which may lie megabytes into a segment,
    with newer segments beside it: the records before it are passed over, never the segment's rest."""
    j = Journal(tmp_path / "j", segment_size=200_000)
    j.append([sample(i) for i in range(1, 400)])
    assert len(j.segments()) > 2
    first = j.segments()[0]
    inside = [r.seq for r in j.read_from(1) if r.seq < int(j.segments()[1].stem)]
    start = inside[-3]  # near the end of the first segment
    reader = j.reader(start)
    got = reader.read(max_bytes=1)  # smaller than what lies before the start
    assert got and got[0][0].seq == start
    rest = [r.seq for r, _ in got]
    while more := reader.read(max_bytes=1):
        rest += [r.seq for r, _ in more]
    assert rest == list(range(start, 400))
    assert first.exists()

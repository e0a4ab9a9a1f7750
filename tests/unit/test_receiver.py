"""The receiver over a real byte stream: acknowledgements, replays ignored, gaps and corrupt frames refused."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import zstandard

from twinsite.apply.applier import SeqFile
from twinsite.journal.record import Meta, Op, Record
from twinsite.receiver import Receiver
from twinsite.transport.frames import (
    COMPRESSED,
    HEAD,
    MAGIC,
    MAX_BATCH_RAW,
    Kind,
    ProtocolError,
    pack,
    pack_batch,
    pack_json,
    read_frame,
)


def recs(first: int, n: int) -> list[Record]:
    out = []
    for i in range(first, first + n):
        out.append(Record(seq=i, ts=0.0, op=Op.CREATE, path=f"f{i}".encode(), meta=Meta(0o644, 0, 0, 0)))
    return out


def blob(records: list[Record]) -> bytes:
    return b"".join(r.encode() for r in records)


def serve(tmp_path: Path, frames: list[bytes]) -> tuple[list[tuple[Kind, dict[str, object]]], Path]:
    root = tmp_path / "root"
    rx = Receiver(root, tmp_path / "state", io.BytesIO(b"".join(frames)), out := io.BytesIO())
    try:
        rx.serve()
    finally:
        rx.close()
    return answers_in(out), root


def answers_in(out: io.BytesIO) -> list[tuple[Kind, dict[str, object]]]:
    """Every frame the receiver wrote, decoded."""
    out.seek(0)
    answers = []
    while out.tell() < len(out.getvalue()):
        kind, _f, payload = read_frame(out)
        answers.append((kind, json.loads(payload)))
    return answers


def hello(root: Path) -> bytes:
    return pack_json(Kind.HELLO, {"scenario": "t", "root": str(root)})


def test_batches_are_acknowledged_after_they_are_durable(tmp_path: Path) -> None:
    frames = [
        hello(tmp_path / "root"),
        pack_batch(blob(recs(1, 3)), compress=True),
        pack_batch(blob(recs(4, 2)), compress=False),
    ]
    answers, root = serve(tmp_path, frames)
    assert answers == [
        (Kind.READY, {"applied_seq": 0, "version": "0.1.0"}),
        (Kind.ACK, {"seq": 3, "diverged": 0}),
        (Kind.ACK, {"seq": 5, "diverged": 0}),
    ]
    assert sorted(p.name for p in root.iterdir()) == ["f1", "f2", "f3", "f4", "f5"]
    seqfile = SeqFile(tmp_path / "state" / "applied_seq")
    assert seqfile.read() == 5
    seqfile.close()


def test_a_replayed_batch_is_ignored(tmp_path: Path) -> None:
    serve(tmp_path, [hello(tmp_path / "root"), pack_batch(blob(recs(1, 3)), compress=True)])
    (tmp_path / "root" / "f2").write_text("changed on the replica by someone")
    answers, root = serve(tmp_path, [hello(tmp_path / "root"), pack_batch(blob(recs(1, 3)), compress=True)])
    assert answers[0] == (Kind.READY, {"applied_seq": 3, "version": "0.1.0"})
    assert answers[1] == (Kind.ACK, {"seq": 3, "diverged": 0})
    assert (root / "f2").read_text() == "changed on the replica by someone"  # not re-applied


def test_a_sequence_gap_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ProtocolError, match="sequence gap: applied up to 3, got 5"):
        serve(tmp_path, [hello(tmp_path / "root"), pack_batch(blob(recs(1, 3) + recs(5, 1)), compress=True)])


def test_a_frame_with_a_flipped_bit_is_refused(tmp_path: Path) -> None:
    frame = bytearray(pack_batch(blob(recs(1, 3)), compress=False))
    frame[HEAD.size + 17] ^= 0x04
    with pytest.raises(ProtocolError, match="checksum mismatch"):
        serve(tmp_path, [hello(tmp_path / "root"), bytes(frame)])
    assert not (tmp_path / "root" / "f1").exists()


def test_an_absurd_frame_length_is_refused_before_reading(tmp_path: Path) -> None:
    frame = HEAD.pack(MAGIC, Kind.BATCH, 0, 1 << 31, 0)
    with pytest.raises(ProtocolError, match="exceeds"):
        serve(tmp_path, [hello(tmp_path / "root"), frame])


def test_a_decompression_bomb_is_refused(tmp_path: Path) -> None:
    bomb = zstandard.ZstdCompressor(level=19, write_content_size=False).compress(b"\0" * (MAX_BATCH_RAW + 4096))
    assert len(bomb) < 1 << 20
    with pytest.raises(ProtocolError, match="does not decompress within"):
        serve(tmp_path, [hello(tmp_path / "root"), pack(Kind.BATCH, bomb, COMPRESSED)])


def test_a_torn_frame_ends_the_session_without_applying_it(tmp_path: Path) -> None:
    frame = pack_batch(blob(recs(1, 3)), compress=False)
    answers, root = serve(tmp_path, [hello(tmp_path / "root"), frame[: len(frame) // 2]])
    assert answers == [(Kind.READY, {"applied_seq": 0, "version": "0.1.0"})]
    assert list(root.iterdir()) == []


def test_a_sender_for_another_root_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ProtocolError, match="this receiver serves"):
        serve(tmp_path, [pack_json(Kind.HELLO, {"scenario": "t", "root": "/srv/other"})])


def test_a_record_with_nothing_to_act_on_after_the_first_batch_is_reported_as_divergence(tmp_path: Path) -> None:
    write_missing = Record(seq=4, ts=0.0, op=Op.WRITE, path=b"not-there", data=b"x")
    frames = [
        hello(tmp_path / "root"),
        pack_batch(blob(recs(1, 3)), compress=True),
        pack_batch(write_missing.encode(), compress=True),
    ]
    answers, _root = serve(tmp_path, frames)
    assert answers[1] == (Kind.ACK, {"seq": 3, "diverged": 0})
    assert answers[2] == (Kind.ACK, {"seq": 4, "diverged": 1})  # the sender then compares everything again


CDP = {"enabled": True, "retention": 3600, "max_size": 1 << 30}


def cdp_hello(root: Path) -> bytes:
    return pack_json(Kind.HELLO, {"scenario": "t", "root": str(root), "cdp": CDP})


def test_with_cdp_every_batch_is_logged_before_it_is_applied_and_a_rewound_replica_applies_nothing(
    tmp_path: Path,
) -> None:
    from twinsite.cdp.log import RewindLog
    from twinsite.cdp.rewind import RewindError, move

    answers, root = serve(tmp_path, [cdp_hello(tmp_path / "root"), pack_batch(blob(recs(1, 3)), compress=False)])
    assert answers[-1] == (Kind.ACK, {"seq": 3, "diverged": 0})
    log = RewindLog(tmp_path / "state" / "rewind")
    assert [(g.first_seq, g.last_seq) for g in log.groups()] == [(1, 3)]
    move(root, log, 3, 0)  # rewound: the three files are gone again ...
    assert sorted(p.name for p in root.iterdir()) == []
    with pytest.raises(RewindError, match="rewound to seq 0"):  # (sent as an ERROR frame by `receive`)
        serve(tmp_path, [cdp_hello(root), pack_batch(blob(recs(4, 1)), compress=False)])
    assert sorted(p.name for p in root.iterdir()) == []  # ... and nothing was applied
    move(root, log, 3, 3)
    answers, _ = serve(tmp_path, [cdp_hello(root), pack_batch(blob(recs(4, 1)), compress=False)])
    assert answers[-1][1]["seq"] == 4 and sorted(p.name for p in root.iterdir()) == ["f1", "f2", "f3", "f4"]


def test_a_group_logged_but_not_applied_before_a_crash_is_finished_from_the_log(tmp_path: Path) -> None:
    from twinsite.cdp.log import RewindLog, make_group

    answers, root = serve(tmp_path, [cdp_hello(tmp_path / "root"), pack_batch(blob(recs(1, 3)), compress=False)])
    log = RewindLog(tmp_path / "state" / "rewind")
    log.append(make_group(recs(4, 2), []))  # the crash: logged (fsynced), never applied nor acknowledged
    log.close()
    answers, _ = serve(tmp_path, [cdp_hello(root)])
    assert answers == [(Kind.READY, {"applied_seq": 5, "version": answers[0][1]["version"]})]
    assert sorted(p.name for p in root.iterdir()) == ["f1", "f2", "f3", "f4", "f5"]
    assert SeqFile(tmp_path / "state" / "applied_seq").read() == 5
    answers, _ = serve(tmp_path, [pack_json(Kind.HELLO, {"scenario": "t", "root": str(root)})])  # CDP turned off
    assert not (tmp_path / "state" / "rewind").exists()  # a log with a gap could not rewind: it goes

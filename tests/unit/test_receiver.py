"""The receiver over a real byte stream: acknowledgements, replays ignored, gaps and corrupt frames refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import zstandard

from tests.unit.receiving import blob, hello, recs, serve
from twinsite.config.scenario import Cdp
from twinsite.errors import ConfigError, ProtocolError
from twinsite.journal.record import Op, Record
from twinsite.state.applied import AppliedFile
from twinsite.state.layout import ReceiverState
from twinsite.transport.frames import COMPRESSED, HEAD, MAGIC, MAX_BATCH_RAW, Kind, pack, pack_batch


def test_batches_are_acknowledged_after_they_are_durable(tmp_path: Path) -> None:
    root, state = tmp_path / "root", ReceiverState(tmp_path / "state")
    frames = [
        hello(root),
        pack_batch(blob(recs(1, 3)), compress=True),
        pack_batch(blob(recs(4, 2)), compress=False),
    ]
    answers = serve(root, state, frames, raising=True)
    assert answers == [
        (Kind.READY, {"applied_seq": 0, "version": "0.1.0"}),
        (Kind.ACK, {"seq": 3, "diverged": 0}),
        (Kind.ACK, {"seq": 5, "diverged": 0}),
    ]
    assert sorted(p.name for p in root.iterdir()) == ["f1", "f2", "f3", "f4", "f5"]
    seqfile = AppliedFile(state.applied)
    assert seqfile.read() == 5
    seqfile.close()


def test_a_replayed_batch_is_ignored(tmp_path: Path) -> None:
    root, state = tmp_path / "root", ReceiverState(tmp_path / "state")
    serve(root, state, [hello(root), pack_batch(blob(recs(1, 3)), compress=True)], raising=True)
    (root / "f2").write_text("changed on the replica by someone")
    answers = serve(root, state, [hello(root), pack_batch(blob(recs(1, 3)), compress=True)], raising=True)
    assert answers[0] == (Kind.READY, {"applied_seq": 3, "version": "0.1.0"})
    assert answers[1] == (Kind.ACK, {"seq": 3, "diverged": 0})
    assert (root / "f2").read_text() == "changed on the replica by someone"  # not re-applied


def test_a_sequence_gap_is_refused(tmp_path: Path) -> None:
    root, state = tmp_path / "root", ReceiverState(tmp_path / "state")
    with pytest.raises(ProtocolError, match="sequence gap: applied up to 3, got 5"):
        serve(root, state, [hello(root), pack_batch(blob(recs(1, 3) + recs(5, 1)), compress=True)], raising=True)


def test_a_frame_with_a_flipped_bit_is_refused(tmp_path: Path) -> None:
    root, state = tmp_path / "root", ReceiverState(tmp_path / "state")
    frame = bytearray(pack_batch(blob(recs(1, 3)), compress=False))
    frame[HEAD.size + 17] ^= 0x04
    with pytest.raises(ProtocolError, match="checksum mismatch"):
        serve(root, state, [hello(root), bytes(frame)], raising=True)
    assert not (root / "f1").exists()


def test_an_absurd_frame_length_is_refused_before_reading(tmp_path: Path) -> None:
    root, state = tmp_path / "root", ReceiverState(tmp_path / "state")
    frame = HEAD.pack(MAGIC, Kind.BATCH, 0, 1 << 31, 0)
    with pytest.raises(ProtocolError, match="exceeds"):
        serve(root, state, [hello(root), frame], raising=True)


def test_a_decompression_bomb_is_refused(tmp_path: Path) -> None:
    root, state = tmp_path / "root", ReceiverState(tmp_path / "state")
    bomb = zstandard.ZstdCompressor(level=19, write_content_size=False).compress(b"\0" * (MAX_BATCH_RAW + 4096))
    assert len(bomb) < 1 << 20
    with pytest.raises(ProtocolError, match="does not decompress within"):
        serve(root, state, [hello(root), pack(Kind.BATCH, bomb, COMPRESSED)], raising=True)


def test_a_torn_frame_ends_the_session_without_applying_it(tmp_path: Path) -> None:
    root, state = tmp_path / "root", ReceiverState(tmp_path / "state")
    frame = pack_batch(blob(recs(1, 3)), compress=False)
    answers = serve(root, state, [hello(root), frame[: len(frame) // 2]], raising=True)
    assert answers == [(Kind.READY, {"applied_seq": 0, "version": "0.1.0"})]
    assert list(root.iterdir()) == []


def test_a_sender_for_another_root_is_refused(tmp_path: Path) -> None:
    root, state = tmp_path / "root", ReceiverState(tmp_path / "state")
    with pytest.raises(ConfigError, match="the sender replicates /srv/other, this host declares"):
        serve(root, state, [hello(Path("/srv/other"))], raising=True)


def test_a_record_with_nothing_to_act_on_after_the_first_batch_is_reported_as_divergence(tmp_path: Path) -> None:
    root, state = tmp_path / "root", ReceiverState(tmp_path / "state")
    write_missing = Record(seq=4, ts=0.0, op=Op.WRITE, path=b"not-there", data=b"x")
    frames = [
        hello(root),
        pack_batch(blob(recs(1, 3)), compress=True),
        pack_batch(write_missing.encode(), compress=True),
    ]
    answers = serve(root, state, frames, raising=True)
    assert answers[1] == (Kind.ACK, {"seq": 3, "diverged": 0})
    assert answers[2] == (Kind.ACK, {"seq": 4, "diverged": 1})  # the sender then compares everything again


CDP = Cdp(enabled=True, retention=3600, max_size=1 << 30)


def test_with_cdp_every_batch_is_logged_before_it_is_applied_and_a_rewound_replica_applies_nothing(
    tmp_path: Path,
) -> None:
    from twinsite.cdp.log import RewindLog
    from twinsite.cdp.rewind import move
    from twinsite.errors import RewindError

    root, state = tmp_path / "root", ReceiverState(tmp_path / "state")
    answers = serve(root, state, [hello(root), pack_batch(blob(recs(1, 3)), compress=False)], raising=True, cdp=CDP)
    assert answers[-1] == (Kind.ACK, {"seq": 3, "diverged": 0})
    log = RewindLog(state.rewind_log)
    assert [(g.first_seq, g.last_seq) for g in log.groups()] == [(1, 3)]
    move(root, state, log, 3, 0)  # rewound: the three files are gone again ...
    assert sorted(p.name for p in root.iterdir()) == []
    with pytest.raises(RewindError, match="rewound to seq 0"):  # (sent as an ERROR frame by `receive`)
        serve(root, state, [hello(root), pack_batch(blob(recs(4, 1)), compress=False)], raising=True, cdp=CDP)
    assert sorted(p.name for p in root.iterdir()) == []  # ... and nothing was applied
    move(root, state, log, 3, 3)
    answers = serve(root, state, [hello(root), pack_batch(blob(recs(4, 1)), compress=False)], raising=True, cdp=CDP)
    assert answers[-1][1]["seq"] == 4 and sorted(p.name for p in root.iterdir()) == ["f1", "f2", "f3", "f4"]


def test_a_group_logged_but_not_applied_before_a_crash_is_finished_from_the_log(tmp_path: Path) -> None:
    from twinsite.cdp.log import RewindLog, make_group

    root, state = tmp_path / "root", ReceiverState(tmp_path / "state")
    answers = serve(root, state, [hello(root), pack_batch(blob(recs(1, 3)), compress=False)], raising=True, cdp=CDP)
    log = RewindLog(state.rewind_log)
    log.append(make_group(recs(4, 2), []))  # the crash: logged (fsynced), never applied nor acknowledged
    log.close()
    answers = serve(root, state, [hello(root)], raising=True, cdp=CDP)
    assert answers == [(Kind.READY, {"applied_seq": 5, "version": answers[0][1]["version"]})]
    assert sorted(p.name for p in root.iterdir()) == ["f1", "f2", "f3", "f4", "f5"]
    assert AppliedFile(state.applied).read() == 5
    answers = serve(root, state, [hello(root)], raising=True)  # CDP turned off here
    assert not (state.rewind_log).exists()  # a log with a gap could not rewind: it goes


def test_a_session_that_outlives_its_sender_never_applies_after_a_newer_one(tmp_path: Path) -> None:
    """A receiver whose sender died (kill -9 of the agent, a cut link) can still be reading what was sent before,
    while the restarted sender's new session applies the same seqs and more. The old session must not apply
    a batch once a newer session has begun: from its stale position it would write older bytes over newer ones
    that the new session has acknowledged (found as a lost write under kill -9 in the lab)."""
    from tests.unit.receiving import Piped, Standby
    from twinsite.apply.batching import wire_batches
    from twinsite.errors import TwinsiteError
    from twinsite.journal.record import Meta
    from twinsite.transport.link import Link

    dr1 = Standby(tmp_path)
    dr1.root.mkdir(parents=True)

    def session() -> tuple[Piped, Link]:
        ch = Piped(dr1)
        link = Link(ch, where="dr1", idle_timeout=60)
        link.request(Kind.HELLO, {"scenario": "app", "root_index": 0, "root": str(dr1.root)}, Kind.READY)
        return ch, link

    def send(link: Link, *records: Record) -> None:
        for batch, raw in wire_batches(((r, r.encode()) for r in records), 1 << 20):
            link.send_batch(raw, batch[-1].seq, compress=False)
        assert link.wait_acked(records[-1].seq, timeout=30)

    old_ch, old = session()
    send(old, Record(1, 0.0, Op.CREATE, b"f", meta=Meta(0o644, 0, 0, 0)), Record(2, 0.0, Op.WRITE, b"f", data=b"one"))
    new_ch, new = session()  # the sender restarted: it resumes from 2
    try:
        send(new, Record(3, 0.0, Op.WRITE, b"f", data=b"new"))
        assert (dr1.root / "f").read_bytes() == b"new"
        # what the old session still had on its way: the old agent's seq 3 (its bytes of before)
        with pytest.raises(TwinsiteError, match="a newer session"):
            send(old, Record(3, 0.0, Op.WRITE, b"f", data=b"old"))
        assert (dr1.root / "f").read_bytes() == b"new"  # the acknowledged bytes stay
        send(new, Record(4, 0.0, Op.WRITE, b"f", offset=3, data=b"+"))
        assert (dr1.root / "f").read_bytes() == b"new+"
    finally:
        for link, ch in ((old, old_ch), (new, new_ch)):
            link.close()
            ch.close()

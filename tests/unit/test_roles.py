"""Roles and epochs: which host is active lives in state, a receiver takes only its own epoch's sender and
never replicates into itself while active, a promotion stops replication at a batch boundary, and a
position from another epoch is not trusted."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
import xxhash

from tests.unit.receiving import Answers, blob, hello, recs, serve
from twinsite.agent import loop
from twinsite.config.scenario import Scenario
from twinsite.state import applied, bookmarks, sender_epoch
from twinsite.state.applied import AppliedFile, AppliedPosition
from twinsite.state.layout import ReceiverState, ScenarioState
from twinsite.state.role import Role, advanced, check_sender, current, standbys, store
from twinsite.state.role import stamps as role_stamps
from twinsite.transport.frames import Kind, pack_batch


def scenario(**extra: object) -> Scenario:
    return Scenario.from_document(
        {"name": "db", "master": "prod1", "replicas": ["dr1"], "roots": [{"path": "/srv/db"}], **extra}
    )


class Replica:
    """A receiver's state laid out as on a host (state.layout): root 0 of scenario db, and its role file."""

    def __init__(self, tmp: Path, host: str = "dr1") -> None:
        self.place = ScenarioState(tmp / "state", "db")
        self.recv = self.place.receiver(0)
        self.root = tmp / "root"
        self.host = host

    def serve(self, frames: list[bytes], monkeypatch: pytest.MonkeyPatch) -> Answers:
        monkeypatch.setenv("TWINSITE_HOST", self.host)
        return serve(self.root, self.recv, frames)

    def hello(self, epoch: int, host: str = "prod1") -> bytes:
        return hello(self.root, "db", epoch=epoch, host=host)

    def position(self) -> AppliedPosition:
        return applied.read(self.recv.applied)


def test_without_a_role_file_the_declared_master_is_active_at_epoch_0(tmp_path: Path) -> None:
    place = ScenarioState(tmp_path, "db")
    r = current(place, "prod1")
    assert (r.active, r.epoch) == ("prod1", 0)
    assert standbys(r, "prod1", ("dr1", "dr2")) == ["dr1", "dr2"]
    nxt = advanced(r, "dr1", "run1")
    store(place, nxt)
    back = current(place, "prod1")
    assert (back.active, back.epoch, back.previous, back.run) == ("dr1", 1, "prod1", "run1")
    assert standbys(back, "prod1", ("dr1", "dr2")) == ["prod1", "dr2"]


def test_a_sender_of_another_epoch_or_into_the_active_host_is_refused(tmp_path: Path) -> None:
    place = ScenarioState(tmp_path, "db")
    f = place.role
    assert check_sender(f, "dr1", 0, "prod1") == 0  # nothing switched yet
    store(place, Role("db", "dr1", 1))
    with pytest.raises(Exception, match="dr1 is the active host of this scenario") as exc:
        check_sender(f, "dr1", 1, "prod1")
    assert type(exc.value).__name__ == "SupersededError"
    store(place, Role("db", "dr1", 1))
    with pytest.raises(Exception, match="prod1 replicates at epoch 0, but prod1 knows epoch 1") as exc2:
        check_sender(f, "prod1", 0, "prod1")
    assert "superseded" in str(exc2.value)
    assert check_sender(f, "prod1", 1, "dr1") == 1  # prod1, a standby of dr1 at epoch 1


def test_a_stale_active_host_is_refused_and_nothing_is_applied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rep = Replica(tmp_path)
    assert rep.serve([rep.hello(0), pack_batch(blob(recs(1, 3)), compress=True)], monkeypatch)[-1][0] == Kind.ACK
    store(rep.place, advanced(Role("db", "prod1"), "dr1", "r1"))  # dr1 was promoted
    answers = rep.serve([rep.hello(0), pack_batch(blob(recs(4, 2)), compress=True)], monkeypatch)
    assert [k for k, _ in answers] == [Kind.ERROR]
    assert answers[0][1]["type"] == "SupersededError"
    assert sorted(p.name for p in rep.root.iterdir()) == ["f1", "f2", "f3"]
    assert rep.position().seq == 3


def test_a_promotion_during_a_session_stops_it_at_the_next_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rep = Replica(tmp_path)

    class PromoteAfterFirstBatch(io.BytesIO):
        """The stream a sender writes; the switchover promotes dr1 once the first batch was read."""

        def readinto(self, buf: object) -> int:
            n = super().readinto(buf)  # type: ignore[arg-type]
            if self.tell() > first_end and not rep.place.role.exists():
                store(rep.place, advanced(Role("db", "prod1"), "dr1", "r1"))
            return n

    frames = [rep.hello(0), pack_batch(blob(recs(1, 3)), compress=True), pack_batch(blob(recs(4, 2)), compress=True)]
    first_end = len(frames[0]) + len(frames[1])
    monkeypatch.setenv("TWINSITE_HOST", "dr1")
    with pytest.raises(Exception, match="dr1 is the active host"):
        serve(rep.root, rep.recv, frames, raising=True, stream=PromoteAfterFirstBatch)
    assert sorted(p.name for p in rep.root.iterdir()) == ["f1", "f2", "f3"]
    assert rep.position() == AppliedPosition(3, 0.0, 0)


def test_a_position_from_another_epoch_is_reset_with_its_rewind_log_and_bookmarks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rep = Replica(tmp_path, host="prod1")  # prod1, once active, now a standby of dr1
    applied.write(rep.recv.applied, 5000, 1.5, 0)
    rep.recv.rewind_log.mkdir()
    (rep.recv.rewind_log / "00000000000000000001.rwl").write_bytes(b"old epoch")
    bookmarks.add(rep.recv.bookmarks, "before", 4000, 1.0)
    store(rep.place, advanced(Role("db", "prod1"), "dr1", "r1"))
    answers = rep.serve([rep.hello(1, host="dr1"), pack_batch(blob(recs(1, 2)), compress=True)], monkeypatch)
    assert answers[0] == (Kind.READY, {"applied_seq": 0, "version": "0.1.0"})
    assert answers[1][0] == Kind.ACK and answers[1][1]["seq"] == 2
    assert rep.position() == AppliedPosition(2, 0.0, 1)
    assert not rep.recv.rewind_log.exists() and not rep.recv.bookmarks.exists()
    assert bookmarks.load(rep.recv.old_bookmarks(0))["before"]["seq"] == 4000


def test_the_position_file_keeps_time_and_epoch_and_reads_the_old_format(tmp_path: Path) -> None:
    at = ReceiverState(tmp_path).applied
    f = AppliedFile(at)
    assert f.position() == AppliedPosition()
    f.write(42, 1764612345.25, 3)
    assert f.position() == AppliedPosition(42, 1764612345.25, 3)
    f.write(43, 1764612346.0)  # the epoch stays
    assert f.position() == AppliedPosition(43, 1764612346.0, 3)
    f.close()
    old = tmp_path / "old"
    old.write_bytes(struct.pack("<QQ", 7, xxhash.xxh3_64_intdigest(struct.pack("<Q", 7))))
    g = AppliedFile(old)
    assert g.position() == AppliedPosition(7, 0.0, 0)
    g.close()
    raw = bytearray(at.read_bytes())
    raw[3] ^= 1
    at.write_bytes(bytes(raw))  # (a damaged position: by hand)
    h = AppliedFile(at)
    with pytest.raises(Exception, match="corrupt"):
        h.position()
    h.close()


def test_the_agent_runs_senders_where_the_role_says_and_drops_another_epochs_journal(tmp_path: Path) -> None:
    s = scenario()
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    assert [v[2:] for v in loop.wanted([s], "prod1", cfg, tmp_path).values()] == [("dr1", 0)]
    assert loop.wanted([s], "dr1", cfg, tmp_path) == {}
    store(ScenarioState(tmp_path, "db"), advanced(Role("db", "prod1"), "dr1", "r1"))
    assert loop.wanted([s], "prod1", cfg, tmp_path) == {}
    assert [v[2:] for v in loop.wanted([s], "dr1", cfg, tmp_path).values()] == [("prod1", 1)]
    old = ScenarioState(tmp_path, "db").sender(0, "prod1")
    old.journal.mkdir(parents=True)
    (old.journal / "seg").write_bytes(b"epoch 0 records")
    snd = loop.make_sender(s, 0, "prod1", tmp_path, epoch=1)
    try:
        assert not (old.journal / "seg").exists()
        assert sender_epoch.read(old.epoch) == 1
        assert snd.epoch == 1
    finally:
        snd.journal.close()


def test_the_agent_wakes_at_once_for_a_switchover_and_otherwise_waits_for_its_reload(tmp_path: Path) -> None:
    """A switchover's new active host starts sending as soon as its role is written, not at the next reload
    (a site failover of 14 scenarios waited up to a reload for each)."""
    import threading
    import time

    done = threading.Event()
    seen = role_stamps(tmp_path, ["db", "app"])
    t0 = time.monotonic()
    loop._pause(done, 0.5, tmp_path, ["db", "app"], seen)  # nothing changes: the whole pause
    assert time.monotonic() - t0 >= 0.5
    timer = threading.Timer(0.2, store, (ScenarioState(tmp_path, "db"), advanced(Role("db", "prod1"), "dr1", "r")))
    timer.start()
    t0 = time.monotonic()
    loop._pause(done, 30, tmp_path, ["db", "app"], seen)  # the role of db is written after 0.2 s
    took = time.monotonic() - t0
    timer.join()
    assert 0.2 <= took < 0.2 + 5 * loop.ROLE_LOOK_EVERY
    seen = role_stamps(tmp_path, ["db", "app"])
    store(ScenarioState(tmp_path, "db"), advanced(current(ScenarioState(tmp_path, "db"), "prod1"), "prod1", "r2"))
    t0 = time.monotonic()
    loop._pause(done, 30, tmp_path, ["db", "app"], seen)  # written again (switched back): a new stamp
    assert time.monotonic() - t0 < 5 * loop.ROLE_LOOK_EVERY
    done.set()
    t0 = time.monotonic()
    loop._pause(done, 30, tmp_path, ["db"], role_stamps(tmp_path, ["db"]))  # the agent stopping: no wait
    assert time.monotonic() - t0 < 1


def test_a_standby_that_missed_a_switchover_follows_the_first_sender_of_the_newer_epoch(tmp_path: Path) -> None:
    """dr2 did not answer when dr1 was promoted (epoch 1): dr1's HELLO re-points it. A batch never does, the
    active host never does, and the old epoch is refused from then on."""
    place = ScenarioState(tmp_path, "db")
    f = place.role
    assert check_sender(f, "dr2", 1, "dr1", master="prod1") == 1
    r = current(place, "prod1")
    assert (r.scenario, r.active, r.epoch, r.previous) == ("db", "dr1", 1, "prod1") and r.since > 0
    with pytest.raises(Exception, match="prod1 replicates at epoch 0, but dr2 knows epoch 1"):
        check_sender(f, "dr2", 0, "prod1", master="prod1")
    with pytest.raises(Exception, match="dr1 replicates at epoch 2, but dr2 knows epoch 1"):
        check_sender(f, "dr2", 2, "dr1")  # without master: a batch of a session, never a re-pointing
    assert check_sender(f, "dr2", 2, "prod1", master="prod1") == 2  # switched back meanwhile: follows again
    assert current(place, "prod1").active == "prod1"
    master = ScenarioState(tmp_path, "other")  # no role file: the declared master is active
    with pytest.raises(Exception, match="run `twinsite rejoin SCENARIO` on prod1"):
        check_sender(master.role, "prod1", 1, "dr1", master="prod1")
    store(place, Role("db", "dr2", 3))  # active by its own view: refuses, never follows
    with pytest.raises(Exception, match="dr2 is the active host"):
        check_sender(f, "dr2", 4, "dr1", master="prod1")
    assert current(place, "prod1").active == "dr2"

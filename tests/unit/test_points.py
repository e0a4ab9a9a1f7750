"""Consistency points on a real btrfs (a loop file), judged byte for byte: each point is planned from its
read-only snapshot with the filesystem's own change list (capture.snapshots.changeset), applied to a replica,
and the replica must then equal that snapshot exactly, whatever happened in the live tree meanwhile. Then the
standby's side: a POINT ends each point, the last complete one is stored, and the open point is undone
(cdp.rewind.to_point) even with CDP off."""

from __future__ import annotations

import io
import mmap
import os
import random
import time
from pathlib import Path
from typing import Any

import pytest

from tests.btrfs import needs_btrfs
from tests.fsops import mutate, populate
from tests.unit.receiving import blob, hello
from twinsite.apply.applier import Applier
from twinsite.capture.snapshots import Btrfs, changeset
from twinsite.cdp.rewind import to_point
from twinsite.config.scenario import POINT_STORE, reserved
from twinsite.engine.receiver import Receiver, replica_signatures
from twinsite.journal.record import Meta, Op, Record
from twinsite.state import applied, point
from twinsite.state.layout import ReceiverState
from twinsite.sync.planner import Planner
from twinsite.transport.frames import pack_batch
from twinsite.tree import differences, digest, entries


def replicated(rel: bytes) -> bool:
    return not reserved(os.fsdecode(rel))


class Points:
    """The sender's point loop without the wire: snapshot, change list, plan from the snapshot, apply."""

    def __init__(self, data: Path, replica: Path) -> None:
        self.snaps = Btrfs(data, data / POINT_STORE)
        self.snaps.prepare()
        replica.mkdir()
        self.applier = Applier(replica)
        self.seq = 0
        self.planner = Planner(
            data, block_size=4096, next_seq=self._next, now=lambda: 0.0, fetch_sigs=self._sigs, select=replicated
        )
        self.base: str | None = None
        self.records: list[Record] = []

    def _next(self) -> int:
        self.seq += 1
        return self.seq

    def _sigs(self, rel: bytes, first: int, count: int) -> bytes:
        return replica_signatures(self.applier.root_fd, rel, 4096, first, count)

    def point(self, n: int) -> Path:
        snap = self.snaps.take(str(n))
        self.planner.read_from(snap)
        if self.base is None:
            records = list(self.planner.plan_all())
        else:
            records = list(changeset(self.snaps.changes(self.base, str(n))).plan(self.planner))
            self.snaps.delete(self.base)
        self.base = str(n)
        for r in records:
            self.applier.apply(r)
        self.applier.commit()
        self.records = records
        return snap


def same(snap: Path, replica: Path) -> None:
    a, b = entries(snap, replicated), entries(replica)
    assert differences(a, b) == []
    assert digest(snap, replicated) == digest(replica)


@needs_btrfs
def test_every_point_equals_its_snapshot_byte_for_byte(volume: Path, tmp_path: Path) -> None:
    for seed in (1, 2, 3):
        data = volume / "data"
        rng = random.Random(seed)
        populate(data / f"w{seed}", rng, 40)
        pts = Points(data, tmp_path / f"replica{seed}")
        same(pts.point(0), tmp_path / f"replica{seed}")
        for n in range(1, 7):
            mutate(data / f"w{seed}", rng, 30)
            (data / f"top{n}").write_bytes(rng.randbytes(n * 100))  # (the root's own time changes: not replicated)
            snap = pts.point(n)
            mutate(data / f"w{seed}", rng, 5)  # the live tree moves on: the point is still the snapshot's
            same(snap, tmp_path / f"replica{seed}")
            assert not any(r.path.startswith(POINT_STORE.encode()) for r in pts.records)
        pts.applier.close()
        for old in (data / POINT_STORE).iterdir():
            pts.snaps.delete(old.name)


@needs_btrfs
def test_a_point_ships_exactly_the_extents_written(volume: Path, tmp_path: Path) -> None:
    data = volume / "data"
    big = data / "big"
    big.write_bytes(os.urandom(1 << 20))
    pts = Points(data, tmp_path / "replica")
    pts.point(0)
    with open(big, "r+b") as f:
        f.seek(409600)
        f.write(os.urandom(40960))
    snap = pts.point(1)
    writes = [(r.offset, len(r.data)) for r in pts.records if r.op == Op.WRITE]
    assert writes == [(409600, 40960)]
    same(snap, tmp_path / "replica")


@needs_btrfs
def test_a_write_through_mmap_that_leaves_the_time_is_shipped(volume: Path, tmp_path: Path) -> None:
    """inotify sees nothing of it and size and time are unchanged; the filesystem lists the extent."""
    data = volume / "data"
    f = data / "mapped"
    f.write_bytes(bytes(64 << 10))
    pts = Points(data, tmp_path / "replica")
    pts.point(0)
    st = f.stat()
    with open(f, "r+b") as fh, mmap.mmap(fh.fileno(), 0) as m:
        m[8192:8200] = b"mmapped!"
        m.flush()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert f.stat().st_mtime_ns == st.st_mtime_ns and f.stat().st_size == st.st_size
    snap = pts.point(1)
    assert (tmp_path / "replica" / "mapped").read_bytes()[8192:8200] == b"mmapped!"
    same(snap, tmp_path / "replica")


@needs_btrfs
def test_the_root_must_be_a_subvolume_and_the_store_is_twinsites(volume: Path, tmp_path: Path) -> None:
    import pytest

    from twinsite.errors import ConfigError

    plain = volume / "data" / "plain"
    plain.mkdir()
    with pytest.raises(ConfigError, match="not a btrfs subvolume") as err:
        Btrfs(plain, plain / POINT_STORE).prepare()
    assert "consistency: file" in str(err.value.hint)
    data = volume / "data"
    (data / POINT_STORE).mkdir()  # a plain directory in its place
    with pytest.raises(ConfigError, match="point store"):
        Btrfs(data, data / POINT_STORE).prepare()


# -- the standby ------------------------------------------------------------------------------------------
def rec(seq: int, op: Op, path: bytes = b"", **kw: object) -> Record:
    return Record(seq=seq, ts=100.0 + seq, op=op, path=path, **kw)  # type: ignore[arg-type]


def session(root: Path, state: ReceiverState, batches: list[list[Record]]) -> None:
    sent = [hello(root)]
    sent += [pack_batch(blob(b), compress=False) for b in batches]
    rx = Receiver(root, state, io.BytesIO(b"".join(sent)), io.BytesIO(), points=True)
    try:
        rx.serve()
    finally:
        rx.close()


def test_the_open_point_is_undone_and_brought_forward_again(tmp_path: Path) -> None:
    root, state = tmp_path / "replica", ReceiverState(tmp_path / "state")
    meta = Meta(0o644, 0, 0, 0)
    point1 = [
        rec(1, Op.CREATE, b"wal", meta=meta),
        rec(2, Op.WRITE, b"wal", data=b"A" * 100),
        rec(3, Op.CREATE, b"table", meta=meta),
        rec(4, Op.WRITE, b"table", data=b"old rows"),
        rec(5, Op.POINT, offset=1001),
    ]
    torn = [  # the next point, cut after its first records: a data page newer than the WAL that describes it
        rec(6, Op.WRITE, b"table", data=b"NEW rows"),
        rec(7, Op.CREATE, b"half", meta=meta),
    ]
    session(root, state, [point1[:2], point1[2:] + torn])  # (a point and the open one in one batch)
    assert applied.read(state.applied).seq == 7
    assert point.read(state.point) == point.Point(id=1001, seq=5, ts=105.0, epoch=0)
    assert (root / "table").read_bytes() == b"NEW rows"

    assert to_point(root, state) == point.read(state.point)
    assert (root / "table").read_bytes() == b"old rows"
    assert not (root / "half").exists()
    assert (root / "wal").read_bytes() == b"A" * 100
    assert applied.read(state.applied).seq == 5 and applied.read(state.applied).ts == 105.0
    assert to_point(root, state) == point.read(state.point)  # idempotent

    # the sender resumes where it was acknowledged: the undone records come back from the log, then more
    session(root, state, [[rec(8, Op.WRITE, b"wal", offset=100, data=b"B"), rec(9, Op.POINT, offset=1002)]])
    assert applied.read(state.applied).seq == 9
    assert (root / "table").read_bytes() == b"NEW rows" and (root / "half").exists()
    assert point.read(state.point) == point.Point(id=1002, seq=9, ts=109.0, epoch=0)
    assert to_point(root, state) == point.read(state.point)  # at a point: nothing to undo
    assert (root / "wal").read_bytes() == b"A" * 100 + b"B"


def test_no_complete_point_is_none(tmp_path: Path) -> None:
    root, state = tmp_path / "replica", ReceiverState(tmp_path / "state")
    session(root, state, [[rec(1, Op.CREATE, b"f", meta=Meta(0o644, 0, 0, 0))]])
    assert to_point(root, state) is None
    assert (root / "f").exists()  # (nothing undone: the caller refuses to make it live)


def test_a_test_runs_on_the_last_point_and_everything_is_applied_after_it(tmp_path: Path) -> None:
    """The recovery test's spool step: the open point undone under the spool; what arrives meanwhile is
    spooled; when the spool is applied, the undone records come back first, then the spooled ones."""
    from twinsite.engine.spool import Spool

    root, state = tmp_path / "replica", ReceiverState(tmp_path / "state")
    meta = Meta(0o644, 0, 0, 0)
    session(
        root,
        state,
        [[rec(1, Op.CREATE, b"t", meta=meta), rec(2, Op.POINT, offset=1), rec(3, Op.WRITE, b"t", data=b"x")]],
    )
    spool = Spool(state)
    spool.start(max_size=1 << 20, reason="test")
    assert to_point(root, state) == point.Point(id=1, seq=2, ts=102.0)
    assert (root / "t").read_bytes() == b""  # the test sees the point, not the open write
    session(root, state, [[rec(4, Op.WRITE, b"t", offset=1, data=b"y"), rec(5, Op.POINT, offset=2)]])
    assert (root / "t").read_bytes() == b"" and applied.read(state.applied).seq == 2  # spooled, not applied
    spool.stop()
    session(root, state, [[rec(6, Op.WRITE, b"t", offset=2, data=b"z")]])
    assert (root / "t").read_bytes() == b"xyz"
    assert applied.read(state.applied).seq == 6
    assert point.read(state.point) == point.Point(id=2, seq=5, ts=105.0)
    spool.close()


def test_a_crash_before_the_point_is_stored_leaves_the_previous_point_reachable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kill -9 between the point's records made durable and the point stored: the replica's last complete
    point is the one before, and it can still be reached (its undo is kept until a newer point is stored)."""
    root, state = tmp_path / "replica", ReceiverState(tmp_path / "state")
    meta = Meta(0o644, 0, 0, 0)
    session(
        root,
        state,
        [[rec(1, Op.CREATE, b"t", meta=meta), rec(2, Op.WRITE, b"t", data=b"one"), rec(3, Op.POINT, offset=1)]],
    )

    def crash(*_args: object) -> None:
        raise SystemExit("killed")  # (where kill -9 would stop the receiver)

    monkeypatch.setattr(point, "write", crash)
    second = [rec(4, Op.WRITE, b"t", data=b"two"), rec(5, Op.CREATE, b"u", meta=meta), rec(6, Op.POINT, offset=2)]
    with pytest.raises(SystemExit):
        session(root, state, [second])
    monkeypatch.undo()
    assert applied.read(state.applied).seq == 6  # the records are durable ...
    assert point.read(state.point) == point.Point(id=1, seq=3, ts=103.0)  # ... the point was not stored
    assert to_point(root, state) == point.Point(id=1, seq=3, ts=103.0)
    assert (root / "t").read_bytes() == b"one" and not (root / "u").exists()


@needs_btrfs
def test_snapshots_a_killed_agent_left_are_removed_when_it_starts_again(volume: Path) -> None:
    data = volume / "data"
    snaps = Btrfs(data, data / POINT_STORE)
    snaps.prepare()
    snaps.take("1700000000000")
    snaps.take("1700000001000")
    snaps.prepare()
    assert list((data / POINT_STORE).iterdir()) == []


def test_a_root_that_cannot_have_points_is_said_and_alerted_once(tmp_path: Path) -> None:
    """Not a subvolume: the sender says why in its status and raises one alert, and keeps retrying (it never
    falls back to file mode by itself)."""
    import threading

    from twinsite.alerts.dispatch import Alerter
    from twinsite.config.scenario import Scenario
    from twinsite.engine.sender import Sender
    from twinsite.proc import wait_until
    from twinsite.state import events as event_log
    from twinsite.state import sender_status
    from twinsite.state.layout import HostState, ScenarioState
    from twinsite.transport.channels import Endpoint

    root = tmp_path / "plain"
    root.mkdir()
    s = Scenario.from_document({"name": "db", "master": "a", "replicas": ["b"], "roots": [{"path": str(root)}]})
    place = ScenarioState(tmp_path / "state", "db").sender(0, "b")
    sender = Sender(s, s.roots[0], Endpoint("b", ["true"]), place, replica="b", alerter=Alerter(tmp_path / "state", []))
    loop = threading.Thread(target=sender._plan_loop, daemon=True)
    loop.start()
    try:
        events = HostState(tmp_path / "state").events
        assert wait_until(lambda: event_log.read(events), timeout=30, interval=0.1)
        st = sender_status.read(place.status)
        assert st is not None and st.state == "degraded"
        assert st.last_error is not None and "is not a btrfs subvolume" in st.last_error
        time.sleep(2.5)  # (more attempts fail: still one alert)
    finally:
        sender.stop_event.set()
        loop.join(timeout=10)
        sender.stop()
    kinds = [e.get("kind") for e in event_log.read(events)]
    assert kinds == ["points-failing"], kinds


@pytest.mark.parametrize("kind", ["manifest", "sigs"])
def test_after_a_test_the_replica_is_listed_as_acknowledged_not_as_undone(tmp_path: Path, kind: str) -> None:
    """A session that began during a test (which undid the open point) is asked, once the test has ended with
    nothing spooled, for a listing or a comparison: it must see the acknowledged replica (the undone records
    applied again first), or a resync would plan against older bytes (found by the drill: a file left with
    old content under the new size and time)."""
    import json

    from tests.unit.receiving import answers_in
    from twinsite.engine.spool import Spool
    from twinsite.transport.frames import Kind, pack_json

    root, state = tmp_path / "replica", ReceiverState(tmp_path / "state")
    meta = Meta(0o644, 0, 0, 0)
    first = [rec(1, Op.CREATE, b"t", meta=meta), rec(2, Op.POINT, offset=1), rec(3, Op.WRITE, b"t", data=b"new")]
    session(root, state, [first])
    spool = Spool(state)
    spool.start(max_size=1 << 20, reason="test")
    to_point(root, state)
    assert (root / "t").read_bytes() == b""
    paths = {"paths": [b"t".hex()], "block_size": 4096}
    req = pack_json(Kind.MANIFEST_REQ, {}) if kind == "manifest" else pack_json(Kind.SIGS_REQ, paths)
    greeting = hello(root)

    class TestEnds(io.BytesIO):
        """The stream of a session that began during the test; the test ends once its hello is read."""

        def readinto(self, buf: Any) -> int:
            if self.tell() >= len(greeting) and spool.spooling:
                spool.stop()
            return super().readinto(buf)

    out = io.BytesIO()
    rx = Receiver(root, state, TestEnds(greeting + req), out, points=True)
    try:
        rx.serve()
    finally:
        rx.close()
        spool.close()
    answer = answers_in(out)[-1]
    assert answer[0] in (Kind.MANIFEST, Kind.SIGS), answer
    assert (root / "t").read_bytes() == b"new"
    listed = json.dumps(answer[1])
    assert ('"s": 3' in listed) if kind == "manifest" else (answer[1]["sigs"][b"t".hex()] != "")


@pytest.mark.parametrize("how", ["open point undone", "rewound to a bookmark"])
def test_a_promotion_at_an_earlier_point_is_final_for_a_session_still_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """An unplanned switchover promotes the replica at an earlier point than it applied: its last complete point
    (the open one undone), or the point a rewind chose. A session of the old active host that was still open
    (its link cut, then healed) and sends a keep-alive must not bring back what was undone: it is refused, and
    the rewind log keeps nothing above the promoted point (found by the drill: the records undone by a rewind
    applied again on dr1 after the failover, under PostgreSQL's feet, leaving a file with prod1's time over
    dr1's pages)."""
    import json

    from tests.unit.receiving import answers_in
    from twinsite.cdp.log import RewindLog
    from twinsite.cdp.rewind import move, pause
    from twinsite.config.store import load_dir
    from twinsite.ops.runner import Context
    from twinsite.ops.site import Site
    from twinsite.switchover import handover
    from twinsite.switchover.preflight import Preflight, Request, rewound_roots
    from twinsite.transport.frames import Kind, pack_json

    cfg, root = tmp_path / "cfg", tmp_path / "replica"
    cfg.mkdir()
    doc = {"name": "db", "master": "prod1", "replicas": ["dr1"], "roots": [{"path": str(root)}]}
    doc["replication"] = {"consistency": "points"}
    doc["cdp"] = {"enabled": how == "rewound to a bookmark"}
    (cfg / "db.yml").write_text(json.dumps(doc))
    site = Site(load_dir(cfg)[0], "dr1", tmp_path / "state", cfg, None)
    state = site.recv(0)
    meta = Meta(0o644, 0, 0, 0)
    batch = [
        rec(1, Op.CREATE, b"table", meta=meta),
        rec(2, Op.WRITE, b"table", data=b"old rows"),
        rec(3, Op.POINT, offset=1001),
        rec(4, Op.WRITE, b"table", data=b"NEW rows"),
        rec(5, Op.CREATE, b"later", meta=meta),
        rec(6, Op.POINT, offset=1002),
        rec(7, Op.WRITE, b"later", data=b"torn"),
    ]
    sent = [
        hello(root, "db", epoch=0, host="prod1"),
        pack_batch(blob(batch), compress=False),
    ]
    promote_at = sum(len(f) for f in sent)
    sent.append(pack_json(Kind.PING, {}))

    def fail_over() -> None:
        seen: list[dict[str, Any]] = []
        if how == "rewound to a bookmark":
            log = RewindLog(state.rewind_log)
            pause(state, head=7, target=3)
            move(root, state, log, 7, 3)
            log.close()
            seen = rewound_roots(site, Request(rewound=True))
        pre = Preflight("prod1", "dr1", epoch=1, mode="unplanned", replication_last_seen=None, rewound=seen)
        handover._take_over(site, Context("r1", {}, {"preflight": pre.to_json()}), site.role(), changed=True)

    class LinkHealsAfterTheFailover(io.BytesIO):
        def readinto(self, buf: Any) -> int:
            if self.tell() >= promote_at and site.role().active != "dr1":
                fail_over()
            return super().readinto(buf)

    monkeypatch.setenv("TWINSITE_HOST", "dr1")
    rx = Receiver(
        root, state, LinkHealsAfterTheFailover(b"".join(sent)), out := io.BytesIO(), cdp=site.s.cdp, points=True
    )
    with pytest.raises(Exception, match="dr1 is the active host") as refused:
        try:
            rx.serve()
        finally:
            rx.close()
    assert type(refused.value).__name__ == "SupersededError"
    assert [k for k, _ in answers_in(out)] == [Kind.READY, Kind.ACK]
    assert site.role().active == "dr1" and site.role().epoch == 1
    assert (root / "table").read_bytes() == b"NEW rows" if how == "open point undone" else b"old rows"
    assert not (root / "later").exists() if how == "rewound to a bookmark" else (root / "later").read_bytes() == b""
    promoted = applied.read(state.applied).seq
    assert promoted == (6 if how == "open point undone" else 3)
    assert RewindLog(state.rewind_log).last_seq == promoted  # nothing above the live data is left to redo


@needs_btrfs
def test_snapshots_are_kept_from_the_acknowledged_point_on_bounded_and_never_removed_while_pinned(
    volume: Path, tmp_path: Path
) -> None:
    """`twinsite verify` compares the standby's last complete point with the snapshot it came from: the sender
    keeps that snapshot (and every later one, at most KEPT_POINTS) and removes none while verify pins them."""
    from twinsite.config.scenario import Scenario
    from twinsite.engine.sender import KEPT_POINTS, Sender, Snap
    from twinsite.locks import held
    from twinsite.state.layout import ScenarioState
    from twinsite.transport.channels import Endpoint

    data = volume / "data"
    s = Scenario.from_document({"name": "db", "master": "a", "replicas": ["b"], "roots": [{"path": str(data)}]})
    place = ScenarioState(tmp_path / "state", "db").sender(0, "b")
    sender = Sender(s, s.roots[0], Endpoint("b", ["true"]), place, replica="b")
    snaps = Btrfs(data, data / POINT_STORE)
    snaps.prepare()
    for n in range(1, 6):
        snaps.take(str(n * 1000))
    base = Snap(5000, snaps.path("5000"), 5.0)
    sender.publish(point_id=3000)  # the standby has point 3000 complete
    with held(place.points_pin):  # verify compares meanwhile
        sender._prune_points(snaps, base)
        assert snaps.names() == ["1000", "2000", "3000", "4000", "5000"]
    sender._prune_points(snaps, base)
    assert snaps.names() == ["3000", "4000", "5000"]
    for n in range(6, 30):  # the standby is gone: points pile up, the newest are kept
        snaps.take(str(n * 1000))
    sender._prune_points(snaps, Snap(29000, snaps.path("29000"), 29.0))
    assert snaps.names() == [str(n * 1000) for n in range(30 - KEPT_POINTS, 30)]
    sender._prune_points(snaps, None)  # the sender ends
    assert snaps.names() == []
    sender.stop()


def test_a_standby_held_at_its_point_spools_and_lets_go_when_the_caller_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The standby's side of verify: held at its last complete point (the open one undone), what arrives is
    spooled and acknowledged; once let go, the next keep-alive applies everything. A test's hold, a rewound
    replica and the active host refuse to be held."""
    import json

    from tests.unit.receiving import answers_in
    from twinsite.config.scenario import Scenario
    from twinsite.engine.spool import HOLD_REASON, Spool
    from twinsite.errors import RecoveryError, RewindError, TwinsiteError
    from twinsite.locks import held
    from twinsite.ops.at_point import hold
    from twinsite.ops.site import Site
    from twinsite.recovery.steps import Test, _replica_to_test
    from twinsite.state import rewind
    from twinsite.state.layout import ScenarioState
    from twinsite.state.rewind import RewindPosition
    from twinsite.state.role import Role, store
    from twinsite.transport.frames import Kind, pack_json

    root = tmp_path / "replica"
    doc = {"name": "db", "master": "prod1", "replicas": ["dr1"], "roots": [{"path": str(root)}]}
    s = Scenario.from_document(doc)
    place = ScenarioState(tmp_path / "state", "db")
    state = place.receiver(0)
    monkeypatch.setenv("TWINSITE_HOST", "dr1")
    meta = Meta(0o644, 0, 0, 0)
    session(
        root,
        state,
        [[rec(1, Op.CREATE, b"t", meta=meta), rec(2, Op.POINT, offset=7), rec(3, Op.WRITE, b"t", data=b"x")]],
    )
    with hold(s, tmp_path / "state", "dr1", 0) as p:
        assert p == point.Point(id=7, seq=2, ts=102.0)
        assert (root / "t").read_bytes() == b""  # the point, not the open write
        session(root, state, [[rec(4, Op.WRITE, b"t", offset=1, data=b"y"), rec(5, Op.POINT, offset=8)]])
        assert (root / "t").read_bytes() == b"" and Spool(state).held()  # spooled (and acknowledged)
        busy = pytest.raises(RecoveryError, match="is held by another verify")
        with busy, hold(s, tmp_path / "state", "dr1", 0):
            pass
        test = Test(Site(s, "dr1", tmp_path / "state", tmp_path, None))
        with pytest.raises(RecoveryError, match="is held by `twinsite verify` at its last complete point"):
            _replica_to_test(test, 0)  # (an assured-recovery test waits for the verify to end)
    assert not Spool(state).spooling
    sent = [hello(root), pack_json(Kind.PING, {})]
    rx = Receiver(root, state, io.BytesIO(b"".join(sent)), out := io.BytesIO(), points=True)
    rx.serve()
    rx.close()
    assert (root / "t").read_bytes() == b"xy" and point.read(state.point) == point.Point(id=8, seq=5, ts=105.0)
    assert json.dumps([k.name for k, _ in answers_in(out)]) == '["READY", "PONG"]'

    def ping() -> None:
        rx = Receiver(root, state, io.BytesIO(b"".join(sent)), io.BytesIO(), points=True)
        rx.serve()
        rx.close()

    spool = Spool(state)
    spool.start(max_size=1 << 20, reason=HOLD_REASON)  # a point-hold killed with SIGKILL left its marker
    with held(state.hold_lock):  # ... while it still runs, nothing ends its hold
        ping()
        assert spool.spooling
    ping()  # once it is gone, the next keep-alive ends it
    assert not spool.spooling
    spool.start(max_size=1 << 20, reason=HOLD_REASON)
    with hold(s, tmp_path / "state", "dr1", 0) as p:  # and so does the next verify
        assert p.seq == 5
    spool.start(max_size=1 << 20, reason="assured-recovery test r1")
    with pytest.raises(RecoveryError, match="held by an assured-recovery test"), hold(s, tmp_path / "state", "dr1", 0):
        pass
    ping()
    assert spool.spooling  # (a test's spool is the test's to end)
    spool.stop()

    rewind.store(state.rewind, RewindPosition(head=5, at=2, target=2))
    with pytest.raises(RewindError, match="is rewound"), hold(s, tmp_path / "state", "dr1", 0):
        pass
    state.rewind.unlink()
    store(place, Role("db", "dr1", 1))
    with pytest.raises(TwinsiteError, match="dr1 is the active host of db"), hold(s, tmp_path / "state", "dr1", 0):
        pass
    assert not Spool(state).spooling


def test_the_next_point_comes_early_when_the_root_changed_and_the_link_is_idle(tmp_path: Path) -> None:
    """A snapshot is due `point_interval` after the last one (even when that one found nothing: an idle root is
    not snapshotted back to back), or, after a quiet interval, as soon as inotify saw a change and the
    standby has acknowledged everything (never sooner than EARLY_POINT); the point store wakes nothing."""
    from twinsite.capture.inotify import Watcher
    from twinsite.config.scenario import Scenario
    from twinsite.engine.sender import EARLY_POINT, Sender, Snap
    from twinsite.state.layout import ScenarioState
    from twinsite.transport.channels import Endpoint

    root = tmp_path / "root"
    (root / POINT_STORE / "1000").mkdir(parents=True)  # (made before capture starts, as prepare() does)
    s = Scenario.from_document({"name": "db", "master": "a", "replicas": ["b"], "roots": [{"path": str(root)}]})
    sender = Sender(
        s, s.roots[0], Endpoint("b", ["true"]), ScenarioState(tmp_path / "state", "db").sender(0, "b"), replica="b"
    )
    sender.watcher = watcher = Watcher(root, skip=POINT_STORE.encode())

    def waited(idle: bool = True, point_age: float = 0.0) -> float:
        sender._idle = lambda: idle  # type: ignore[method-assign]
        tried = time.time()
        sender._next_point(Snap(1, root, tried - point_age), tried)
        return time.time() - tried

    assert waited(point_age=60) >= 1.0  # nothing changed (the last point is a minute old): the interval
    (root / POINT_STORE / "1000" / "f").write_bytes(b"a snapshot's file")  # (btrfs makes them read-only)
    watcher.read(timeout_ms=300)
    assert not watcher.wake.is_set() and waited(point_age=60) >= 1.0  # the store is not the tree
    (root / "wal").write_bytes(b"x")
    assert watcher.read(timeout_ms=1000) > 0 and watcher.wake.is_set()
    assert waited(idle=False, point_age=60) >= 1.0  # the standby has not acknowledged everything: the interval
    assert waited(point_age=0) >= 1.0  # a steady load (the last snapshot made a point): one per interval
    assert EARLY_POINT <= waited(point_age=60) < 0.6  # a change after a quiet interval, idle: at once
    watcher.close()
    sender.stop()

"""The spool, over the receiver's real byte stream: while it is on, batches are kept durably and acknowledged
but the replica does not change; afterwards they are applied in order and the replica equals one that applied
them directly; a restart resumes from the spooled position; the cap refuses, it never drops; the replica is
not listed or compared while the spool holds records; an interrupted drain resumes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.receiving import frames, hello, reference, serve, tree, workload
from twinsite.engine import receiver
from twinsite.engine.receiver import Receiver
from twinsite.engine.spool import Spool
from twinsite.journal.record import Record
from twinsite.state.layout import ReceiverState
from twinsite.transport.frames import Kind, pack_json


def test_spooled_batches_are_acknowledged_not_applied_then_applied_in_order(tmp_path: Path) -> None:
    batches = workload(1, 40)
    root, state = tmp_path / "root", ReceiverState(tmp_path / "state")
    serve(root, state, frames(root, batches[:10]))  # replicating normally
    before = tree(root)
    spool = Spool(state)
    assert spool.start(max_size=1 << 30, reason="test") is True and spool.start(max_size=1, reason="x") is False
    answers = serve(root, state, frames(root, batches[10:30]))
    assert answers[-1] == (Kind.ACK, {"seq": batches[29][-1].seq, "diverged": 0})  # acknowledged: durable
    assert tree(root) == before  # the replica did not change
    again = serve(root, state, [hello(root)])  # a restart resumes after what was spooled
    assert again[0][1]["applied_seq"] == batches[29][-1].seq
    assert spool.stop() is True
    answers = serve(root, state, frames(root, batches[30:]))  # the spool first, then the new batches
    assert answers[-1][1]["seq"] == batches[-1][-1].seq
    assert tree(root) == reference(tmp_path, batches)
    assert not Spool(state).held()


def test_the_cap_refuses_a_batch_and_says_the_spool_is_full(tmp_path: Path) -> None:
    batches = workload(2, 30)
    root, state = tmp_path / "root", ReceiverState(tmp_path / "state")
    Spool(state).start(max_size=4000, reason="test")
    answers = serve(root, state, frames(root, batches))
    acked = [a[1]["seq"] for a in answers if a[0] == Kind.ACK]
    assert answers[-1][0] == Kind.ERROR and "the spool is full" in str(answers[-1][1]["message"])
    assert acked and acked[-1] < batches[-1][-1].seq  # nothing past the cap was acknowledged
    settings = Spool(state).settings()
    assert settings is not None and settings.full is True
    assert Spool(state).journal().last_seq == acked[-1]  # and everything acknowledged is kept


@pytest.mark.parametrize("kind", [Kind.MANIFEST_REQ, Kind.SIGS_REQ])
def test_the_replica_is_not_listed_or_compared_while_the_spool_holds_records(tmp_path: Path, kind: Kind) -> None:
    root, state = tmp_path / "root", ReceiverState(tmp_path / "state")
    Spool(state).start(max_size=1 << 20, reason="test")
    serve(root, state, frames(root, workload(3, 3)))
    req = {} if kind == Kind.MANIFEST_REQ else {"paths": [b"f0-1".hex()], "block_size": 4096}
    answers = serve(root, state, [hello(root), pack_json(kind, req)])
    assert answers[-1][0] == Kind.ERROR and "spool holds records" in str(answers[-1][1]["message"])


def test_an_interrupted_drain_resumes_and_ends_in_the_same_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches = workload(4, 50)
    root, state = tmp_path / "root", ReceiverState(tmp_path / "state")
    spool = Spool(state)
    spool.start(max_size=1 << 30, reason="test")
    serve(root, state, frames(root, batches))
    spool.stop()
    calls = {"n": 0}
    real = Receiver._apply

    def dies_midway(self: Receiver, new: list[Record]) -> int:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("the machine went down")  # after two durable sub-batches
        return real(self, new)

    monkeypatch.setattr(receiver, "DRAIN_RECORDS", 10)
    monkeypatch.setattr(Receiver, "_apply", dies_midway)
    answers = serve(root, state, [hello(root)])
    assert answers[-1][0] == Kind.ERROR and Spool(state).held()
    monkeypatch.setattr(Receiver, "_apply", real)
    resumed = serve(root, state, [hello(root)])
    assert resumed[0] == (Kind.READY, {"applied_seq": batches[-1][-1].seq, "version": "0.1.0"})
    assert tree(root) == reference(tmp_path, batches) and not Spool(state).held()

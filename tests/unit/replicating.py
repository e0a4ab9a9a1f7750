"""Replicating in one process, for the data-path tests: the planner's records applied straight to a replica
(the transport is tested elsewhere), a capture's events as a change set, and the check that a replica equals
its source byte for byte."""

from __future__ import annotations

import time
from pathlib import Path

from twinsite.apply.applier import Applier
from twinsite.journal.record import Record
from twinsite.sync.changes import ChangeSet
from twinsite.sync.planner import Planner
from twinsite.tree import differences, digest, entries


class Pipe:
    """Planner -> records -> applier, in one process (the transport is tested elsewhere)."""

    def __init__(self, src: Path, dst: Path, *, writers: bool = True) -> None:
        """``writers=False``: nothing writes the source while the planner reads it (the test changes it only
        between plans), so no file is unsettled and the replica is the source exactly after every plan."""
        self.seq = 0
        self.src, self.dst = src, dst
        self.writers = writers
        self.applier = Applier(dst)
        self.planner = Planner(src, block_size=4096, next_seq=self._next, now=lambda: 0.0, fetch_sigs=self._sigs)
        self.planner.settle_ns = None if writers else 0
        self.records: list[Record] = []
        self.resyncs = 0

    def _next(self) -> int:
        self.seq += 1
        return self.seq

    def _sigs(self, rel: bytes, first: int, count: int) -> bytes:
        raise AssertionError("the planner should know every signature it shipped")

    def ship(self, records: list[Record]) -> None:
        """Apply like the receiver does; where a record finds nothing to act on, the replica is not what the
        planner believes, and the sender compares everything again (a resync), as the engine does."""
        skipped = self.applier.stats.skipped_missing
        for r in records:
            self.applier.apply(r)
        self.records += records
        self.applier.commit()
        if self.applier.stats.skipped_missing > skipped:
            self.resyncs += 1
            self.resync()

    def resync(self) -> None:
        from twinsite.sync import manifest

        self.planner = Planner(
            self.src, block_size=4096, next_seq=self._next, now=lambda: 0.0, fetch_sigs=self._remote_sigs
        )
        self.planner.settle_ns = None if self.writers else 0
        listing = manifest.encode(self.dst)  # (as the sender reads it: engine.sender.replica_listing)
        self.planner.remote = manifest.decode(listing)
        self.planner.remote.group_by(manifest.shared(listing))
        recs = list(self.planner.plan_all())
        for r in recs:
            self.applier.apply(r)
        self.records += recs
        self.applier.commit()

    def same(self) -> None:
        """The replica equals the source, once the files read while they were being written have settled
        (read again once their mtime can no longer be reused: sync.planner)."""
        self.settled()
        same(self.src, self.dst)

    def settled(self) -> None:
        while self.planner.unsettled:
            time.sleep(0.02)
            self.ship(list(self.planner.settle()))

    def _remote_sigs(self, rel: bytes, first: int, count: int) -> bytes:
        from twinsite.engine.receiver import replica_signatures

        return replica_signatures(self.applier.root_fd, rel, 4096, first, count)


def captured(events: list[tuple[str, bytes, bytes]]) -> ChangeSet:
    """The events as a capture reports them (a created directory is compared with everything in it)."""
    changes = ChangeSet()
    for kind, a, b in events:
        if kind == "rename":
            changes.rename(a, b)
        else:
            changes.path(a, recursive=True)
    return changes


def same(src: Path, dst: Path) -> None:
    a, b = entries(src), entries(dst)
    assert differences(a, b) == []
    assert digest(src) == digest(dst)


def apply_all(ap: Applier, records: list[Record]) -> None:
    for r in records:
        ap.apply(r)
    ap.commit()

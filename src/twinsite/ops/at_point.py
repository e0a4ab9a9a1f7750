"""``twinsite verify`` of a scenario with consistency points: the standby's last complete point compared with
the snapshot it was planned from, never a replica halfway through a point with a source that has moved on.

    the active host   pins its point snapshots (SenderState.points_pin: the sender removes none meanwhile;
                      it keeps every one from the standby's last acknowledged point on)
    the standby       holds its replica at its last complete point for as long as the caller's connection
                      stays open (`twinsite point-hold`, run over SSH): what arrives is spooled and
                      acknowledged, as during an assured-recovery test, and the open point is undone
                      (cdp.rewind.to_point); when the connection ends, for whatever reason, the hold ends
                      and the receiver applies the spool at its next batch or keep-alive
    the active host   compares that point's snapshot with the held replica (tree.differences), then lets go

Production never waits: the active host's sender goes on making points, the standby goes on acknowledging.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twinsite import verify
from twinsite.capture.snapshots import Btrfs
from twinsite.cdp.rewind import to_point
from twinsite.config.scenario import POINT_STORE, Scenario
from twinsite.engine.spool import HOLD_REASON, Spool
from twinsite.errors import RecoveryError, RewindError, TwinsiteError
from twinsite.locks import held
from twinsite.proc import wait_until
from twinsite.state import rewind
from twinsite.state.layout import ReceiverState, ScenarioState
from twinsite.state.point import Point
from twinsite.state.role import current
from twinsite.transport.remote import twinsite_held
from twinsite.tree import Entry

DRAINED_WITHIN = 60.0  # seconds a spool left by an earlier hold may take to be applied


@contextmanager
def hold(s: Scenario, state_dir: Path, host: str, i: int) -> Iterator[Point]:
    """On a standby: root ``i``'s replica at its last complete point while the block runs (spooling)."""
    root = Path(s.roots[i].path)
    place = ScenarioState(state_dir, s.name)
    recv = place.receiver(i)
    if current(place, s.master).active == host:
        raise TwinsiteError(f"{host} is the active host of {s.name}: run `twinsite verify` there", where=host)
    spool = Spool(recv)
    spool.end_stale_hold()  # (of a point-hold that was killed)
    with held(recv.hold_lock, wait=False) as mine:
        if not mine:
            raise RecoveryError(f"{root}'s replica is held by another verify", where=str(root))
        with _holding(s, recv, root, spool) as at:
            yield at


@contextmanager
def _holding(s: Scenario, recv: ReceiverState, root: Path, spool: Spool) -> Iterator[Point]:
    try:
        # what an earlier hold or test spooled is applied by the receiver at its next batch or keep-alive
        wait_until(lambda: spool.spooling or not spool.held(), timeout=DRAINED_WITHIN, interval=0.1)
        with held(recv.apply_lock):  # (a batch being applied ends first)
            if spool.spooling or spool.held():
                raise RecoveryError(
                    f"{root}'s replica is held by an assured-recovery test"
                    + ("" if spool.spooling else f", or what it spooled is not applied after {DRAINED_WITHIN:g} s"),
                    where=str(root),
                    hint="verify once it has ended (twinsite status shows it; a spool is applied while the "
                    "active host replicates)",
                )
            if rewind.read(recv.rewind) is not None:
                raise RewindError(
                    f"{root}'s replica is rewound: verify compares the latest point",
                    where=str(root),
                    hint="bring it forward first (twinsite rewind SCENARIO --resume)",
                )
            spool.start(max_size=s.assured_recovery.spool_max_size, reason=HOLD_REASON)
            try:
                at = to_point(root, recv)
            except BaseException:
                spool.stop()
                raise
            if at is None:
                spool.stop()
                raise RecoveryError(
                    f"{root}'s replica has no complete consistency point yet (its first sync is not finished)",
                    where=str(root),
                )
        try:
            yield at
        finally:
            with held(recv.apply_lock):
                spool.stop()
    finally:
        spool.close()


@dataclass(frozen=True)
class Compared:
    point: dict[str, Any]  # the point compared: id, seq on the standby, source time
    local: dict[bytes, Entry]  # the point's snapshot here
    differences: list[tuple[bytes, str]]


def compare(s: Scenario, state_dir: Path, i: int, replica: str, *, timeout: float = 600) -> Compared:
    """On the active host: ``replica``'s last complete point of root ``i`` against its snapshot here."""
    root = s.roots[i]
    store = Btrfs(Path(root.path), Path(root.path) / POINT_STORE)
    with held(ScenarioState(state_dir, s.name).sender(i, replica).points_pin):
        args = ["point-hold", s.name, "--root", str(i)]
        with twinsite_held(s.replication, replica, args, timeout=timeout) as got:
            pt = got["point"]
            snap = store.path(str(pt["id"]))
            if not snap.is_dir():
                raise TwinsiteError(
                    f"the snapshot of point {pt['id']} ({replica}'s last complete one) is no longer here: "
                    f"{replica} is further behind than the points this host keeps, or the agent restarted",
                    where=str(store),
                    hint="twinsite status shows the lag; verify again once it has caught up",
                )
            local, diffs = verify.compare(s, root, replica, here=snap, timeout=timeout)
            return Compared(pt, local, diffs)

"""Rewind a replica to an earlier point, and forward again, with the rewind log (see log.py).

The points a replica can be at are the ends of the batches it applied: the seq before the oldest group
in the log, and each group's last seq, up to the head (the last applied seq). A time maps to the last
point whose source time is not after it.

Moving is done in *runs*: whole groups in the direction of travel (their undo records newest group first
going back, their own records oldest first going forward), about ``RUN_BYTES`` of records at a time. A run's
records are read from the log as they are applied, never held together (a group may be larger than memory).
A run is applied in sub-batches cut so that replaying one after a crash is safe (apply/batching.py), each made
durable (syncfs) before the position is stored; the position names the run's end, so that a move a crash
interrupted rebuilds the same run and skips the sub-batches already done. The position is ``rewind.json``
beside the log (state.rewind); while it exists the replica is *rewound* and the receiver applies nothing.
A move that a crash interrupted continues from the stored position and ends in the same state.

With consistency points (docs/replication.md) only the ends of complete points are states the source held:
``points(..., consistent=True)`` lists those alone, and :func:`to_point` undoes the open point (records
applied after the last complete one, when the link or the active host died in the middle of a point) before
anything makes the replica live.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path

from twinsite.apply.applier import Applier
from twinsite.apply.batching import BatchCutter
from twinsite.cdp.log import Group, RewindLog
from twinsite.errors import RewindError
from twinsite.journal.record import Record
from twinsite.locks import held
from twinsite.state import applied, point, rewind
from twinsite.state.layout import ReceiverState
from twinsite.state.point import Point
from twinsite.state.rewind import RewindPosition

RUN_BYTES = 32 << 20  # records of whole groups moved through together
PIECE = 1000  # records handed to a dry run's caller at a time


def pause(recv: ReceiverState, head: int, target: int) -> RewindPosition:
    """Mark the replica as leaving the head for ``target`` (the receiver stops applying), before moving."""
    pos = replace(rewind.read(recv.rewind) or RewindPosition(head=head, at=head), target=target)
    rewind.store(recv.rewind, pos)
    return pos


def rewind_to(
    root: Path,
    recv: ReceiverState,
    choose: Callable[[int], int],
    *,
    on_run: Callable[[list[Record]], None] | None = None,
) -> tuple[int, int, int]:
    """``twinsite rewind``: bring the replica under ``root`` to the point ``choose(head)`` names (the head for
    --resume), resuming an interrupted move. Returns (head, start, target).

    The receiver is told to stop first (the rewound mark, read before each batch it applies), then the apply
    lock is taken: the batch it was applying, if any, ends first, and may have moved the head. So the head is
    read again under the lock, and the move starts there: a move from the head read before would leave that
    batch's changes over the rewound point (a database's control file from after its WAL, say). The rewind log
    is opened for writing only under the lock too: opening it recovers a torn tail, which outside the lock could
    be the group the receiver is appending (``choose`` reads it read-only)."""
    pos = rewind.read(recv.rewind)
    head = pos.head if pos else applied.read(recv.applied).seq
    start = pos.at if pos else head
    target = choose(head)
    if start == target and not (pos and pos.sub):
        return head, start, target
    pause(recv, head, target)  # the receiver stops applying ...
    with held(recv.apply_lock):  # ... after the batch it may be in the middle of
        if pos is None:
            now = applied.read(recv.applied).seq
            if now != head:  # (that batch moved the head: the move starts from where it ended)
                head = start = now
                target = choose(head)
                rewind.store(recv.rewind, RewindPosition(head=head, at=head, target=target))
        if start != target:
            log = RewindLog(recv.rewind_log)
            try:
                move(root, recv, log, head, target, on_run=on_run)
            finally:
                log.close()
        elif pos is None:
            rewind.store(recv.rewind, None)  # (nothing to move after all: not rewound)
    return head, start, target


def settle(recv: ReceiverState) -> tuple[int, float] | None:
    """A switchover to the rewound data: the replica's point becomes its applied position (seq and source
    time) and the rewound state goes. Returns that point, or None when the replica was not rewound. Refused
    while a move is unfinished (the replica would be between two points). The caller holds the apply lock.
    Idempotent: the applied position is durable before the rewound state is removed."""
    pos = rewind.read(recv.rewind)
    if pos is None:
        return None
    if not pos.settled:
        raise RewindError(
            f"the rewind of {recv.dir} to seq {pos.target} is unfinished (at seq {pos.at})",
            hint="run the same `twinsite rewind` again to finish it first",
        )
    ts = dict(points(RewindLog(recv.rewind_log, readonly=True), pos.head)).get(pos.at, 0.0)
    applied.write(recv.applied, pos.at, ts)
    rewind.store(recv.rewind, None)
    return pos.at, ts


def go_live(recv: ReceiverState) -> None:
    """A switchover makes the replica live at its applied position, earlier than what it applied (the point a
    rewind chose, or its last complete consistency point): what the rewind log holds above that position is
    another future, which nothing may apply again (engine.receiver applies what the log holds above the
    position when it finds it). Removed. The caller holds the apply lock."""
    if recv.rewind_log.exists():
        log = RewindLog(recv.rewind_log)
        try:
            log.drop_above(applied.read(recv.applied).seq)
        finally:
            log.close()


def points(log: RewindLog, head: int, *, consistent: bool = False) -> list[tuple[int, float]]:
    """(seq, source time) of every reachable point, oldest first; the oldest has the time of its first change.
    ``consistent``: only the ends of complete consistency points."""
    out: list[tuple[int, float]] = []
    for g in log.heads():
        if g.last_seq > head:
            break
        if not out and not consistent:
            out.append((g.first_seq - 1, g.ts_first))
        if g.point or not consistent:
            out.append((g.last_seq, g.ts_last))
    return out or [(head, 0.0)]


def to_point(root: Path, recv: ReceiverState) -> Point | None:
    """Bring a replica with consistency points to its last complete point: undo what was applied of the open
    one (the rewind log holds its undo even without CDP). Returns that point, or None when the replica has
    none yet. A rewound replica is left as it is (it is at a point its rewind chose). The caller holds the
    apply lock. Idempotent; a crash in the middle resumes like any rewind."""
    last = point.read(recv.point)
    if last is None or rewind.read(recv.rewind) is not None:
        return last
    head = applied.read(recv.applied).seq
    if head == last.seq:
        return last
    if head < last.seq:  # (never: the point is written after the position that includes it)
        raise RewindError(f"the replica's position {head} is before its last complete point {last.seq}")
    log = RewindLog(recv.rewind_log)
    try:
        move(root, recv, log, head, last.seq)
    finally:
        log.close()
    settle(recv)
    return last


def resolve_seq(log: RewindLog, head: int, seq: int, *, consistent: bool = False) -> int:
    """The point for a seq: the last point at or before it."""
    pts = points(log, head, consistent=consistent)
    ok = [s for s, _ in pts if s <= seq]
    if not ok or seq > head:
        raise _outside(pts, f"seq {seq}")
    return ok[-1]


def resolve_time(log: RewindLog, head: int, when: float, *, consistent: bool = False) -> int:
    """The point for a source time: the last point not after it."""
    pts = points(log, head, consistent=consistent)
    ok = [s for s, t in pts if t <= when]
    if not ok:
        raise _outside(pts, "that time")
    return ok[-1]


def _outside(pts: list[tuple[int, float]], what: str) -> RewindError:
    (s0, t0), (s1, t1) = pts[0], pts[-1]
    return RewindError(
        f"{what} is outside the rewind window: the replica can go back to seq {s0} and forward to seq {s1}",
        hint=f"reachable from source time {t0:.3f} to {t1:.3f} (`twinsite rewind-points` lists them)",
    )


def move(
    root: Path,
    recv: ReceiverState,
    log: RewindLog,
    head: int,
    target: int,
    *,
    on_step: Callable[[RewindPosition], None] | None = None,
    on_run: Callable[[list[Record]], None] | None = None,
    run_bytes: int = RUN_BYTES,
) -> RewindPosition:
    """Bring the replica under ``root`` to point ``target`` (back or forward), resuming an interrupted move
    (its position: ``recv.rewind``). Returns the final position; at the head the rewound state is cleared.
    ``on_run`` sees each run's records before they are applied, one at a time (as a list of one: a run is read
    from the log as it goes), ``on_step`` the position after each durable sub-batch."""
    pts = points(log, head)
    if target < pts[0][0] or target > head:
        raise _outside(pts, f"seq {target}")
    pos = pause(recv, head, target)
    applier = Applier(root)
    try:
        while pos.sub or pos.at != target:
            if not pos.sub:  # (a run half done is finished the way it was going first)
                pos = replace(pos, direction=-1 if target < pos.at else 1, run_end=0)
            for run_end, records in _runs(log, pos, target, run_bytes):
                pos = replace(pos, run_end=run_end)
                done, current = pos.sub, -1  # (sub-batches of a resumed run that are done are skipped)
                for i, rec in _numbered(records):
                    if on_run:
                        on_run([rec])
                    if i != current and current >= done:
                        pos = _step(recv, applier, pos, current, on_step)
                    current = i
                    if i >= done:
                        applier.apply(rec)
                if current >= done:
                    pos = _step(recv, applier, pos, current, on_step)
                pos = replace(pos, at=run_end, sub=0, run_end=0)
        rewind.store(recv.rewind, pos)  # (at the head: the rewound mark goes)
    finally:
        applier.close()
    return pos


def _step(
    recv: ReceiverState,
    applier: Applier,
    pos: RewindPosition,
    sub: int,
    on_step: Callable[[RewindPosition], None] | None,
) -> RewindPosition:
    """Sub-batch ``sub`` is applied: durable before the position says so."""
    applier.commit()
    pos = replace(pos, sub=sub + 1)
    rewind.store(recv.rewind, pos)
    if on_step:
        on_step(pos)
    return pos


def _numbered(records: Iterable[Record]) -> Iterator[tuple[int, Record]]:
    """Each record of a run with the number of its sub-batch: the run cut where replaying a sub-batch after a
    crash would not be safe, a DELETE never starting one (apply.batching.cut with ``deletes_free``)."""
    cutter = BatchCutter(deletes_free=True)
    sub = -1
    for rec in records:
        if sub < 0 or cutter.conflicts(rec):
            sub += 1
            cutter.reset()
        cutter.add(rec)
        yield sub, rec


def planned(log: RewindLog, head: int, start: int, target: int) -> Iterator[list[Record]]:
    """The records a move from point ``start`` to point ``target`` applies, in order, a few at a time (a dry
    run: read from the log as they are asked for)."""
    if start != target:
        pos = RewindPosition(head=head, at=start, direction=-1 if target < start else 1, target=target)
        for _end, records in _runs(log, pos, target, RUN_BYTES):
            piece: list[Record] = []
            for rec in records:
                piece.append(rec)
                if len(piece) >= PIECE:
                    yield piece
                    piece = []
            if piece:
                yield piece


def _runs(log: RewindLog, pos: RewindPosition, target: int, run_bytes: int) -> Iterator[tuple[int, Iterator[Record]]]:
    """(end, records) of the runs from the replica's position towards ``target``: whole groups, about
    ``run_bytes`` of records each, read from the log as the records are iterated (before the next run is
    asked for). A run begun before a crash is rebuilt alone, up to where it was stored to end, whatever the
    target is now (the caller then sets out again)."""
    back, resumed = pos.direction < 0, bool(pos.run_end)
    goal = pos.run_end or target
    run: list[Group] = []
    size, end = 0, pos.at
    for g in _groups(log, pos, back, goal):
        run.append(g)
        size += g.undo_len if back else g.forward_len
        end = g.first_seq - 1 if back else g.last_seq
        arrived = end <= goal if back else end >= goal
        if arrived or (not resumed and size >= run_bytes):
            yield end, _records(run, back)
            if arrived:
                return
            run, size = [], 0
    raise RewindError(f"the rewind log ends at seq {end} on the way to seq {goal}")


def _records(run: list[Group], back: bool) -> Iterator[Record]:
    for g in run:
        yield from g.undo_records() if back else g.forward_records()


def _groups(log: RewindLog, pos: RewindPosition, back: bool, target: int) -> Iterator[Group]:
    """The groups to pass, in order, from the replica's position (checked to follow on one another)."""
    expect = pos.at
    if back:
        source = (g for g in log.newest_first(above=min(target, pos.at - 1)) if g.last_seq <= pos.at)
    else:
        source = (g for g in log.groups() if g.last_seq > pos.at)
    for g in source:
        if (back and g.last_seq != expect) or (not back and g.first_seq != expect + 1):
            break
        yield g
        expect = g.first_seq - 1 if back else g.last_seq
    else:
        return
    raise RewindError(f"the rewind log has no group {'ending' if back else 'starting'} at seq {expect}")

"""Where a batch must end so that replaying it after a crash gives the same tree (see applier.py).

A namespace operation (anything but WRITE, TRUNCATE, SETATTR) may not act on a name that an earlier record
of the same batch touched, nor on a directory under which an earlier record touched something: replaying
the batch would then apply the earlier records to what the namespace operation put there.

A DELETE puts nothing there. Replayed after it, earlier records on or under the name it removed find
nothing (data records are skipped) or make something that the replayed DELETE removes again, so with
``deletes_free`` a DELETE never starts a new batch. Rewinding cuts that way (cdp/rewind.py: undoing
creations is mostly deletes, each cut costs a syncfs). The sender does not: what a batch destroys is
captured (cdp/undo.py) on the rule that a name is the subject of at most one namespace record per batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from twinsite.journal.record import Op, Record

T = TypeVar("T")
DATA_OPS = frozenset({Op.WRITE, Op.TRUNCATE, Op.SETATTR})


def _names(rec: Record) -> tuple[bytes, ...]:
    if rec.op == Op.POINT:
        return ()
    if rec.op in (Op.RENAME, Op.HARDLINK):
        return (rec.path, rec.path2)
    return (rec.path,)


class BatchCutter:
    """Tracks the names a batch has touched; ``conflicts`` says when a record must start a new batch."""

    def __init__(self, *, deletes_free: bool = False) -> None:
        self.deletes_free = deletes_free
        self.touched: set[bytes] = set()
        self.ancestors: set[bytes] = set()

    def reset(self) -> None:
        self.touched.clear()
        self.ancestors.clear()

    def conflicts(self, rec: Record) -> bool:
        if rec.op in DATA_OPS or (self.deletes_free and rec.op == Op.DELETE):
            return False
        names = (rec.path, rec.path2) if rec.op == Op.RENAME else _names(rec)
        return any(n in self.touched or n in self.ancestors for n in names)

    def add(self, rec: Record) -> None:
        for n in _names(rec):
            self.touched.add(n)
            parts = n.split(b"/")
            for i in range(1, len(parts)):
                self.ancestors.add(b"/".join(parts[:i]))


def _cut(
    items: Iterable[tuple[Record, T]], limit: float, weight: Callable[[T], int], *, deletes_free: bool = False
) -> Iterator[list[tuple[Record, T]]]:
    """Items in order, in batches each safe to replay, a new one started once ``limit`` (by ``weight``) is
    reached."""
    cutter = BatchCutter(deletes_free=deletes_free)
    batch: list[tuple[Record, T]] = []
    size = 0
    for rec, item in items:
        if batch and (cutter.conflicts(rec) or size >= limit):
            yield batch
            batch, size = [], 0
            cutter.reset()
        batch.append((rec, item))
        cutter.add(rec)
        size += weight(item)
    if batch:
        yield batch


def cut(records: list[Record], limit: int | None = None, *, deletes_free: bool = False) -> list[list[Record]]:
    """``records`` in order, cut into batches that are each safe to replay (and of at most ``limit`` records)."""
    pairs = ((rec, rec) for rec in records)
    return [[r for r, _ in b] for b in _cut(pairs, limit or math.inf, lambda _r: 1, deletes_free=deletes_free)]


def wire_batches(
    items: Iterable[tuple[Record, bytes | memoryview]], batch_bytes: int
) -> Iterator[tuple[list[Record], bytes]]:
    """The sender's cut: records with their encoding (the journal's bytes: the wire carries what was made
    durable) in batches of about ``batch_bytes``, each safe to replay, each with its bytes joined."""
    for b in _cut(items, batch_bytes, len):
        yield [r for r, _ in b], b"".join(raw for _, raw in b)

"""What capture saw since the last batch: renames in order, and the set of paths that may have changed.

A path marked dirty and then renamed (or under a renamed directory) is re-keyed to its new name, so a change
made just before a rename is not lost: the rename is shipped first, then the new name is compared.
"""

from __future__ import annotations

from collections.abc import Iterator

from twinsite.journal.record import Record
from twinsite.sync.planner import Planner


class ChangeSet:
    def __init__(self) -> None:
        self.renames: list[tuple[bytes, bytes]] = []
        self.dirty: dict[bytes, bool] = {}  # path -> also everything under it
        self.full = False  # everything must be compared (queue overflow, lost watch, restart)

    def __bool__(self) -> bool:
        return bool(self.renames or self.dirty or self.full)

    def path(self, path: bytes, *, recursive: bool = False) -> None:
        self.dirty[path] = self.dirty.get(path, False) or recursive

    def rename(self, old: bytes, new: bytes) -> None:
        prefix = old + b"/"
        for p in [p for p in self.dirty if p == old or p.startswith(prefix)]:
            self.path(new + p[len(old) :], recursive=self.dirty.pop(p))
        self.renames.append((old, new))
        # and what arrived is compared as it is now: a change made through another name of the file, or
        # inside a moved directory while its watch was being moved, is not lost
        self.path(new, recursive=True)

    def everything(self) -> None:
        self.full = True

    def plan(self, planner: Planner) -> Iterator[Record]:
        """Records for everything recorded here, in a safe order: renames, then the changed paths."""
        if self.full:
            yield from planner.plan_all()
            return
        for old, new in self.renames:
            yield from planner.plan_rename(old, new)
        for p in sorted(self.dirty):
            yield from planner.plan_path(p, recursive=self.dirty[p])

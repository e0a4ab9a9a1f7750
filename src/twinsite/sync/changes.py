"""What capture saw since the last batch: renames in order, and the set of paths that may have changed.

A path marked dirty and then renamed (or under a renamed directory) is re-keyed to its new name, so a change
made just before a rename is not lost: the rename is shipped first, then the new name is compared.

A capture that knows exactly which bytes of a file changed (btrfs send, between two consistency points) says
so with :meth:`ChangeSet.extent`: such a file is compared by reading only those ranges (see the planner's
``plan_path``); a file marked :meth:`ChangeSet.content` must have its content compared even when its size and
time are unchanged (a write that did not move the time, e.g. through mmap).

inotify reports a write under the name it went through only. When that name is one of several of a file and
is gone before the planner looks (a second name made, written through, removed), nothing would say that the
names that remain changed: capture notes the file behind such a name (:meth:`ChangeSet.linked`, its device
and inode when it saw the event) and the planner compares the other names it knows for that file.
"""

from __future__ import annotations

from collections.abc import Iterator

from twinsite.journal.record import Record
from twinsite.sync.planner import Planner

WHOLE = None  # (in ``extents``: the whole content is compared, not ranges)


class ChangeSet:
    def __init__(self) -> None:
        self.renames: list[tuple[bytes, bytes]] = []
        self.dirty: dict[bytes, bool] = {}  # path -> also everything under it
        self.full = False  # everything must be compared (queue overflow, lost watch, restart)
        # path -> the byte ranges (offset, length) known to have changed, or WHOLE: compare all of it
        self.extents: dict[bytes, list[tuple[int, int]] | None] = {}
        self.inodes: dict[bytes, tuple[int, int]] = {}  # path -> (device, inode) of a file with other names
        #: (capture) every change made before this time (ns) is in this set or in one taken before it
        self.complete_to: int | None = None

    def __bool__(self) -> bool:
        return bool(self.renames or self.dirty or self.full)

    def path(self, path: bytes, *, recursive: bool = False) -> None:
        self.dirty[path] = self.dirty.get(path, False) or recursive

    def extent(self, path: bytes, offset: int, length: int) -> None:
        """Bytes ``offset`` to ``offset + length`` of the file ``path`` changed."""
        self.path(path)
        ranges = self.extents.setdefault(path, [])
        if ranges is not WHOLE:
            ranges.append((offset, length))

    def attributes(self, path: bytes) -> None:
        """``path`` changed, but not the bytes of its content (its size, attributes, or its being gone)."""
        self.path(path)
        self.extents.setdefault(path, [])

    def content(self, path: bytes) -> None:
        """The content of ``path`` may have changed in ways not listed: compare all of it."""
        self.path(path)
        self.extents[path] = WHOLE

    def linked(self, path: bytes, inode: tuple[int, int]) -> None:
        """``path`` changed and was, when capture saw it, one of several names of the file ``inode``."""
        self.path(path)
        self.inodes[path] = inode

    def rename(self, old: bytes, new: bytes) -> None:
        prefix = old + b"/"
        for p in [p for p in self.dirty if p == old or p.startswith(prefix)]:
            self.path(new + p[len(old) :], recursive=self.dirty.pop(p))
        for p in [p for p in self.extents if p == old or p.startswith(prefix)]:
            self.extents[new + p[len(old) :]] = self.extents.pop(p)
        for p in [p for p in self.inodes if p == old or p.startswith(prefix)]:
            self.inodes[new + p[len(old) :]] = self.inodes.pop(p)
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
            yield from planner.plan_path(
                p, recursive=self.dirty[p], extents=self.extents.get(p, ()), inode=self.inodes.get(p)
            )

"""Read-ahead for a walk of the whole root: the kernel reads the files the planner is about to compare.

Reading a file that is not in the page cache costs its reader the disk's wait and the filling of the cache;
the planner reads one file after another, so on a tree of small files that wait is most of a sync (10,000
cold files of 1-24 KiB, read in turn on the lab: 1.7 s, of which 1.0 s of the reader's CPU; with this
read-ahead 0.5 s and 0.2 s). A thread of its own asks the kernel for each file's first bytes
(``posix_fadvise(WILLNEED)``, which starts the reads and returns) a few hundred names ahead of the
planner, and reads nothing itself.

It is advice only: what it opens, it opens as the planner does (one component at a time, never through a
link, never into another filesystem, regular files only, never blocking), and whatever goes wrong is left
for the planner to meet and say. A walk abandoned midway (a lost link) leaves it waiting at most
``STALL_S``; then it forgets what it was given.
"""

from __future__ import annotations

import contextlib
import os
import threading

from twinsite.apply.paths import DIR_FLAGS, open_regular, parent_fd
from twinsite.errors import TwinsiteError

AHEAD_NAMES = 256  # how far ahead of the planner, in names (about 3 MiB of 12 KiB files)
#: of each file, its first MiB (a bigger file is then read front to back: the kernel's own read-ahead)
AHEAD_BYTES = 1 << 20
#: a walk that passed no name for this long has stopped (a sync interrupted): a walk held up by a slow link
#: passes a name at least every few seconds
STALL_S = 30.0


class ReadAhead:
    """The names of the directories a walk enters, in the order it enters them; the walk says as it passes
    each name (:meth:`passed`)."""

    def __init__(self, base: bytes, *, depth: int = AHEAD_NAMES) -> None:
        self.base, self.depth = base, depth
        self._jobs: list[tuple[bytes, list[bytes], list[int]]] = []  # a stack: the newest directory first
        self._cond = threading.Condition()
        self._issued = self._passed = 0
        self._running = False
        self.advised = 0  # files whose reading was asked for (the tests' measure)

    def directory(self, rel: bytes, names: list[bytes]) -> None:
        """The walk is about to plan ``names`` of the directory ``rel`` (b"" for the root), in this order."""
        if not names:
            return
        with self._cond:
            self._jobs.append((rel, names, [0]))
            if not self._running:
                self._running = True
                threading.Thread(target=self._run, name="read-ahead", daemon=True).start()
            self._cond.notify_all()

    def passed(self) -> None:
        """The walk is done with one more name."""
        with self._cond:
            self._passed += 1
            if self._issued - self._passed <= self.depth // 2:
                self._cond.notify_all()

    def _next(self) -> tuple[bytes, bytes] | None:
        """The next (directory, name) to advise, once the walk is close enough; None when there is none."""
        with self._cond:
            while self._jobs:
                if self._issued - self._passed >= self.depth:
                    before = self._passed
                    self._cond.wait(STALL_S)
                    if self._passed == before and self._issued - self._passed >= self.depth:
                        break  # the walk stopped (its sync was interrupted): forget it all
                    continue
                rel, names, at = self._jobs[-1]
                if at[0] >= len(names):
                    self._jobs.pop()
                    continue
                name = names[at[0]]
                at[0] += 1
                self._issued += 1
                return rel, name
            self._jobs.clear()
            self._issued = self._passed = 0
            self._running = False
            return None

    def _run(self) -> None:
        try:
            root = os.open(self.base, DIR_FLAGS)
        except OSError:
            root = -1  # (no root: nothing to read ahead; the jobs are let go below)
        opened: tuple[bytes, int] | None = None  # the directory being read ahead, and its descriptor
        try:
            while (job := self._next()) is not None:
                rel, name = job
                if root < 0:
                    continue
                if opened is None or opened[0] != rel:
                    if opened is not None:
                        os.close(opened[1])
                    opened = None
                    fd = self._open_dir(root, rel)
                    if fd is None:
                        continue
                    opened = (rel, fd)
                self._advise(opened[1], name)
        except BaseException:
            with self._cond:  # (a defect here must not leave the walks to come without read-ahead)
                self._jobs.clear()
                self._running = False
            raise
        finally:
            if opened is not None:
                os.close(opened[1])
            if root >= 0:
                os.close(root)

    @staticmethod
    def _open_dir(root: int, rel: bytes) -> int | None:
        if not rel:
            return os.dup(root)
        try:
            with parent_fd(root, rel + b"/x") as (fd, _):  # (the directory itself, reached safely)
                return os.dup(fd)
        except (OSError, TwinsiteError):
            return None

    def _advise(self, dir_fd: int, name: bytes) -> None:
        try:
            fd = open_regular(dir_fd, name, os.O_RDONLY)
        except (OSError, TwinsiteError):
            return  # a directory, a link, gone: nothing to read (the planner says what it finds)
        try:
            with contextlib.suppress(OSError):
                os.posix_fadvise(fd, 0, AHEAD_BYTES, os.POSIX_FADV_WILLNEED)
                self.advised += 1
        finally:
            os.close(fd)

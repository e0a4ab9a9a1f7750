"""inotify over a scenario root: every directory watched, renames paired, overflow turned into a rescan.

Events become a :class:`~twinsite.sync.changes.ChangeSet` (renames in order, dirty paths). What inotify
cannot see (writes through a shared mmap that are never msync'ed, changes made while the agent was down)
is covered by the rescan at start and by ``twinsite verify``; see docs/replication.md.
A queue overflow sets ``changes.full`` (a verified rescan) and ``overflows``; running out of watches
raises :class:`CaptureError`: a scenario that cannot watch its data must not look healthy. A root deleted or
moved away is compared whole (its files are gone from its path), and watched again, and compared whole
again, once its path is a directory again.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import threading
import time
from pathlib import Path

from inotify_simple import INotify
from inotify_simple import flags as F

from twinsite.errors import CaptureError
from twinsite.proc import wait_until
from twinsite.sync.changes import ChangeSet

MASK = (
    F.CREATE
    | F.DELETE
    | F.MODIFY
    | F.ATTRIB
    | F.CLOSE_WRITE
    | F.MOVED_FROM
    | F.MOVED_TO
    | F.DELETE_SELF
    | F.MOVE_SELF
    | F.DONT_FOLLOW
    | F.EXCL_UNLINK
)


class Watcher:
    def __init__(self, root: Path, *, skip: bytes | None = None) -> None:
        """``skip``: a top-level name never watched (a root's point store: its snapshots are not the tree)."""
        self.root = root
        self.base = os.fsencode(root)
        self.skip = skip
        self.ino = INotify()
        self.wd_path: dict[int, bytes] = {}
        self.path_wd: dict[bytes, int] = {}
        self.changes = ChangeSet()
        self.read_to = time.time_ns()  # every event of a change made before this is in ``changes`` or was taken
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.overflows = 0
        self.events = 0
        self._stop = False
        self._running = threading.Event()
        self.add_tree(b"")
        self.root_gone = b"" not in self.path_wd  # no directory at the root's path (yet, or any more)

    def fileno(self) -> int:
        return int(self.ino.fileno())

    def add_tree(self, rel: bytes) -> None:
        """Watch ``rel`` and every directory under it (parents first, never through links)."""
        if rel == self.skip:
            return
        stack = [rel]
        while stack:
            d = stack.pop()
            self._add(d)
            full = self.base + b"/" + d if d else self.base
            try:
                dev = os.stat(self.base).st_dev  # (another filesystem mounted inside: not watched, as not replicated)
                with os.scandir(full) as it:
                    for e in it:
                        mine = e.is_dir(follow_symlinks=False) and e.stat(follow_symlinks=False).st_dev == dev
                        if mine and (d or e.name != self.skip):
                            stack.append(d + b"/" + e.name if d else e.name)
            except (FileNotFoundError, NotADirectoryError):
                continue

    def _add(self, rel: bytes) -> None:
        full = self.base + b"/" + rel if rel else self.base
        try:
            wd = self.ino.add_watch(full, MASK)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise CaptureError(
                    "out of inotify watches",
                    where=os.fsdecode(full),
                    hint="raise fs.inotify.max_user_watches, or use replication.mode: periodic for this scenario",
                ) from exc
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                return  # gone already; its parent's event covers it
            raise
        old = self.wd_path.get(wd)
        if old is not None and old != rel:
            self.path_wd.pop(old, None)
        self.wd_path[wd] = rel
        self.path_wd[rel] = wd

    def _unwatch(self, rel: bytes) -> None:
        """Stop watching a directory tree that left the root (the kernel would go on reporting it)."""
        prefix = rel + b"/"
        for wd, p in list(self.wd_path.items()):
            if p == rel or p.startswith(prefix):
                del self.wd_path[wd]
                self.path_wd.pop(p, None)
                with contextlib.suppress(OSError):
                    self.ino.rm_watch(wd)

    def _moved_dir(self, old: bytes, new: bytes) -> None:
        prefix = old + b"/"
        for wd, p in list(self.wd_path.items()):
            if p == old or p.startswith(prefix):
                q = new + p[len(old) :]
                self.wd_path[wd] = q
                self.path_wd.pop(p, None)
                self.path_wd[q] = wd

    def read(self, timeout_ms: int | None = 1000) -> int:
        """Read pending events into ``changes``; returns how many were read."""
        if self.root_gone:
            self._find_root()
        began = time.time_ns()  # (an event is queued as its change is made; a read takes all that are queued)
        events = self.ino.read(timeout=timeout_ms)
        if not events:
            with self.lock:
                self.read_to = began
            return 0
        moved_from: dict[int, tuple[bytes, bool]] = {}
        with self.lock:
            self.read_to = began
            for ev in events:
                self._one(ev, moved_from)
            for old, is_dir in moved_from.values():  # moved out of the root: gone
                self.changes.path(old)
                if is_dir:
                    self._unwatch(old)
            self.events += len(events)
        self.wake.set()
        return len(events)

    def _one(self, ev: object, moved_from: dict[int, tuple[bytes, bool]]) -> None:
        mask, wd, cookie, name = ev.mask, ev.wd, ev.cookie, ev.name  # type: ignore[attr-defined]
        if mask & F.Q_OVERFLOW:
            self.overflows += 1
            self.changes.everything()
            return
        if mask & F.IGNORED:
            self._ignored(wd)
            return
        parent = self.wd_path.get(wd)
        if parent is None:
            return
        if not name:  # an event about the watched directory itself (DELETE_SELF, MOVE_SELF, ATTRIB)
            self._about_itself(parent, mask)
            return
        raw = os.fsencode(name) if isinstance(name, str) else name
        rel = parent + b"/" + raw if parent else raw
        is_dir = bool(mask & F.ISDIR)
        if mask & F.MOVED_FROM:
            moved_from[cookie] = (rel, is_dir)
        elif mask & F.MOVED_TO:
            self._moved_to(rel, is_dir, moved_from.pop(cookie, None))
        elif mask & F.CREATE and is_dir:
            self.add_tree(rel)  # watch first, then compare everything in it: nothing created meanwhile is missed
            self.changes.path(rel, recursive=True)
        else:
            self.changes.path(rel)
            if not mask & F.DELETE:
                self._note_links(rel)

    def _about_itself(self, rel: bytes, mask: int) -> None:
        """An event about a watched directory itself: its metadata changed, or the root is gone."""
        if rel and mask & F.ATTRIB:
            self.changes.path(rel)
        elif not rel and mask & (F.DELETE_SELF | F.MOVE_SELF):
            self._lost_root()

    def _lost_root(self) -> None:
        """The root itself was deleted or moved away: what was under it is gone from its path (compared whole),
        no watch of the old tree counts any more (a moved one would go on reporting), and the root is watched
        again as soon as its path is a directory again (:meth:`_find_root`)."""
        for wd in list(self.wd_path):
            with contextlib.suppress(OSError):
                self.ino.rm_watch(wd)
        self.wd_path.clear()
        self.path_wd.clear()
        self.root_gone = True
        self.changes.everything()

    def _find_root(self) -> None:
        """A root that was gone and is a directory again (made again, restored, moved back): watched, with all
        under it, then compared whole (what was made before the watches is found by the comparison)."""
        if not os.path.isdir(self.base):
            return
        with self.lock:
            self.root_gone = False
            self.add_tree(b"")
            self.changes.everything()
        self.wake.set()

    def _ignored(self, wd: int) -> None:
        """The kernel dropped a watch (its directory is gone)."""
        p = self.wd_path.pop(wd, None)
        if p is not None and self.path_wd.get(p) == wd:
            del self.path_wd[p]

    def _note_links(self, rel: bytes) -> None:
        """A file event through a name that is one of several of the file: note the file (sync.changes)."""
        try:
            st = os.lstat(self.base + b"/" + rel)
        except OSError:
            return  # gone already
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            self.changes.linked(rel, (st.st_dev, st.st_ino))

    def _moved_to(self, rel: bytes, is_dir: bool, src: tuple[bytes, bool] | None) -> None:
        if src is not None:
            self.changes.rename(src[0], rel)
            if is_dir:
                self._moved_dir(src[0], rel)
                # and watch what has no watch yet: a directory made and moved before its CREATE was read had
                # none (its path was gone when the event came), so nothing made in it later would be seen
                self.add_tree(rel)
            return
        self.changes.path(rel, recursive=is_dir)  # moved in from outside the root
        if is_dir:
            self.add_tree(rel)
        else:
            self._note_links(rel)

    def take(self) -> ChangeSet:
        """The changes seen so far (``complete_to``: of every change made before then); capture goes on into a
        fresh set."""
        with self.lock:
            got, self.changes = self.changes, ChangeSet()
            got.complete_to = self.read_to
            self.wake.clear()
        return got

    def run(self) -> None:
        """Read events until :meth:`stop` (run in a thread)."""
        self._running.set()
        try:
            while not self._stop:
                self.read(timeout_ms=200)
        finally:
            self._running.clear()

    def stop(self) -> None:
        self._stop = True

    def close(self) -> None:
        """Stop reading (waiting for a :meth:`run` loop to notice) and release the inotify descriptor."""
        self._stop = True
        wait_until(lambda: not self._running.is_set(), timeout=2, interval=0.01)
        self.ino.close()

"""What a batch of records destroys on the replica, as records that put it back (the rewind log's undo).

:func:`capture` looks at the replica *before* a batch is applied and returns the undo records of the
batch: applied in order after the batch (by the ordinary applier, with all its path safety), they give
back the state from before it. Each forward record gets its inverse, computed on the pre-batch state;
the batch's undo is the inverses in reverse order.

* WRITE / TRUNCATE: the old bytes of the range (or of the cut tail) and the old size.
* SETATTR: the old mode, owner, xattrs and mtime. The first record of a batch touching a file's data or
  attributes carries them in its inverse, which is applied last (so undone writes leave the old mtime).
* CREATE, MKDIR, MKFIFO, SYMLINK, HARDLINK: DELETE the new entry, then rebuild what it replaced (and remove
  parent directories it made).
* DELETE: rebuild the whole entry (a directory with everything in it). A hard-linked file comes back as a
  link: to another name rebuilt by the undo, or to a name of the same file that the batch leaves alone
  (found by one scan of the replica, only for batches that destroy a hard-linked file).
* RENAME: rename back, then rebuild what the target replaced.

Old data is never held whole: :func:`capture` with ``lazy=True`` works out what to read and returns an
iterable that reads it from the replica, a piece of at most ``CHUNK`` bytes at a time, as the undo is written
to the rewind log (cdp/log.py), before any of the batch is applied. The old bytes of a truncated 20 GiB file,
or a deleted tree, become many records, never a buffer of that size; a deleted tree is walked, one directory
listing at a time, only then.

Within one batch a name is touched by at most one namespace record and no namespace record works under a
directory touched earlier (the batch cutter's rule, apply/batching.py); data records may follow a
namespace record, so paths are mapped back through the batch's renames to where their data was before it.
Paths created by the batch need no undo for their data: undoing the creation removes them.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from itertools import islice
from typing import Literal, overload

from twinsite.apply.paths import DIR_FLAGS, open_regular, parent_fd
from twinsite.errors import ParentNotDirectoryError
from twinsite.journal.record import Meta, Op, Record
from twinsite.sync.planner import all_zero
from twinsite.sync.signatures import data_ranges
from twinsite.tree import read_xattrs

CHUNK = 1 << 20
NEW = b"\0new"  # origin of a path the batch created (no pre-batch data)
_NAMESPACE_CREATE = (Op.CREATE, Op.MKDIR, Op.MKFIFO, Op.SYMLINK, Op.HARDLINK)
_DATA = (Op.WRITE, Op.TRUNCATE, Op.SETATTR)


@dataclass
class _Later:
    """Undo records read from the replica only when the undo is iterated (before the batch is applied)."""

    make: Callable[[], Iterator[Record]]


_Part = Record | _Later


@dataclass(frozen=True)
class _Child:
    """An entry of a directory being rebuilt, rebuilt in its turn (_Batch._rebuild_now)."""

    path: bytes
    old: bytes
    st: os.stat_result


@dataclass
class _Links:
    """One rebuild's hard links: the files it made (inode -> path), and how many of the batch's events had
    happened when the inverse was computed (the names a file has then: _Batch.now_named)."""

    made: dict[tuple[int, int], bytes]
    upto: int


@dataclass
class _Ctx:
    root_fd: int
    seq: int
    ts: float

    def rec(self, op: Op, path: bytes, **kw: object) -> Record:
        return Record(seq=self.seq, ts=self.ts, op=op, path=path, **kw)  # type: ignore[arg-type]


def _lstat(root_fd: int, path: bytes) -> os.stat_result | None:
    try:
        with parent_fd(root_fd, path) as (pfd, name):
            return os.stat(name, dir_fd=pfd, follow_symlinks=False)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ParentNotDirectoryError):
        return None  # a parent that is a link or a file: the forward record is refused there (a divergence), no undo


def _meta(pfd: int, name: bytes, st: os.stat_result) -> Meta:
    xattrs: tuple[tuple[bytes, bytes], ...] = ()
    if stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode):
        flags = (DIR_FLAGS if stat.S_ISDIR(st.st_mode) else os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC) | os.O_NONBLOCK
        fd = os.open(name, flags, dir_fd=pfd)
        try:
            xattrs = read_xattrs(fd, strict=True)
        finally:
            os.close(fd)
    mtime = st.st_mtime_ns
    return Meta(stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, mtime, xattrs)


class _Batch:
    def __init__(self, root_fd: int, batch: list[Record]) -> None:
        self.root_fd = root_fd
        # what the records so far (including the one being inverted) did to names: ("kill", path) when an
        # entry is removed or replaced, ("move", old, new) for a rename; names as they were at that record
        self.events: list[tuple[str, bytes, bytes]] = []
        self._inodes: dict[tuple[int, int], list[bytes]] | None = None
        # (while the undo is iterated) hard-linked files rebuilt by an inverse that runs earlier: inode -> path
        self.rebuilt: dict[tuple[int, int], bytes] = {}
        self.origin: dict[bytes, bytes] = {}  # a path as the batch leaves it -> where its data was before
        self.attrs_saved: set[bytes] = set()  # pre-batch paths whose old attributes an inverse restores

    # -- where a path's data was before the batch ----------------------------------------------------
    def before(self, path: bytes) -> bytes | None:
        """The pre-batch path holding ``path``'s data, or None when the batch created it."""
        probe = path
        while True:
            if probe in self.origin:
                base = self.origin[probe]
                return None if base == NEW else base + path[len(probe) :]
            cut = probe.rfind(b"/")
            if cut < 0:
                return path
            probe = probe[:cut]

    def stat_before(self, path: bytes) -> tuple[bytes | None, os.stat_result | None]:
        old = self.before(path)
        return old, (_lstat(self.root_fd, old) if old is not None else None)

    # -- inverses ------------------------------------------------------------------------------------
    def note(self, rec: Record) -> None:
        if rec.op == Op.RENAME:
            self.events += [("kill", rec.path2, b""), ("move", rec.path, rec.path2)]
        elif rec.op not in _DATA:
            self.events.append(("kill", rec.path, b""))

    def now_named(self, name: bytes, upto: int) -> bytes | None:
        """Where the entry that had pre-batch name ``name`` is after the first ``upto`` events (None: removed)."""
        cur = name
        for kind, a, b in islice(self.events, upto):
            inside = cur == a or cur.startswith(a + b"/")
            if kind == "kill" and inside:
                return None
            if kind == "move" and inside:
                cur = b + cur[len(a) :]
        return cur

    def inverse(self, c: _Ctx, rec: Record) -> list[_Part]:
        if rec.op == Op.WRITE:
            return self._inv_data(c, rec, rec.offset, len(rec.data))
        if rec.op == Op.TRUNCATE:
            return self._inv_data(c, rec, rec.offset, None)
        if rec.op == Op.SETATTR:
            old, st = self.stat_before(rec.path)
            return self._old_attrs(c, rec.path, old, st)
        if rec.op == Op.DELETE:
            old, st = self.stat_before(rec.path)
            self.origin[rec.path] = NEW
            return self._rebuild(c, rec.path, old, st)
        if rec.op == Op.RENAME:
            return self._inv_rename(c, rec)
        if rec.op in _NAMESPACE_CREATE:
            return self._inv_create(c, rec)
        return []

    def _inv_data(self, c: _Ctx, rec: Record, offset: int, length: int | None) -> list[_Part]:
        """WRITE (``length`` bytes at ``offset``) or TRUNCATE (to ``offset``): old bytes and old size."""
        old, st = self.stat_before(rec.path)
        if old is None or st is None or not stat.S_ISREG(st.st_mode):
            return []  # new in this batch, or nothing there (the forward record is skipped)
        size = st.st_size
        start, end = (offset, offset + length) if length is not None else (offset, size)
        # A truncate's cut tail is put back beyond the end of the file, where holes come back as holes: only
        # its data is read (a sparse file of 1 TiB cut to nothing takes the time of its data). A write's range
        # is read whole: zeros it overwrote must be written back.
        sparse = length is None
        out: list[_Part] = [_Later(partial(self._old_bytes, c, rec.path, old, start, min(end, size), sparse=sparse))]
        if (length is not None and end > size) or (length is None and offset != size):
            out.append(c.rec(Op.TRUNCATE, rec.path, offset=size))
        return out + self._old_attrs(c, rec.path, old, st)

    def _old_attrs(self, c: _Ctx, path: bytes, old: bytes | None, st: os.stat_result | None) -> list[_Part]:
        """SETATTR with the pre-batch attributes, in the inverse of the first record touching the file."""
        if old is None or st is None or old in self.attrs_saved:
            return []
        self.attrs_saved.add(old)
        with parent_fd(self.root_fd, old) as (pfd, name):
            return [c.rec(Op.SETATTR, path, meta=_meta(pfd, name, st))]

    def _old_bytes(
        self, c: _Ctx, path: bytes, old: bytes, start: int, end: int, *, sparse: bool = False
    ) -> Iterator[Record]:
        """WRITEs of the old bytes of ``[start, end)``; with ``sparse``, of its data only (holes never read)."""
        if end <= start:
            return
        with parent_fd(self.root_fd, old) as (pfd, name):
            fd = open_regular(pfd, name, os.O_RDONLY)  # (swapped for a FIFO since its stat: refused, never waited on)
        try:
            for first, last in data_ranges(fd, start, end) if sparse else [(start, end)]:
                pos = first
                while pos < last:
                    buf = os.pread(fd, min(CHUNK, last - pos), pos)
                    if not buf:
                        return
                    yield c.rec(Op.WRITE, path, offset=pos, data=buf)
                    pos += len(buf)
        finally:
            os.close(fd)

    def _inv_create(self, c: _Ctx, rec: Record) -> list[_Part]:
        old, st = self.stat_before(rec.path)
        if rec.op == Op.MKDIR and st is not None and stat.S_ISDIR(st.st_mode) and old is not None:
            with parent_fd(self.root_fd, old) as (pfd, name):
                return [c.rec(Op.SETATTR, rec.path, meta=_meta(pfd, name, st))]  # an existing directory stays
        if rec.op == Op.HARDLINK and st is not None:
            _, target = self.stat_before(rec.path2)
            if target is not None and (target.st_dev, target.st_ino) == (st.st_dev, st.st_ino):
                return []  # already that file: the forward record changes nothing
        out: list[_Part] = [c.rec(Op.DELETE, rec.path)]
        out += self._rebuild(c, rec.path, old, st)
        out += self._made_parents(c, rec.path)
        self.origin[rec.path] = NEW
        return out

    def _inv_rename(self, c: _Ctx, rec: Record) -> list[_Part]:
        src_old, src_st = self.stat_before(rec.path)
        dst_old, dst_st = self.stat_before(rec.path2)
        if src_st is None:
            return []  # nothing to move: the forward record is skipped
        same = dst_st is not None and (dst_st.st_dev, dst_st.st_ino) == (src_st.st_dev, src_st.st_ino)
        if same:  # two names of one file: the forward record removes the old name
            return [c.rec(Op.HARDLINK, rec.path, path2=rec.path2)]
        out: list[_Part] = [c.rec(Op.RENAME, rec.path2, path2=rec.path)]
        out += self._rebuild(c, rec.path2, dst_old, dst_st)
        out += self._made_parents(c, rec.path2)
        self.origin[rec.path2] = src_old if src_old is not None else NEW
        self.origin[rec.path] = NEW
        return out

    def _made_parents(self, c: _Ctx, path: bytes) -> list[_Part]:
        """DELETE of the topmost parent the forward record creates (the applier makes missing parents)."""
        parts = path.split(b"/")[:-1]
        for i in range(1, len(parts) + 1):
            parent = b"/".join(parts[:i])
            old, st = self.stat_before(parent)
            if old is not None and st is None:
                self.origin[parent] = NEW
                return [c.rec(Op.DELETE, parent)]
        return []

    def _rebuild(self, c: _Ctx, path: bytes, old: bytes | None, st: os.stat_result | None) -> list[_Part]:
        """Records that recreate, at ``path``, the entry that was at ``old`` before the batch: read when the undo
        is iterated (with what the records so far did to names, for hard links)."""
        if old is None or st is None:
            return []
        return [_Later(partial(self._rebuild_now, c, path, old, st, len(self.events)))]

    def _rebuild_now(self, c: _Ctx, path: bytes, old: bytes, st: os.stat_result, upto: int) -> Iterator[Record]:
        """The records of :meth:`_rebuild_entry`, a directory's entries where they come: depth first, with a
        stack of the directories being rebuilt (no recursion: a tree of any depth)."""
        links = _Links({}, upto)
        stack = [self._rebuild_entry(c, path, old, st, links)]
        while stack:
            item = next(stack[-1], None)
            if item is None:
                stack.pop()
            elif isinstance(item, _Child):
                stack.append(self._rebuild_entry(c, item.path, item.old, item.st, links))
            else:
                yield item

    def _rebuild_entry(
        self, c: _Ctx, path: bytes, old: bytes, st: os.stat_result, links: _Links
    ) -> Iterator[Record | _Child]:
        mode = st.st_mode
        with parent_fd(self.root_fd, old) as (pfd, name):
            meta = _meta(pfd, name, st)
            target = os.readlink(name, dir_fd=pfd) if stat.S_ISLNK(mode) else b""
        if stat.S_ISDIR(mode):
            yield c.rec(Op.MKDIR, path, meta=meta)
            with parent_fd(self.root_fd, old) as (pfd, name):
                fd = os.open(name, DIR_FLAGS, dir_fd=pfd)
            try:
                names = sorted(os.fsencode(n) for n in os.listdir(fd))
                kids = [(n, os.stat(n, dir_fd=fd, follow_symlinks=False)) for n in names]
            finally:
                os.close(fd)
            for n, kst in kids:
                yield _Child(path + b"/" + n, old + b"/" + n, kst)
            yield c.rec(Op.SETATTR, path, meta=meta)
        elif stat.S_ISREG(mode):
            yield from self._rebuild_file(c, path, old, st, meta, links)
        elif stat.S_ISLNK(mode):
            yield c.rec(Op.SYMLINK, path, path2=target, meta=meta)
        elif stat.S_ISFIFO(mode):
            yield c.rec(Op.MKFIFO, path, meta=meta)
        # sockets and device nodes are never replicated, so never destroyed by a record

    def _rebuild_file(
        self, c: _Ctx, path: bytes, old: bytes, st: os.stat_result, meta: Meta, links: _Links
    ) -> Iterator[Record]:
        """A regular file, or a link to it: to another name this rebuild made, to a name of the file that is
        there when this inverse runs, or to a name an inverse that runs earlier rebuilt (the undo runs the
        inverses in reverse: the first to run rebuilds the file, the others link to it)."""
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1:
            other = links.made.get(key) or self._survivor(key, links.upto)
            if other is None and key in self.rebuilt:
                other, links.made[key] = self.rebuilt[key], path
            if other is not None:
                yield c.rec(Op.HARDLINK, path, path2=other)
                return
            self.rebuilt[key] = path
        links.made[key] = path
        yield c.rec(Op.CREATE, path, meta=Meta(meta.mode, meta.uid, meta.gid, 0, meta.xattrs))
        for r in self._old_bytes(c, path, old, 0, st.st_size, sparse=True):
            if not all_zero(r.data):  # holes stay holes (and zeros written as data become holes)
                yield r
        yield c.rec(Op.TRUNCATE, path, offset=st.st_size)
        yield c.rec(Op.SETATTR, path, meta=meta)

    def _survivor(self, key: tuple[int, int], upto: int) -> bytes | None:
        """A name of inode ``key`` that is there when this inverse runs: the undo runs right after the
        forward record it inverts (the later records are undone by then), so a pre-batch name counts as
        moved by the renames so far (the first ``upto`` events) and is out when the records so far removed it."""
        if self._inodes is None:
            self._inodes = {}
            for rel, st in _walk(self.root_fd):  # the replica before the batch
                if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                    self._inodes.setdefault((st.st_dev, st.st_ino), []).append(rel)
        for name in sorted(self._inodes.get(key, ())):
            now = self.now_named(name, upto)
            if now is not None:
                return now
        return None


def _walk(root_fd: int) -> Iterator[tuple[bytes, os.stat_result]]:
    """(path, lstat) of everything under the root, never following links."""
    todo = [b""]
    while todo:
        rel = todo.pop()
        fd = os.open(rel or b".", DIR_FLAGS, dir_fd=root_fd)
        try:
            names = [os.fsencode(n) for n in os.listdir(fd)]
            for n in names:
                path = rel + b"/" + n if rel else n
                st = os.stat(n, dir_fd=fd, follow_symlinks=False)
                yield path, st
                if stat.S_ISDIR(st.st_mode):
                    todo.append(path)
        finally:
            os.close(fd)


class Undo:
    """The undo records of a batch, read from the replica as they are iterated: before any of the batch is
    applied (the rewind log's append iterates it once). Old data comes in records of at most ``CHUNK`` bytes."""

    def __init__(self, batch: _Batch, inverses: list[list[_Part]]) -> None:
        self._batch = batch
        self._inverses = inverses

    def __iter__(self) -> Iterator[Record]:
        self._batch.rebuilt.clear()
        for inv in reversed(self._inverses):
            for part in inv:
                if isinstance(part, Record):
                    yield part
                else:
                    yield from part.make()


@overload
def capture(root_fd: int, batch: list[Record], *, lazy: Literal[False] = False) -> list[Record]: ...
@overload
def capture(root_fd: int, batch: list[Record], *, lazy: Literal[True]) -> Undo: ...
def capture(root_fd: int, batch: list[Record], *, lazy: bool = False) -> list[Record] | Undo:
    """The undo records of ``batch``, read from the replica before any of it is applied (module docstring).

    Each undo record carries the seq and source time of the forward record it undoes. ``lazy``: an
    :class:`Undo` that reads the old data while it is iterated, which must be before the batch is applied
    (in bounded memory, whatever the size of what the batch destroys); else a list, all of it in memory."""
    b = _Batch(root_fd, batch)
    inverses: list[list[_Part]] = []
    for rec in batch:
        b.note(rec)
        inverses.append(b.inverse(_Ctx(root_fd, rec.seq, rec.ts), rec))
    undo = Undo(b, inverses)
    return undo if lazy else list(undo)

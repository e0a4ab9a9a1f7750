"""Apply records to a replica root: single writer, strict seq order, idempotent on replay, durable on commit.

Replay safety: after a crash, the records of the last uncommitted batch are applied again on a tree in
which some of them already took effect. Each operation is written so that this gives the same result:
namespace operations check whether they already happened (a rename whose source is gone and whose target
exists is done), data operations on a missing file are skipped (the file was renamed or deleted by a later
record of the same batch). The sender cuts batches so that no name is the subject of a namespace operation
after any earlier operation of the same batch touched it (see :func:`twinsite.apply.batching.needs_cut`).

Nothing on the replica is followed or waited on: existing files are opened with
:func:`~twinsite.apply.paths.open_regular` (never through a link, never blocking on a FIFO, only regular files),
and every attribute (owner, mode, xattrs, mtime) is set through a descriptor opened without following a link; a
symlink's own owner and mtime by name, never following it. Something of another kind where a record expects a
file is a divergence, not an error.

Nothing is applied while an assured-recovery test's overlay is mounted on the root
(:func:`twinsite.apply.overlay.mounted`): neither into its throw-away layer nor below it.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import ctypes.util
import errno
import os
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from twinsite.apply import overlay
from twinsite.apply.paths import DIR_FLAGS, MountPointError, NotRegularFileError, open_regular, parent_fd, split
from twinsite.errors import ApplyError, ParentNotDirectoryError, RecoveryError, UnsafePathError
from twinsite.journal.record import Meta, Op, Record, unprivileged

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
FILE_FLAGS = os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC
#: an existing node whose attributes are set: never through a link, never waiting (a FIFO), never a terminal
NODE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
OVERLAY_CHECK_EVERY = 0.5  # s: how often a long batch looks again whether an overlay was mounted on the root


def syncfs(fd: int) -> None:
    """Flush every dirty page and inode of the filesystem holding ``fd`` (one call instead of one fsync per file)."""
    if _libc.syncfs(fd) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@dataclass
class ApplyStats:
    applied: int = 0
    skipped_missing: int = 0  # data records whose file was already renamed or deleted (normal on replay)
    bytes_written: int = 0
    # records under a parent that is a symlink or a file here, or whose file is something else here (a FIFO, a
    # socket, a link): never followed nor opened (NotRegularFileError); counted in skipped_missing too
    refused_parents: int = 0
    by_op: dict[str, int] = field(default_factory=dict)


class Applier:
    """Applies records under one root. Not thread-safe: one writer per root."""

    def __init__(self, root: Path, *, drop_privileged: bool = False) -> None:
        """``drop_privileged``: never set setuid or setgid bits of a file, nor privileged xattrs, whatever a
        record says (a scenario's ``replication.privileged_metadata: drop``, enforced by the standby)."""
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.drop_privileged = drop_privileged
        self._root_fd: int | None = None  # opened when first needed: see ensure_current
        self._no_overlay: tuple[int, int] | None = None  # (st_dev, st_ino) the root's path showed with no overlay
        self._checked_at: float | None = None  # when the root was last checked for one (None: at the next record)
        self.stats = ApplyStats()
        self._files: dict[bytes, int] = {}  # open descriptors of files written in this batch
        self._file_dirs: collections.Counter[bytes] = collections.Counter()  # directories holding them
        self._dirs: dict[bytes, int] = {}  # open descriptors of the parent directories of this batch's records
        self._dir_holders: collections.Counter[bytes] = collections.Counter()  # those and the directories above

    @property
    def root_fd(self) -> int:
        if self._root_fd is None:
            self.refuse_overlay()  # (opened now, it would be the overlay's merged view: the test's layer)
            self._root_fd = os.open(self.root, DIR_FLAGS)
        return self._root_fd

    def refuse_overlay(self) -> os.stat_result:
        """Raise RecoveryError when an assured-recovery test's overlay is mounted on the root; the root's stat.
        Cheap: mountinfo is read only when the root's path names another directory than when it was last
        found without one (mounting an overlay on it does)."""
        now = os.stat(self.root)
        self._checked_at = time.monotonic()
        if (now.st_dev, now.st_ino) != self._no_overlay:
            if overlay.mounted(self.root):
                raise RecoveryError(
                    f"an assured-recovery test's overlay is mounted on the replica root {self.root}: "
                    "nothing is applied into it or below it",
                    where=str(self.root),
                    hint="end the test (twinsite recover-test SCENARIO --cleanup) or umount "
                    f"{self.root}; replication applies again once it is removed",
                )
            self._no_overlay = (now.st_dev, now.st_ino)
        return now

    def ensure_current(self) -> None:
        """Refuse while an assured-recovery test's overlay is mounted on the root (:meth:`refuse_overlay`), and
        open the root again if its path now names another directory than the one held open (a test's overlay
        was mounted and removed since): records are applied only with no overlay on the root, never into one
        nor below one (docs/assured-recovery.md)."""
        now = self.refuse_overlay()
        if self._root_fd is None:
            return
        held = os.fstat(self._root_fd)
        if (held.st_dev, held.st_ino) != (now.st_dev, now.st_ino):
            self._close_files()
            os.close(self._root_fd)
            self._root_fd = None

    def close(self) -> None:
        self._checked_at = None
        self._close_files()
        if self._root_fd is not None:
            os.close(self._root_fd)
            self._root_fd = None

    def _close_files(self) -> None:
        for fd in (*self._files.values(), *self._dirs.values()):
            os.close(fd)
        self._files.clear()
        self._file_dirs.clear()
        self._dirs.clear()
        self._dir_holders.clear()

    def commit(self) -> None:
        """Make everything applied so far durable."""
        self._checked_at = None  # (the next batch begins by looking for an overlay)
        self._close_files()
        try:
            syncfs(self.root_fd)
        except OSError as exc:
            raise ApplyError(f"flushing the replica failed: {exc.strerror}", where=str(self.root)) from exc

    def _point(self, rec: Record) -> None:
        """The end of a consistency point: nothing on disk (the receiver records the point)."""

    def apply(self, rec: Record) -> None:
        handler = _HANDLERS.get(rec.op)
        if handler is None:
            raise ApplyError(f"record seq {rec.seq} has operation {rec.op.name}, which a replica never applies")
        self._check_root()
        if len(self._files) >= 256 or len(self._dirs) >= 256:
            self._close_files()  # (between records: a record may hold two of them)
        try:
            handler(self, rec)
        except ParentNotDirectoryError:
            # never followed, nothing written; the sender's picture of the replica is stale: counted as
            # divergence (the sender then compares everything again) rather than stopping replication
            self.stats.skipped_missing += 1
            self.stats.refused_parents += 1
            return
        except UnsafePathError:
            raise
        except FileNotFoundError:
            if rec.op in (Op.WRITE, Op.TRUNCATE, Op.SETATTR, Op.RENAME, Op.DELETE, Op.HARDLINK):
                self.stats.skipped_missing += 1
                return
            raise ApplyError(
                f"cannot apply {rec.op.name} seq {rec.seq}: a parent directory is missing", where=_show(rec.path)
            ) from None
        except OSError as exc:
            raise ApplyError(
                f"cannot apply {rec.op.name} seq {rec.seq}: {exc.strerror}",
                where=_show(rec.path),
                hint="free space on the replica" if exc.errno == errno.ENOSPC else None,
            ) from exc
        self.stats.applied += 1
        self.stats.by_op[rec.op.name] = self.stats.by_op.get(rec.op.name, 0) + 1

    def _check_root(self) -> None:
        """Before a batch's first record, the root as :meth:`ensure_current` leaves it; during a long batch,
        twice a second, that no overlay was mounted on it meanwhile."""
        try:
            if self._checked_at is None:
                self.ensure_current()
            elif time.monotonic() - self._checked_at > OVERLAY_CHECK_EVERY:
                self.refuse_overlay()
        except OSError as exc:
            raise ApplyError(f"the replica root cannot be reached: {exc.strerror}", where=str(self.root)) from exc

    # -- data --------------------------------------------------------------------------------------
    def _parent(self, path: bytes, *, create: bool = False) -> tuple[int, bytes]:
        """(descriptor of the parent directory, last component) of ``path``, as :func:`parent_fd` opens it (never
        through a link, never into another filesystem; with ``create``, missing parents made), kept for the
        batch's later records in the same directory: :meth:`_forget` drops it before the directory or one above
        it is renamed, replaced or deleted, and a commit closes it. Not closed by the caller."""
        parent, _, name = path.rpartition(b"/")
        split(path)  # (the whole path checked as parent_fd checks it)
        if not parent:
            return self.root_fd, name
        fd = self._dirs.get(parent)
        if fd is None:
            with parent_fd(self.root_fd, path, create=create) as (pfd, _):
                fd = os.dup(pfd)
            self._dirs[parent] = fd
            self._dir_holders.update(_ancestors(path))
        return fd, name

    def _file(self, path: bytes) -> int:
        fd = self._files.get(path)
        if fd is None:
            pfd, name = self._parent(path)
            fd = open_regular(pfd, name, os.O_WRONLY)  # (a FIFO planted here: refused, never waited on)
            self._files[path] = fd
            self._file_dirs.update(_ancestors(path))
        return fd

    def _forget(self, path: bytes) -> None:
        """Drop cached descriptors at or under ``path`` (before it is renamed, replaced or deleted): files, and
        parent directories."""
        prefix = path + b"/"
        gone = [path] if path in self._files else []
        if self._file_dirs[path] > 0:  # a directory holding open files: they go with it
            gone += [p for p in self._files if p.startswith(prefix)]
        for p in gone:
            os.close(self._files.pop(p))
            self._file_dirs.subtract(_ancestors(p))
        if self._dir_holders[path] > 0:  # a directory kept open, or one holding some
            for d in [d for d in self._dirs if d == path or d.startswith(prefix)]:
                os.close(self._dirs.pop(d))
                self._dir_holders.subtract(_ancestors(d + b"/-"))

    def _write(self, rec: Record) -> None:
        fd = self._file(rec.path)
        view = memoryview(rec.data)
        off = rec.offset
        while view:
            n = os.pwrite(fd, view, off)
            view, off = view[n:], off + n
        self.stats.bytes_written += len(rec.data)

    def _truncate(self, rec: Record) -> None:
        os.ftruncate(self._file(rec.path), rec.offset)

    def _setattr(self, rec: Record) -> None:
        if rec.meta is None:
            raise ApplyError(f"SETATTR seq {rec.seq} carries no metadata", where=_show(rec.path))
        pfd, name = self._parent(rec.path)
        _set_meta(pfd, name, rec.meta, drop=self.drop_privileged)

    # -- namespace ---------------------------------------------------------------------------------
    def _replace(self, pfd: int, name: bytes, st: os.stat_result | None = None) -> None:
        """Remove whatever is at ``name`` (a directory with everything in it; ``st``: its lstat, when known)."""
        try:
            st = st or os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            _rmtree_at(pfd, name)
        else:
            os.unlink(name, dir_fd=pfd)

    def _mkdir(self, rec: Record) -> None:
        self._forget(rec.path)
        pfd, name = self._parent(rec.path, create=True)
        try:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode):
                os.unlink(name, dir_fd=pfd)
                os.mkdir(name, 0o700, dir_fd=pfd)
        except FileNotFoundError:
            os.mkdir(name, 0o700, dir_fd=pfd)
        if rec.meta:
            _set_meta(pfd, name, rec.meta, drop=self.drop_privileged)

    def _put(self, rec: Record, make: Callable[[int, bytes], None]) -> None:
        """Replace whatever is at the record's path by what ``make(parent_fd, name)`` creates, then set its
        attributes (CREATE, MKFIFO and SYMLINK differ only in what they make)."""
        self._forget(rec.path)
        pfd, name = self._parent(rec.path, create=True)
        self._replace(pfd, name)
        make(pfd, name)
        if rec.meta:
            _set_meta(pfd, name, rec.meta, drop=self.drop_privileged)

    def _create(self, rec: Record) -> None:
        def make(pfd: int, name: bytes) -> None:
            # kept open for the WRITE records that follow (a new file's data comes next): one open, not two
            self._files[rec.path] = os.open(name, FILE_FLAGS | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=pfd)
            self._file_dirs.update(_ancestors(rec.path))

        self._put(rec, make)

    def _mkfifo(self, rec: Record) -> None:
        self._put(rec, lambda pfd, name: os.mkfifo(name, 0o600, dir_fd=pfd))

    def _symlink(self, rec: Record) -> None:
        # the target is data: stored as is, never followed
        self._put(rec, lambda pfd, name: os.symlink(rec.path2, name, dir_fd=pfd))

    def _hardlink(self, rec: Record) -> None:
        self._forget(rec.path)
        sfd, sname = self._parent(rec.path2)
        dfd, dname = self._parent(rec.path, create=True)
        src = os.stat(sname, dir_fd=sfd, follow_symlinks=False)
        with contextlib.suppress(FileNotFoundError):
            dst = os.stat(dname, dir_fd=dfd, follow_symlinks=False)
            if (dst.st_dev, dst.st_ino) == (src.st_dev, src.st_ino):
                return  # already linked (replay)
            self._replace(dfd, dname, dst)
        os.link(sname, dname, src_dir_fd=sfd, dst_dir_fd=dfd, follow_symlinks=False)

    def _rename(self, rec: Record) -> None:
        self._forget(rec.path)
        self._forget(rec.path2)
        sfd, sname = self._parent(rec.path)
        dfd, dname = self._parent(rec.path2, create=True)
        src = os.stat(sname, dir_fd=sfd, follow_symlinks=False)  # gone: done already (-> skipped)
        try:
            dst = os.stat(dname, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            dst = None
        if dst is not None and (dst.st_dev, dst.st_ino) == (src.st_dev, src.st_ino):
            # rename(2) between two names of one file does nothing; the source did move the name
            # (its target was another file there), so the old name must go
            os.unlink(sname, dir_fd=sfd)
            return
        if dst is not None and stat.S_ISDIR(dst.st_mode):
            _rmtree_at(dfd, dname)  # rename(2) only replaces an empty directory
        os.rename(sname, dname, src_dir_fd=sfd, dst_dir_fd=dfd)

    def _delete(self, rec: Record) -> None:
        self._forget(rec.path)
        pfd, name = self._parent(rec.path)
        self._replace(pfd, name, os.stat(name, dir_fd=pfd, follow_symlinks=False))  # (missing: deleted already)


def _ancestors(path: bytes) -> list[bytes]:
    parts = path.split(b"/")
    return [b"/".join(parts[:i]) for i in range(1, len(parts))]


def _set_meta(pfd: int, name: bytes, meta: Meta, *, drop: bool = False) -> None:
    """Ownership, permissions, xattrs (the full set) and mtime of ``name``, all through one descriptor of what
    is there, opened without following a link (a link itself: its owner and mtime, by name, never followed).
    ``drop``: without privileged metadata (journal.record.unprivileged)."""
    fd = _open_node(pfd, name)
    if fd is None:
        os.chown(name, meta.uid, meta.gid, dir_fd=pfd, follow_symlinks=False)
        os.utime(name, ns=(meta.mtime_ns, meta.mtime_ns), dir_fd=pfd, follow_symlinks=False)
        return
    try:
        mode, xattrs = meta.mode, meta.xattrs
        if drop:
            mode, xattrs = unprivileged(mode, xattrs, directory=stat.S_ISDIR(os.fstat(fd).st_mode))
        os.chown(fd, meta.uid, meta.gid)
        os.chmod(fd, mode & 0o7777)  # after chown: chown clears setuid/setgid bits
        wanted = dict(xattrs)
        for key in os.listxattr(fd):
            if os.fsencode(key) not in wanted:
                os.removexattr(fd, key)
        for key_b, value in wanted.items():
            os.setxattr(fd, os.fsdecode(key_b), value)
        os.utime(fd, ns=(meta.mtime_ns, meta.mtime_ns))
    finally:
        os.close(fd)


def _open_node(pfd: int, name: bytes) -> int | None:
    """A descriptor of the directory, regular file or FIFO at ``name``, or None when a symlink is there. Looked at
    first through O_PATH (a device node is never opened), then opened without following a link or waiting, and
    checked to be what was looked at: swapped in between, it is refused (NotRegularFileError, a divergence)."""
    probe = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
    try:
        st = os.fstat(probe)
    finally:
        os.close(probe)
    if stat.S_ISLNK(st.st_mode):
        return None
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode) or stat.S_ISFIFO(st.st_mode)):
        raise NotRegularFileError(f"{_show(name)!r} is a socket or a device node here, which is never replicated")
    try:
        fd = os.open(name, NODE_FLAGS, dir_fd=pfd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO, errno.ENODEV):
            raise NotRegularFileError(f"{_show(name)!r} was replaced while its attributes were set") from exc
        raise
    try:
        got = os.fstat(fd)
        if (got.st_dev, got.st_ino) != (st.st_dev, st.st_ino):
            raise NotRegularFileError(f"{_show(name)!r} was replaced while its attributes were set")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _rmtree_at(pfd: int, name: bytes) -> None:
    """Delete directory ``name`` under ``pfd`` and everything in it, never following links: depth first with a
    stack of the directories being emptied, each listed once (no recursion, so a tree of any depth)."""

    dev = os.fstat(pfd).st_dev

    def opened(parent: int, dname: bytes) -> tuple[int, bytes, int, Iterator[str]]:
        if os.stat(dname, dir_fd=parent, follow_symlinks=False).st_dev != dev:
            raise MountPointError(f"{_show(dname)!r} is another filesystem mounted inside the root: not emptied")
        fd = os.open(dname, DIR_FLAGS, dir_fd=parent)
        return parent, dname, fd, iter(os.listdir(fd))

    stack = [opened(pfd, name)]
    try:
        while stack:
            parent, dname, fd, left = stack[-1]
            child = next(left, None)
            if child is None:
                stack.pop()
                os.close(fd)
                os.rmdir(dname, dir_fd=parent)
            elif stat.S_ISDIR(os.stat(child, dir_fd=fd, follow_symlinks=False).st_mode):
                stack.append(opened(fd, os.fsencode(child)))
            else:
                os.unlink(child, dir_fd=fd)
    finally:
        for _parent, _name, fd, _left in stack:
            os.close(fd)


def _show(path: bytes) -> str:
    return os.fsdecode(path)


_HANDLERS = {
    Op.MKDIR: Applier._mkdir,
    Op.CREATE: Applier._create,
    Op.WRITE: Applier._write,
    Op.TRUNCATE: Applier._truncate,
    Op.SYMLINK: Applier._symlink,
    Op.HARDLINK: Applier._hardlink,
    Op.RENAME: Applier._rename,
    Op.DELETE: Applier._delete,
    Op.SETATTR: Applier._setattr,
    Op.MKFIFO: Applier._mkfifo,
    Op.POINT: Applier._point,
}

"""Apply records to a replica root: single writer, strict seq order, idempotent on replay, durable on commit.

Replay safety: after a crash, the records of the last uncommitted batch are applied again on a tree in
which some of them already took effect. Each operation is written so that this gives the same result:
namespace operations check whether they already happened (a rename whose source is gone and whose target
exists is done), data operations on a missing file are skipped (the file was renamed or deleted by a later
record of the same batch). The sender cuts batches so that no name is the subject of a namespace operation
after any earlier operation of the same batch touched it (see :func:`twinsite.apply.batching.needs_cut`).
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import ctypes.util
import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from twinsite.apply.paths import DIR_FLAGS, parent_fd
from twinsite.errors import ApplyError, ParentNotDirectoryError, UnsafePathError
from twinsite.journal.record import Meta, Op, Record

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
FILE_FLAGS = os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC


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
    refused_parents: int = 0  # records under a parent that is a symlink or a file here: never followed
    by_op: dict[str, int] = field(default_factory=dict)


class Applier:
    """Applies records under one root. Not thread-safe: one writer per root."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self._root_fd: int | None = None  # opened when first needed: see ensure_current
        self.stats = ApplyStats()
        self._files: dict[bytes, int] = {}  # open descriptors of files written in this batch
        self._file_dirs: collections.Counter[bytes] = collections.Counter()  # directories holding them

    @property
    def root_fd(self) -> int:
        if self._root_fd is None:
            self._root_fd = os.open(self.root, DIR_FLAGS)
        return self._root_fd

    def ensure_current(self) -> None:
        """Open the root again if its path now names another directory than the one held open: an
        assured-recovery test mounted its overlay on the root, or removed it, since. Records are only ever
        applied below such an overlay, never into it (docs/assured-recovery.md)."""
        if self._root_fd is None:
            return
        held, now = os.fstat(self._root_fd), os.stat(self.root)
        if (held.st_dev, held.st_ino) != (now.st_dev, now.st_ino):
            self._close_files()
            os.close(self._root_fd)
            self._root_fd = None

    def close(self) -> None:
        self._close_files()
        if self._root_fd is not None:
            os.close(self._root_fd)
            self._root_fd = None

    def _close_files(self) -> None:
        for fd in self._files.values():
            os.close(fd)
        self._files.clear()
        self._file_dirs.clear()

    def commit(self) -> None:
        """Make everything applied so far durable."""
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

    # -- data --------------------------------------------------------------------------------------
    def _file(self, path: bytes) -> int:
        fd = self._files.get(path)
        if fd is None:
            if len(self._files) >= 256:
                self._close_files()
            with parent_fd(self.root_fd, path) as (pfd, name):
                fd = os.open(name, FILE_FLAGS, dir_fd=pfd)
            self._files[path] = fd
            self._file_dirs.update(_ancestors(path))
        return fd

    def _forget(self, path: bytes) -> None:
        """Drop cached descriptors at or under ``path`` (before it is renamed, replaced or deleted)."""
        gone = [path] if path in self._files else []
        if self._file_dirs[path] > 0:  # a directory holding open files: they go with it
            prefix = path + b"/"
            gone += [p for p in self._files if p.startswith(prefix)]
        for p in gone:
            os.close(self._files.pop(p))
            self._file_dirs.subtract(_ancestors(p))

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
        with parent_fd(self.root_fd, rec.path) as (pfd, name):
            _set_meta(pfd, name, rec.meta)

    # -- namespace ---------------------------------------------------------------------------------
    def _replace(self, pfd: int, name: bytes) -> None:
        """Remove whatever is at ``name`` (a directory with everything in it)."""
        try:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            _rmtree_at(pfd, name)
        else:
            os.unlink(name, dir_fd=pfd)

    def _mkdir(self, rec: Record) -> None:
        self._forget(rec.path)
        with parent_fd(self.root_fd, rec.path, create=True) as (pfd, name):
            try:
                st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
                if not stat.S_ISDIR(st.st_mode):
                    os.unlink(name, dir_fd=pfd)
                    os.mkdir(name, 0o700, dir_fd=pfd)
            except FileNotFoundError:
                os.mkdir(name, 0o700, dir_fd=pfd)
            if rec.meta:
                _set_meta(pfd, name, rec.meta)

    def _put(self, rec: Record, make: Callable[[int, bytes], None]) -> None:
        """Replace whatever is at the record's path by what ``make(parent_fd, name)`` creates, then set its
        attributes (CREATE, MKFIFO and SYMLINK differ only in what they make)."""
        self._forget(rec.path)
        with parent_fd(self.root_fd, rec.path, create=True) as (pfd, name):
            self._replace(pfd, name)
            make(pfd, name)
            if rec.meta:
                _set_meta(pfd, name, rec.meta)

    def _create(self, rec: Record) -> None:
        self._put(
            rec, lambda pfd, name: os.close(os.open(name, FILE_FLAGS | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=pfd))
        )

    def _mkfifo(self, rec: Record) -> None:
        self._put(rec, lambda pfd, name: os.mkfifo(name, 0o600, dir_fd=pfd))

    def _symlink(self, rec: Record) -> None:
        # the target is data: stored as is, never followed
        self._put(rec, lambda pfd, name: os.symlink(rec.path2, name, dir_fd=pfd))

    def _hardlink(self, rec: Record) -> None:
        self._forget(rec.path)
        with (
            parent_fd(self.root_fd, rec.path2) as (sfd, sname),
            parent_fd(self.root_fd, rec.path, create=True) as (
                dfd,
                dname,
            ),
        ):
            src = os.stat(sname, dir_fd=sfd, follow_symlinks=False)
            with contextlib.suppress(FileNotFoundError):
                dst = os.stat(dname, dir_fd=dfd, follow_symlinks=False)
                if (dst.st_dev, dst.st_ino) == (src.st_dev, src.st_ino):
                    return  # already linked (replay)
                self._replace(dfd, dname)
            os.link(sname, dname, src_dir_fd=sfd, dst_dir_fd=dfd, follow_symlinks=False)

    def _rename(self, rec: Record) -> None:
        self._forget(rec.path)
        self._forget(rec.path2)
        with (
            parent_fd(self.root_fd, rec.path) as (sfd, sname),
            parent_fd(self.root_fd, rec.path2, create=True) as (
                dfd,
                dname,
            ),
        ):
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
        with parent_fd(self.root_fd, rec.path) as (pfd, name):
            os.stat(name, dir_fd=pfd, follow_symlinks=False)  # missing: deleted already
            self._replace(pfd, name)


def _ancestors(path: bytes) -> list[bytes]:
    parts = path.split(b"/")
    return [b"/".join(parts[:i]) for i in range(1, len(parts))]


def _set_meta(pfd: int, name: bytes, meta: Meta) -> None:
    """Ownership, permissions, xattrs (the full set) and mtime of ``name``, never following a link."""
    os.chown(name, meta.uid, meta.gid, dir_fd=pfd, follow_symlinks=False)
    st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
    if stat.S_ISLNK(st.st_mode):
        os.utime(name, ns=(meta.mtime_ns, meta.mtime_ns), dir_fd=pfd, follow_symlinks=False)
        return
    os.chmod(name, meta.mode & 0o7777, dir_fd=pfd)  # after chown: chown clears setuid/setgid bits
    fd = os.open(
        name,
        os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_NONBLOCK if stat.S_ISFIFO(st.st_mode) else 0),
        dir_fd=pfd,
    )
    try:
        wanted = dict(meta.xattrs)
        for key in os.listxattr(fd):
            if os.fsencode(key) not in wanted:
                os.removexattr(fd, key)
        for key_b, value in wanted.items():
            os.setxattr(fd, os.fsdecode(key_b), value)
        os.utime(fd, ns=(meta.mtime_ns, meta.mtime_ns))
    finally:
        os.close(fd)


def _rmtree_at(pfd: int, name: bytes) -> None:
    """Delete directory ``name`` under ``pfd`` and everything in it, never following links."""
    fd = os.open(name, DIR_FLAGS, dir_fd=pfd)
    try:
        for entry in os.listdir(fd):
            child = os.fsencode(entry)
            st = os.stat(child, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                _rmtree_at(fd, child)
            else:
                os.unlink(child, dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=pfd)


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

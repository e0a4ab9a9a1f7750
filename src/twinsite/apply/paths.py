"""Root-relative paths from records: checked, then opened one component at a time without following links.

Every path in a record is bytes relative to the scenario root. It is refused when it is empty, absolute,
contains NUL, an empty, ``.`` or ``..`` component, or a component longer than NAME_MAX, or when it is in the
root's point store (``.twinsite-points``, the standby's own when it was the active host). Parents are
opened with O_NOFOLLOW | O_DIRECTORY relative to the root's descriptor, so a symlink planted in a parent,
or a directory swapped for a link between check and use, can never lead outside the root.

An existing file that is to be read or written is opened with :func:`open_regular`: never through a link,
never blocking (a FIFO planted where a file is expected would otherwise hang the receiver while it holds the
apply lock), and only when it is a regular file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator

from twinsite.config.scenario import POINT_STORE
from twinsite.errors import ParentNotDirectoryError, UnsafePathError

_STORE = os.fsencode(POINT_STORE)

NAME_MAX = 255
PATH_MAX = 4096
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_REGULAR_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


class MountPointError(ParentNotDirectoryError):
    """A path leads into another filesystem mounted inside the root: never crossed (its writes would not be
    made durable by the root's syncfs, and a DELETE or RENAME of the tree would empty it)."""


class NotRegularFileError(ParentNotDirectoryError):
    """Where a regular file is expected there is something else (a FIFO, a socket, a device node, a directory,
    a symlink): it is never opened for reading or writing. On a replica the sender's picture is stale (or a
    local user planted it), so this counts as a divergence, like a parent that is not a directory."""


def open_regular(dir_fd: int, name: bytes | str, flags: int) -> int:
    """Open the existing regular file ``name`` under ``dir_fd`` with ``flags`` (O_RDONLY, O_WRONLY or O_RDWR,
    without O_CREAT); a descriptor the caller closes. Never follows a link at ``name`` and never blocks:
    anything but a regular file raises :class:`NotRegularFileError`; a missing one FileNotFoundError, other
    failures OSError. (O_NONBLOCK stays set: it changes nothing for a regular file.)"""
    try:
        fd = os.open(name, flags | _REGULAR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        # ELOOP: a symlink; ENXIO: a socket, or a FIFO without a reader opened for writing; EISDIR: a directory
        # opened for writing; ENODEV: a device node without its driver
        if exc.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR, errno.ENODEV):
            raise NotRegularFileError(_not_regular(name, exc.strerror)) from exc
        raise
    try:
        st = os.fstat(fd)
    except BaseException:
        os.close(fd)
        raise
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise NotRegularFileError(_not_regular(name, f"a {_kind(st.st_mode)}"))
    return fd


def _not_regular(name: bytes | str, what: str | None) -> str:
    return f"{os.fsdecode(name)!r} is not a regular file here ({what}); never opened for reading or writing"


def _kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISDIR, "directory"),
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISLNK, "symlink"),
    ):
        if test(mode):
            return kind
    return "special file"


def split(path: bytes) -> list[bytes]:
    """Validate a root-relative path and return its components."""
    if not path:
        raise UnsafePathError("empty path")
    if len(path) > PATH_MAX:
        raise UnsafePathError(f"path longer than {PATH_MAX} bytes")
    if b"\0" in path:
        raise UnsafePathError(f"path contains a NUL byte: {path!r}")
    if path.startswith(b"/"):
        raise UnsafePathError(f"absolute path: {path!r}")
    parts = path.split(b"/")
    for p in parts:
        if p in (b"", b".", b".."):
            raise UnsafePathError(f"path has an empty, '.' or '..' component: {path!r}")
        if len(p) > NAME_MAX:
            raise UnsafePathError(f"path component longer than {NAME_MAX} bytes: {path[:80]!r}...")
    if parts[0] == _STORE:
        raise UnsafePathError(f"path in the root's point store, which is never replicated: {path[:80]!r}")
    return parts


@contextlib.contextmanager
def parent_fd(root_fd: int, path: bytes, *, create: bool = False) -> Iterator[tuple[int, bytes]]:
    """Yield (descriptor of the parent directory, last component) for ``path`` under ``root_fd``.

    Parents are never followed through symlinks (ELOOP/ENOTDIR become UnsafePathError), nor into another
    filesystem mounted inside the root (:class:`MountPointError`). With ``create``, missing parents are
    created (mode 0755) as directories.
    """
    parts = split(path)
    fd = os.dup(root_fd)
    try:
        dev = os.fstat(fd).st_dev
        for comp in parts[:-1]:
            try:
                nxt = os.open(comp, DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                with contextlib.suppress(FileExistsError):
                    os.mkdir(comp, 0o755, dir_fd=fd)
                nxt = _open_dir(fd, comp, path)
            except OSError as exc:
                raise _unsafe_or(exc, path) from exc
            os.close(fd)
            fd = nxt
            if os.fstat(fd).st_dev != dev:
                raise MountPointError(f"a parent of {path!r} is another filesystem mounted inside the root; refused")
        yield fd, parts[-1]
    finally:
        os.close(fd)


def open_file_under(base: bytes, rel: bytes, st: os.stat_result) -> int:
    """The regular file ``rel`` under the directory ``base`` (a root or a snapshot of it), opened read-only one
    component at a time without following a link or leaving the root's filesystem, and only if it is still the
    file ``st`` describes (its device and inode): what a sender reads is the file it planned, never one a local
    user swapped in, or reached through a parent swapped for a link (CVE-2024-12747). Raises
    ParentNotDirectoryError (NotRegularFileError, MountPointError) or OSError otherwise."""
    root = os.open(base, DIR_FLAGS)
    try:
        with parent_fd(root, rel) as (pfd, name):
            fd = open_regular(pfd, name, os.O_RDONLY)
    finally:
        os.close(root)
    got = os.fstat(fd)
    if (got.st_dev, got.st_ino) != (st.st_dev, st.st_ino):
        os.close(fd)
        raise NotRegularFileError(f"{os.fsdecode(rel)!r} was replaced since it was planned; not read")
    return fd


def _open_dir(fd: int, comp: bytes, path: bytes) -> int:
    try:
        return os.open(comp, DIR_FLAGS, dir_fd=fd)
    except OSError as exc:
        raise _unsafe_or(exc, path) from exc


def _unsafe_or(exc: OSError, path: bytes) -> Exception:
    """A link or a file where a parent directory should be is an unsafe path; other errors stay what they are."""
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        return ParentNotDirectoryError(f"a parent of {path!r} is a symlink or a file, not a directory; refused")
    return exc

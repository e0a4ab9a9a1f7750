"""Root-relative paths from records: checked, then opened one component at a time without following links.

Every path in a record is bytes relative to the scenario root. It is refused when it is empty, absolute,
contains NUL, an empty, ``.`` or ``..`` component, or a component longer than NAME_MAX, or when it is in the
root's point store (``.twinsite-points``, the standby's own when it was the active host). Parents are
opened with O_NOFOLLOW | O_DIRECTORY relative to the root's descriptor, so a symlink planted in a parent,
or a directory swapped for a link between check and use, can never lead outside the root.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator

from twinsite.config.scenario import POINT_STORE
from twinsite.errors import ParentNotDirectoryError, UnsafePathError

_STORE = os.fsencode(POINT_STORE)

NAME_MAX = 255
PATH_MAX = 4096
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


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

    Parents are never followed through symlinks (ELOOP/ENOTDIR become UnsafePathError). With
    ``create``, missing parents are created (mode 0755) as directories.
    """
    parts = split(path)
    fd = os.dup(root_fd)
    try:
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
        yield fd, parts[-1]
    finally:
        os.close(fd)


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

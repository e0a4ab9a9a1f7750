"""The one model of a file tree: an :class:`Entry` per path, read from the filesystem without following links.

The planner compares the source's entries with what it knows the replica holds (sync.planner, sync.manifest);
the canonical tree digest is the one checker of "the replica equals the source" (RELIABILITY.md invariant 1):
an entry per path (relative path bytes, type, permission bits, uid, gid, size, content hash, symlink target,
xattrs, hard-link group, mtime). What counts, decided once here and documented in docs/replication.md:
**regular files' mtimes count** (twinsite replicates them); directories' and symlinks' mtimes do not
(applying entries changes a directory's mtime; Linux cannot set a symlink's mtime through every path). Hard
links are compared as groups (the smallest path of the group), not by inode number. Names are bytes, never
normalised (NFC and NFD are different names).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields, replace

import xxhash

from twinsite.journal.record import Meta

HASH_CHUNK = 1 << 20
Xattrs = tuple[tuple[bytes, bytes], ...]


@dataclass(frozen=True, slots=True)
class Entry:
    """One path of a tree. ``content`` (the xxh3-128 of a file's bytes) is there only when the tree was read
    with hashes (digests); ``link_group`` only for files with more than one link, in a digest's listing."""

    kind: str  # dir, file, link, fifo, other (sockets, device nodes: never replicated)
    mode: int  # permission bits
    uid: int
    gid: int
    size: int = 0  # regular files only
    mtime_ns: int = 0  # regular files only
    target: bytes = b""  # a link's target
    xattrs: Xattrs = ()  # never a link's
    content: str = ""
    link_group: bytes = b""

    def meta(self) -> Meta:
        return Meta(self.mode, self.uid, self.gid, self.mtime_ns, self.xattrs)


def read_xattrs(target: int | bytes) -> Xattrs:
    """Every extended attribute of an open file (``int``) or of a path (never following a link), sorted;
    none when the filesystem cannot say."""
    try:
        if isinstance(target, int):
            return tuple(sorted((os.fsencode(k), os.getxattr(target, k)) for k in os.listxattr(target)))
        keys = os.listxattr(target, follow_symlinks=False)
        return tuple(sorted((os.fsencode(k), os.getxattr(target, k, follow_symlinks=False)) for k in keys))
    except OSError:
        return ()


def file_hash(fd: int) -> str:
    h = xxhash.xxh3_128()
    while chunk := os.read(fd, HASH_CHUNK):
        h.update(chunk)
    return h.hexdigest()


def walk(
    root: os.PathLike[str] | str, select: Callable[[bytes], bool] | None = None
) -> Iterator[tuple[bytes, os.stat_result]]:
    """(relative path bytes, lstat) for everything under ``root``, parents before children, never following links."""
    base = os.fsencode(root)
    stack = [b""]
    while stack:
        rel = stack.pop()
        with os.scandir(base + b"/" + rel if rel else base) as it:
            found = sorted(it, key=lambda e: e.name)
        for e in found:
            child = rel + b"/" + e.name if rel else e.name
            if select is not None and not select(child):
                continue
            st = e.stat(follow_symlinks=False)
            yield child, st
            if stat.S_ISDIR(st.st_mode):
                stack.append(child)


def entry(full: bytes, st: os.stat_result, *, hashed: bool = False) -> Entry:
    """The entry of the path ``full`` whose lstat is ``st`` (with ``hashed``, a file's content hash too)."""
    mode, perm = st.st_mode, stat.S_IMODE(st.st_mode)
    if stat.S_ISLNK(mode):
        return Entry("link", perm, st.st_uid, st.st_gid, target=os.readlink(full))
    if stat.S_ISREG(mode):
        content = ""
        if hashed:
            fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                content = file_hash(fd)
            finally:
                os.close(fd)
        xattrs = read_xattrs(full)
        return Entry("file", perm, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns, xattrs=xattrs, content=content)
    kind = "dir" if stat.S_ISDIR(mode) else "fifo" if stat.S_ISFIFO(mode) else "other"
    return Entry(kind, perm, st.st_uid, st.st_gid, xattrs=read_xattrs(full))


def entries(root: os.PathLike[str] | str, select: Callable[[bytes], bool] | None = None) -> dict[bytes, Entry]:
    """The canonical listing of the tree under ``root`` (content hashes and link groups), keyed by path."""
    base = os.fsencode(root)
    out: dict[bytes, Entry] = {}
    inode_of: dict[bytes, tuple[int, int]] = {}
    first: dict[tuple[int, int], bytes] = {}
    for rel, st in walk(root, select):
        out[rel] = entry(base + b"/" + rel, st, hashed=True)
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            inode_of[rel] = key
            first[key] = min(first.get(key, rel), rel)
    for rel, key in inode_of.items():
        out[rel] = replace(out[rel], link_group=first[key])
    return out


def digest(root: os.PathLike[str] | str, select: Callable[[bytes], bool] | None = None) -> str:
    """One xxh3-128 over the canonical listing of the tree."""
    h = xxhash.xxh3_128()
    for rel, e in sorted(entries(root, select).items()):
        h.update(repr((rel, *(getattr(e, f.name) for f in fields(Entry)))).encode())
    return h.hexdigest()


def differences(a: dict[bytes, Entry], b: dict[bytes, Entry]) -> list[tuple[bytes, str]]:
    """What differs between two listings: (path, 'only in source' | 'only in replica' | 'differs: fields')."""
    out = []
    for rel in sorted(set(a) | set(b)):
        if rel not in b:
            out.append((rel, "only in source"))
        elif rel not in a:
            out.append((rel, "only in replica"))
        elif a[rel] != b[rel]:
            names = [f.name for f in fields(Entry) if getattr(a[rel], f.name) != getattr(b[rel], f.name)]
            out.append((rel, "differs: " + ", ".join(names)))
    return out

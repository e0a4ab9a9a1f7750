"""The one model of a file tree: an :class:`Entry` per path, read from the filesystem without following links.

The planner compares the source's entries with what it knows the replica holds (sync.planner, sync.manifest);
the canonical tree digest is the one checker of "the replica equals the source" (RELIABILITY.md invariant 1):
an entry per path (relative path bytes, type, permission bits, uid, gid, size, content hash, symlink target,
xattrs, hard-link group, mtime). What counts, decided once here and documented in docs/replication.md:
**regular files' and symlinks' mtimes count** (twinsite replicates them, as ``rsync -a`` does); directories'
do not (applying entries changes a directory's mtime). Hard links are compared as groups (the smallest path
of the group), not by inode number. Names are bytes, never normalised (NFC and NFD are different names).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import xxhash

from twinsite.config.scenario import POINT_STORE
from twinsite.journal.record import Meta, unprivileged

_STORE = os.fsencode(POINT_STORE)

HASH_CHUNK = 1 << 20
Xattrs = tuple[tuple[bytes, bytes], ...]


@dataclass(frozen=True, slots=True)
class Entry:
    """One path of a tree. ``content`` is there only when the tree was read with hashes (digests): the xxh3-128
    of a file's bytes, a link's target in hex; ``link_group`` only for files with more than one link, in a
    digest's listing."""

    kind: str  # dir, file, link, fifo, other (sockets, device nodes: never replicated)
    mode: int  # permission bits
    uid: int
    gid: int
    size: int = 0  # regular files only
    mtime_ns: int = 0  # regular files and symlinks only
    target: bytes = b""  # a link's target
    xattrs: Xattrs = ()  # never a link's
    content: str = ""
    link_group: bytes = b""

    def meta(self, mtime_ns: int | None = None) -> Meta:
        """The attributes a record sets (with ``mtime_ns``, another mtime)."""
        return Meta(self.mode, self.uid, self.gid, self.mtime_ns if mtime_ns is None else mtime_ns, self.xattrs)

    def sized(self, size: int, mtime_ns: int) -> Entry:
        """The entry with another size and mtime (``dataclasses.replace`` without its cost: a planner asks it of
        every file it reads)."""
        t = self
        return Entry(t.kind, t.mode, t.uid, t.gid, size, mtime_ns, t.target, t.xattrs, t.content, t.link_group)

    def unprivileged(self) -> Entry:
        """The entry as a replica that drops privileged metadata holds it (journal.record.unprivileged)."""
        mode, xattrs = unprivileged(self.mode, self.xattrs, directory=self.kind == "dir")
        return self if (mode, xattrs) == (self.mode, self.xattrs) else replace(self, mode=mode, xattrs=xattrs)


def read_xattrs(target: int | bytes, *, strict: bool = False) -> Xattrs:
    """Every extended attribute of an open file (``int``) or of a path (never following a link), sorted.
    Lenient (the planner's and the manifest's view: a difference found later is sent again): none when they
    cannot be read. ``strict`` (what is kept or judged: the undo of a batch, a digest): only a filesystem
    without extended attributes, or a path gone meanwhile, has none; any other failure is raised."""
    try:
        keys = os.listxattr(target) if isinstance(target, int) else os.listxattr(target, follow_symlinks=False)
    except OSError as exc:
        if strict and exc.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOENT):
            raise
        return ()
    try:
        if isinstance(target, int):
            return tuple(sorted((os.fsencode(k), os.getxattr(target, k)) for k in keys))
        return tuple(sorted((os.fsencode(k), os.getxattr(target, k, follow_symlinks=False)) for k in keys))
    except OSError:
        if strict:
            raise
        return ()


def file_hash(fd: int) -> str:
    h = xxhash.xxh3_128()
    while chunk := os.read(fd, HASH_CHUNK):
        h.update(chunk)
    return h.hexdigest()


def walk(
    root: os.PathLike[str] | str, select: Callable[[bytes], bool] | None = None
) -> Iterator[tuple[bytes, os.stat_result]]:
    """(relative path bytes, lstat) for everything under ``root``, parents before children, never following links;
    never the point store at its top (a root's consistency points are twinsite's own, not part of its tree)."""
    base = os.fsencode(root)
    dev = os.stat(base).st_dev
    stack = [b""]
    while stack:
        rel = stack.pop()
        with os.scandir(base + b"/" + rel if rel else base) as it:
            found = sorted(it, key=lambda e: e.name)
        for e in found:
            child = rel + b"/" + e.name if rel else e.name
            if child == _STORE or (select is not None and not select(child)):
                continue
            st = e.stat(follow_symlinks=False)
            yield child, st
            if stat.S_ISDIR(st.st_mode) and st.st_dev == dev:  # (another filesystem mounted here: not entered)
                stack.append(child)


def entry(full: bytes, st: os.stat_result, *, hashed: bool = False) -> Entry:
    """The entry of the path ``full`` whose lstat is ``st`` (with ``hashed``, a file's content hash too)."""
    mode, perm = st.st_mode, stat.S_IMODE(st.st_mode)
    kind = kind_of(mode)
    if kind == "link":
        target = os.readlink(full)
        content = target.hex() if hashed else ""
        return Entry("link", perm, st.st_uid, st.st_gid, mtime_ns=st.st_mtime_ns, target=target, content=content)
    if kind == "file":
        content = ""
        if hashed:
            fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                content = file_hash(fd)
            finally:
                os.close(fd)
        xattrs = read_xattrs(full, strict=hashed)
        return Entry("file", perm, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns, xattrs=xattrs, content=content)
    return Entry(kind, perm, st.st_uid, st.st_gid, xattrs=read_xattrs(full, strict=hashed))


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


def kind_of(mode: int) -> str:
    """dir, file, link, fifo, or other (sockets, device nodes) for an ``st_mode``."""
    for test, kind in ((stat.S_ISDIR, "dir"), (stat.S_ISREG, "file"), (stat.S_ISLNK, "link"), (stat.S_ISFIFO, "fifo")):
        if test(mode):
            return kind
    return "other"


# What the digest and the comparison judge, in this order (a link's target is in ``content``): the format of
# digests kept in evidence and compared across hosts. Changing it changes every digest.
JUDGED = ("kind", "mode", "uid", "gid", "size", "content", "xattrs", "mtime_ns", "link_group")


def digest(root: os.PathLike[str] | str, select: Callable[[bytes], bool] | None = None) -> str:
    """One xxh3-128 over the canonical listing of the tree."""
    h = xxhash.xxh3_128()
    for rel, e in sorted(entries(root, select).items()):
        h.update(repr((rel, *(getattr(e, name) for name in JUDGED))).encode())
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
            names = [name for name in JUDGED if getattr(a[rel], name) != getattr(b[rel], name)]
            out.append((rel, "differs: " + ", ".join(names)))
    return out

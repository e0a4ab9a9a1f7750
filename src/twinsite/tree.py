"""Canonical tree digests: the one checker of "the replica equals the source" (RELIABILITY.md invariant 1).

An entry per path: (relative path bytes, type, permission bits, uid, gid, size, content hash, symlink
target, xattrs, hard-link group, mtime). What counts, decided once here and documented in
docs/replication.md: **regular files' mtimes count** (twinsite replicates them); directories' and symlinks'
mtimes do not (applying entries changes a directory's mtime; Linux cannot set a symlink's mtime through
every path). Hard links are compared as groups (the smallest path of the group), not by inode number.
Names are bytes, never normalised (NFC and NFD are different names).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import xxhash

HASH_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Entry:
    path: bytes
    kind: str  # dir, file, link, fifo, other
    mode: int
    uid: int
    gid: int
    size: int
    content: str  # xxh3-128 hex of a file's bytes, a link's target, else ""
    xattrs: tuple[tuple[bytes, bytes], ...]
    mtime_ns: int  # regular files only, else 0
    link_group: bytes = b""  # for files with st_nlink > 1: the smallest path sharing the inode


def file_hash(fd: int) -> str:
    h = xxhash.xxh3_128()
    while chunk := os.read(fd, HASH_CHUNK):
        h.update(chunk)
    return h.hexdigest()


def _xattrs(path: bytes) -> tuple[tuple[bytes, bytes], ...]:
    try:
        keys = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return ()
    return tuple(sorted((os.fsencode(k), os.getxattr(path, k, follow_symlinks=False)) for k in keys))


def walk(root: Path, select: Callable[[bytes], bool] | None = None) -> Iterator[tuple[bytes, os.stat_result]]:
    """(relative path bytes, lstat) for everything under ``root``, parents before children, never following links."""
    base = os.fsencode(root)
    stack = [b""]
    while stack:
        rel = stack.pop()
        with os.scandir(base + b"/" + rel if rel else base) as it:
            entries = sorted(it, key=lambda e: e.name)
        for e in entries:
            child = rel + b"/" + e.name if rel else e.name
            if select is not None and not select(child):
                continue
            st = e.stat(follow_symlinks=False)
            yield child, st
            if stat.S_ISDIR(st.st_mode):
                stack.append(child)


def _entry(full: bytes, rel: bytes, st: os.stat_result) -> Entry:
    mode = st.st_mode
    content, size, mtime = "", 0, 0
    if stat.S_ISDIR(mode):
        kind = "dir"
    elif stat.S_ISREG(mode):
        kind, size, mtime = "file", st.st_size, st.st_mtime_ns
        fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            content = file_hash(fd)
        finally:
            os.close(fd)
    elif stat.S_ISLNK(mode):
        kind, content = "link", os.readlink(full).hex()
    elif stat.S_ISFIFO(mode):
        kind = "fifo"
    else:
        kind = "other"
    xattrs = _xattrs(full) if kind != "link" else ()
    return Entry(rel, kind, stat.S_IMODE(mode), st.st_uid, st.st_gid, size, content, xattrs, mtime)


def entries(root: Path, select: Callable[[bytes], bool] | None = None) -> dict[bytes, Entry]:
    """The canonical listing of the tree under ``root``, keyed by relative path."""
    base = os.fsencode(root)
    out: dict[bytes, Entry] = {}
    inode_of: dict[bytes, tuple[int, int]] = {}
    first: dict[tuple[int, int], bytes] = {}
    for rel, st in walk(root, select):
        out[rel] = _entry(base + b"/" + rel, rel, st)
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            inode_of[rel] = key
            first[key] = min(first.get(key, rel), rel)
    for rel, key in inode_of.items():
        e = out[rel]
        out[rel] = Entry(e.path, e.kind, e.mode, e.uid, e.gid, e.size, e.content, e.xattrs, e.mtime_ns, first[key])
    return out


def digest(root: Path, select: Callable[[bytes], bool] | None = None) -> str:
    """One xxh3-128 over the canonical listing of the tree."""
    h = xxhash.xxh3_128()
    for rel, e in sorted(entries(root, select).items()):
        h.update(
            repr((rel, e.kind, e.mode, e.uid, e.gid, e.size, e.content, e.xattrs, e.mtime_ns, e.link_group)).encode()
        )
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
            fields = [f for f in Entry.__slots__ if getattr(a[rel], f) != getattr(b[rel], f)]
            out.append((rel, "differs: " + ", ".join(fields)))
    return out

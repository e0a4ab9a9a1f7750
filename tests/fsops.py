"""Seeded random file-system workloads for the data-path tests: odd names, links, xattrs, sparse files."""

from __future__ import annotations

import os
import random
import shutil
import stat
from pathlib import Path
from typing import BinaryIO

ODD_NAMES = [
    b"new\nline",
    b"bad-utf8-\xff\xfe",
    "caf\u00e9-nfc".encode(),
    "cafe\u0301-nfd".encode(),
    b"space name",
    b"-dash",
    b"x" * 200,
]


def sparse(path: Path, size: int, pieces: dict[int, bytes]) -> None:
    """A file of ``size`` bytes holding ``pieces`` (offset: bytes) and holes everywhere else."""
    with open(path, "wb") as f:
        f.truncate(size)
        for offset, data in pieces.items():
            f.seek(offset)
            f.write(data)


def extents(path: Path) -> list[tuple[int, int]]:
    """Where the kernel says ``path`` holds data (SEEK_DATA / SEEK_HOLE, asked here, not through twinsite)."""
    out, pos, size = [], 0, path.stat().st_size
    fd = os.open(path, os.O_RDONLY)
    try:
        while pos < size:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:
                break
            pos = os.lseek(fd, start, os.SEEK_HOLE)
            out.append((start, pos))
    finally:
        os.close(fd)
    return out


def same_bytes(a: Path, b: Path) -> None:
    """Byte for byte, where either file holds data; the size; and nothing else allocated (holes are zeros)."""
    assert a.stat().st_size == b.stat().st_size
    with open(a, "rb") as fa, open(b, "rb") as fb:
        for start, end in extents(a) + extents(b):
            fa.seek(start)
            fb.seek(start)
            assert fa.read(end - start) == fb.read(end - start), (start, end)


def _name(rng: random.Random) -> bytes:
    if rng.random() < 0.15:
        return rng.choice(ODD_NAMES) + str(rng.randrange(1000)).encode()
    return f"f{rng.randrange(100000)}".encode()


def _all(root: Path) -> tuple[list[bytes], list[bytes]]:
    files, dirs = [], [b""]
    base = os.fsencode(root)
    for dirpath, dirnames, filenames in os.walk(base):
        rel = dirpath[len(base) + 1 :]
        for d in dirnames:
            p = os.path.join(dirpath, d)
            if not os.path.islink(p):
                dirs.append(os.path.join(rel, d) if rel else d)
        for f in filenames:
            files.append(os.path.join(rel, f) if rel else f)
    return files, dirs


def _open_nofollow(path: bytes) -> int:
    """Open a file for writing, never through a symlink (a workload must not write outside its tree)."""
    return os.open(path, os.O_RDWR | os.O_NOFOLLOW)


def _create(path: bytes) -> BinaryIO:
    """A new file; never an existing name, never through a symlink."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644), "wb")


def populate(root: Path, rng: random.Random, files: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    b = os.fsencode(root)
    dirs = [b""]
    for _ in range(files // 8 + 1):
        parent = rng.choice(dirs)
        d = os.path.join(parent, _name(rng)) if parent else _name(rng)
        os.makedirs(os.path.join(b, d), exist_ok=True)
        dirs.append(d)
    for _ in range(files):
        parent = rng.choice(dirs)
        p = os.path.join(b, parent, _name(rng))
        try:
            with _create(p) as f:
                f.write(rng.randbytes(rng.choice([0, 10, 4096, 5000, 70000])))
        except FileExistsError:
            continue


def mutate(root: Path, rng: random.Random, ops: int, *, remakes: bool = False) -> list[tuple[str, bytes, bytes]]:
    """Apply ``ops`` random changes; return (kind, path, new path) for each, as a capture would report them.
    ``remakes``: files are also deleted and written again at their name (a new inode, as many programs save;
    an option, so that the other tests' seeded workloads stay what they were)."""
    b = os.fsencode(root)
    out: list[tuple[str, bytes, bytes]] = []
    files: list[bytes] = []
    dirs: list[bytes] = []
    for i in range(ops):
        if i % 20 == 0:  # listing the tree is the slow part: a slightly stale list only makes some ops fail
            files, dirs = _all(root)
        kind = rng.choice(
            [
                "create",
                "write",
                "write",
                "truncate",
                "rename",
                "rename_dir",
                "delete",
                "mkdir",
                "link",
                "symlink",
                "chmod",
                "xattr",
                "sparse",
                "rmdir",
            ]
            + (["remake", "remake"] if remakes else [])
        )
        parent = rng.choice(dirs)
        new = os.path.join(parent, _name(rng)) if parent else _name(rng)
        try:
            if kind == "create":
                with _create(os.path.join(b, new)) as f:
                    f.write(rng.randbytes(rng.randrange(0, 9000)))
                out.append(("path", new, b""))
            elif kind == "mkdir":
                os.mkdir(os.path.join(b, new))
                out.append(("path", new, b""))
            elif kind == "sparse":
                with _create(os.path.join(b, new)) as f:
                    f.seek(rng.randrange(1 << 16, 1 << 20))
                    f.write(b"tail")
                    f.truncate(f.tell() + rng.randrange(0, 1 << 16))
                out.append(("path", new, b""))
            elif not files:
                continue
            elif kind == "write":
                p = rng.choice(files)
                fd = _open_nofollow(os.path.join(b, p))
                try:
                    size = os.fstat(fd).st_size
                    os.pwrite(fd, rng.randbytes(rng.randrange(1, 6000)), rng.randrange(0, size + 1))
                finally:
                    os.close(fd)
                out.append(("path", p, b""))
            elif kind == "truncate":
                p = rng.choice(files)
                fd = _open_nofollow(os.path.join(b, p))
                try:
                    os.ftruncate(fd, rng.randrange(0, 8000))
                finally:
                    os.close(fd)
                out.append(("path", p, b""))
            elif kind == "rename":
                p = rng.choice(files)
                os.rename(os.path.join(b, p), os.path.join(b, new))
                out.append(("rename", p, new))
            elif kind == "rename_dir" and len(dirs) > 1:
                d = rng.choice(dirs[1:])
                if new.startswith(d + b"/") or new == d:
                    continue
                os.rename(os.path.join(b, d), os.path.join(b, new))
                out.append(("rename", d, new))
            elif kind == "delete":
                p = rng.choice(files)
                os.unlink(os.path.join(b, p))
                out.append(("path", p, b""))
            elif kind == "rmdir" and len(dirs) > 1:
                d = rng.choice(dirs[1:])
                shutil.rmtree(os.path.join(b, d))
                out.append(("path", d, b""))
            elif kind == "link":
                p = rng.choice(files)
                if os.path.islink(os.path.join(b, p)):
                    continue
                os.link(os.path.join(b, p), os.path.join(b, new), follow_symlinks=False)
                out.append(("path", new, b""))  # as inotify reports it: nothing for the old name
            elif kind == "remake":  # deleted and written again (a new inode), as many programs save a file
                p = rng.choice(files)
                if os.path.islink(os.path.join(b, p)):
                    continue
                os.unlink(os.path.join(b, p))
                with _create(os.path.join(b, p)) as f:
                    f.write(rng.randbytes(rng.randrange(0, 9000)))
                out.append(("path", p, b""))
            elif kind == "symlink":
                # targets that exist nowhere, or inside the tree: a test workload never reaches outside its tree
                os.symlink(
                    rng.choice([b"../nowhere", b"/nonexistent/twinsite-target", rng.choice(files)]),
                    os.path.join(b, new),
                )
                out.append(("path", new, b""))
            elif kind == "chmod":
                p = rng.choice(files)
                if os.path.islink(os.path.join(b, p)):
                    continue
                os.chmod(os.path.join(b, p), rng.choice([0o600, 0o644, 0o755, 0o4755]))
                out.append(("path", p, b""))
            elif kind == "xattr":
                p = rng.choice(files)
                if not os.path.islink(os.path.join(b, p)):
                    os.setxattr(os.path.join(b, p), b"user.twinsite", rng.randbytes(8))
                    out.append(("path", p, b""))
        except (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, OSError):
            continue
    return out


def live_bytes(root: Path, *, skip: tuple[str, ...] = ()) -> int:
    """The bytes of the regular files under root, for a tree that changes while it is read (a running
    database removes files; the point store prunes its snapshots): a file gone between listing and stat
    no longer counts. Top-level names in skip (a point store) are left out."""
    total = 0
    for top, dirs, files in os.walk(root):
        if top == str(root):
            dirs[:] = [d for d in dirs if d not in skip]
        for name in files:
            try:
                st = os.lstat(os.path.join(top, name))
            except FileNotFoundError:
                continue
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
    return total

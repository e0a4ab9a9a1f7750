"""Seeded random file-system workloads for the data-path tests: odd names, links, xattrs, sparse files."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

ODD_NAMES = [
    b"new\nline",
    b"bad-utf8-\xff\xfe",
    "caf\u00e9-nfc".encode(),
    "cafe\u0301-nfd".encode(),
    b"space name",
    b"-dash",
    b"x" * 200,
]


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
        with open(p, "wb") as f:
            f.write(rng.randbytes(rng.choice([0, 10, 4096, 5000, 70000])))


def mutate(root: Path, rng: random.Random, ops: int) -> list[tuple[str, bytes, bytes]]:
    """Apply ``ops`` random changes; return (kind, path, new path) for each, as a capture would report them."""
    b = os.fsencode(root)
    out: list[tuple[str, bytes, bytes]] = []
    for _ in range(ops):
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
        )
        parent = rng.choice(dirs)
        new = os.path.join(parent, _name(rng)) if parent else _name(rng)
        try:
            if kind == "create":
                with open(os.path.join(b, new), "wb") as f:
                    f.write(rng.randbytes(rng.randrange(0, 9000)))
                out.append(("path", new, b""))
            elif kind == "mkdir":
                os.mkdir(os.path.join(b, new))
                out.append(("path", new, b""))
            elif kind == "sparse":
                with open(os.path.join(b, new), "wb") as f:
                    f.seek(rng.randrange(1 << 16, 1 << 20))
                    f.write(b"tail")
                    f.truncate(f.tell() + rng.randrange(0, 1 << 16))
                out.append(("path", new, b""))
            elif not files:
                continue
            elif kind == "write":
                p = rng.choice(files)
                with open(os.path.join(b, p), "r+b") as f:
                    size = os.fstat(f.fileno()).st_size
                    f.seek(rng.randrange(0, size + 1))
                    f.write(rng.randbytes(rng.randrange(1, 6000)))
                out.append(("path", p, b""))
            elif kind == "truncate":
                p = rng.choice(files)
                os.truncate(os.path.join(b, p), rng.randrange(0, 8000))
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
                os.link(os.path.join(b, p), os.path.join(b, new))
                out.append(("path", new, b""))
                out.append(("path", p, b""))
            elif kind == "symlink":
                os.symlink(rng.choice([b"../nowhere", b"/etc/passwd", rng.choice(files)]), os.path.join(b, new))
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

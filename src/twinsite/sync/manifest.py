"""The replica's manifest: what a standby holds of a root, as the receiver lists it (``MANIFEST`` frame) and the
sender reads it back for the planner's comparison (docs/formats.md).

One JSON object per path, bytes as hex: ``p`` the relative path, ``m`` st_mode, ``u`` and ``g`` the owner,
``mt`` st_mtime_ns, then ``t`` a link's target, or ``s`` the size and ``x`` the xattrs ([key, value] pairs),
and ``i`` the inode number of a file with more than one name (:func:`shared`).
Sockets and device nodes are listed but never replicated (decoding leaves them out).

A listing is sent in pages (:class:`Listing`): at most ``PAGE_ENTRIES`` entries or about ``PAGE_BYTES`` of
JSON each, the sender asking for the next one when it has taken the last (docs/formats.md). Neither side holds
the whole listing as JSON: the receiver walks the tree as the pages are asked for, and a tree of any size fits
frames of at most 64 MiB (one page of a million files was 97 MB).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from twinsite.tree import Entry, kind_of, read_xattrs, walk

PAGE_ENTRIES = 20_000
PAGE_BYTES = 8 << 20


def encode(root: Path) -> list[dict[str, Any]]:
    """The whole manifest of the tree under ``root`` (for tools and tests: the receiver sends pages)."""
    return list(_items(root))


def _items(root: Path) -> Iterator[dict[str, Any]]:
    """The manifest's items, walking the tree under ``root`` as they are taken (none when there is no tree yet),
    without the point store a host keeps there while it is the active one (never the sender's to compare, nor
    to delete)."""
    if not root.exists():
        return
    base = os.fsencode(root)
    for rel, st in walk(root):  # (never the point store: tree.walk)
        full = base + b"/" + rel
        item: dict[str, Any] = {"p": rel.hex(), "m": st.st_mode, "u": st.st_uid, "g": st.st_gid, "mt": st.st_mtime_ns}
        if stat.S_ISLNK(st.st_mode):
            item["t"] = os.readlink(full).hex()
        else:
            item["s"] = st.st_size
            item["x"] = [[k.hex(), v.hex()] for k, v in read_xattrs(full)]
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                item["i"] = st.st_ino
        yield item


def _size(item: dict[str, Any]) -> int:
    """About the bytes of ``item`` as JSON (its hex strings, and room for the numbers and punctuation)."""
    return 120 + len(item["p"]) + len(item.get("t", "")) + sum(len(k) + len(v) + 8 for k, v in item.get("x", ()))


class Listing:
    """The manifest of the tree under ``root``, a page at a time (the tree is walked as pages are taken)."""

    def __init__(self, root: Path, *, entries: int = PAGE_ENTRIES, size: int = PAGE_BYTES) -> None:
        self._items = _items(root)
        self._next = next(self._items, None)
        self.entries, self.size = entries, size

    def page(self) -> tuple[list[dict[str, Any]], bool]:
        """The next page, and whether more follow."""
        out: list[dict[str, Any]] = []
        size = 0
        while self._next is not None and len(out) < self.entries and size < self.size:
            out.append(self._next)
            size += _size(self._next)
            self._next = next(self._items, None)
        return out, self._next is not None


def shared(items: list[dict[str, Any]]) -> dict[bytes, int]:
    """The files of a manifest that have more than one name on the replica: path -> inode number (names with
    the same number are one file there, which a change through one of them changes for all)."""
    return {bytes.fromhex(e["p"]): int(e["i"]) for e in items if "i" in e and kind_of(int(e["m"])) == "file"}


def decode(items: list[dict[str, Any]]) -> dict[bytes, Entry]:
    """The entries of a manifest, by relative path, as the planner compares them with the source's."""
    out: dict[bytes, Entry] = {}
    for e in items:
        mode = int(e["m"])
        kind = kind_of(mode)
        if kind == "other":
            continue
        file, link = kind == "file", kind == "link"
        out[bytes.fromhex(e["p"])] = Entry(
            kind,
            stat.S_IMODE(mode),
            int(e["u"]),
            int(e["g"]),
            int(e.get("s", 0)) if file else 0,
            int(e.get("mt", 0)) if file or link else 0,
            target=bytes.fromhex(e.get("t", "")),
            xattrs=tuple((bytes.fromhex(k), bytes.fromhex(v)) for k, v in e.get("x", [])) if kind != "link" else (),
        )
    return out

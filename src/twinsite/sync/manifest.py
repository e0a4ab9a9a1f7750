"""The replica's manifest: what a standby holds of a root, as the receiver lists it (``MANIFEST`` frame) and the
sender reads it back for the planner's comparison (docs/formats.md).

One JSON object per path, bytes as hex: ``p`` the relative path, ``m`` st_mode, ``u`` and ``g`` the owner,
``mt`` st_mtime_ns, then ``t`` a link's target, or ``s`` the size and ``x`` the xattrs ([key, value] pairs).
Sockets and device nodes are listed but never replicated (decoding leaves them out).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from twinsite.tree import Entry, kind_of, read_xattrs, walk


def encode(root: Path) -> list[dict[str, Any]]:
    """The manifest of the tree under ``root`` (empty when there is none yet), without the point store a host
    keeps there while it is the active one (never the sender's to compare, nor to delete)."""
    out: list[dict[str, Any]] = []
    if not root.exists():
        return out
    base = os.fsencode(root)
    for rel, st in walk(root):  # (never the point store: tree.walk)
        full = base + b"/" + rel
        item: dict[str, Any] = {"p": rel.hex(), "m": st.st_mode, "u": st.st_uid, "g": st.st_gid, "mt": st.st_mtime_ns}
        if stat.S_ISLNK(st.st_mode):
            item["t"] = os.readlink(full).hex()
        else:
            item["s"] = st.st_size
            item["x"] = [[k.hex(), v.hex()] for k, v in read_xattrs(full)]
        out.append(item)
    return out


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

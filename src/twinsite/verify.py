"""Comparing a root here with the same root on another host of the scenario, by the canonical tree digest's
entries (twinsite.tree): what ``twinsite verify`` reports and what a planned switchover's drain proves."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path
from typing import Any

from twinsite.config.scenario import Root, Scenario
from twinsite.transport.remote import twinsite_on
from twinsite.tree import Entry, differences, entries


def entries_json(listing: dict[bytes, Entry]) -> list[list[Any]]:
    """``twinsite digest --entries``: [path, kind, mode, uid, gid, size, content (a link's target), xattrs,
    mtime_ns, link group] per entry, bytes as hex."""
    return [
        [
            k.hex(),
            e.kind,
            e.mode,
            e.uid,
            e.gid,
            e.size,
            e.content,
            [[a.hex(), b.hex()] for a, b in e.xattrs],
            e.mtime_ns,
            e.link_group.hex(),
        ]
        for k, e in sorted(listing.items())
    ]


def entries_from_json(rows: list[list[Any]]) -> dict[bytes, Entry]:
    out = {}
    for path, kind, mode, uid, gid, size, content, xattrs, mtime_ns, group in rows:
        link = kind == "link"
        out[bytes.fromhex(path)] = Entry(
            kind,
            mode,
            uid,
            gid,
            size,
            mtime_ns,
            target=bytes.fromhex(content) if link else b"",
            xattrs=tuple((bytes.fromhex(a), bytes.fromhex(b)) for a, b in xattrs),
            content=content,
            link_group=bytes.fromhex(group),
        )
    return out


def remote_entries(s: Scenario, host: str, root: Root, *, timeout: float = 600) -> dict[bytes, Entry]:
    """The entries of ``root`` on ``host`` (reached as the scenario reaches its hosts), as it selects them."""
    body = twinsite_on(s.replication, host, ["digest", "--entries", root.path], timeout=timeout)
    listing = entries_from_json(body["entries"])
    return {k: e for k, e in listing.items() if root.selects_bytes(k)}


def compare(
    s: Scenario,
    root: Root,
    host: str,
    *,
    here: Path | None = None,
    timeout: float = 600,
    source_here: bool = True,
) -> tuple[dict[bytes, Entry], list[tuple[bytes, str]]]:
    """This host's entries of ``root`` (or of ``here``, a snapshot of it) and how they differ from ``host``'s
    (empty: equal). Both sides read their trees at the same time (hashing here while the peer hashes there).
    The source's side (this host's, or ``host``'s when not ``source_here``: a standby draining the active
    host) is read as a standby that drops privileged metadata holds it."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        theirs = pool.submit(remote_entries, s, host, root, timeout=timeout)
        local = entries(here or Path(root.path), root.selects_bytes)
        remote = theirs.result()
        if s.replication.privileged_metadata == "drop":  # (what the standby holds of it: replicated without)
            if source_here:
                local = {k: e.unprivileged() for k, e in local.items()}
            else:
                remote = {k: e.unprivileged() for k, e in remote.items()}
        return local, differences(local, remote)

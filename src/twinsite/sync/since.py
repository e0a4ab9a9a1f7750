"""What may have changed at the source since a moment: the paths a restarted agent compares when it takes its
kept picture of the replica (sync.index) instead of the replica's whole listing.

The kernel moves a path's ctime to the current time at every change of it: a write, a truncate, its mode,
owner or extended attributes, a link made or removed, the path renamed; and a directory's at every name made,
removed or renamed in it. Nothing in user space sets a ctime. So a path whose ctime is older than the stamp's
moment is as it was then, and:

* a file, link or fifo is compared when its ctime is not older than the moment;
* a directory whose ctime is not older may have lost or gained names: each name it has, and each name the
  picture holds directly below it, is compared;
* a directory that is not the one the picture knows at its path (another inode: made there, or moved in from
  elsewhere with its old ctimes below it) is taken as changed, and so is every directory below it that is not
  the picture's at its path: everything in them is compared;
* every other directory is only walked through.

The moment is taken :data:`MARGIN_NS` earlier: timestamps come from the kernel's coarse clock, and some
filesystems keep whole seconds only. A clock set back by more than that while the agent was down is not
seen (the periodic rescan, ``replication.rescan_interval``, compares everything and finds what was missed).
Only ``stat`` is paid per path, no read and no lookup: an unchanged tree of a million files is walked in
seconds.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator

from twinsite.sync.planner import Planner

#: how much earlier than the stamp's moment a ctime still counts as a change (see the module's docstring)
MARGIN_NS = 2_000_000_000


def changed_since(planner: Planner, since_ns: int) -> Iterator[bytes]:
    """The paths to compare, parents before children, for what may have changed at the planner's source since
    ``since_ns``; the planner's picture (``remote``, ``links``) is what it was then. Read as the
    paths are planned: the picture may change meanwhile (each directory's names are read from it just before
    they are needed)."""
    since = since_ns - MARGIN_NS
    stack: list[tuple[bytes, bool]] = [(b"", os.lstat(planner.base).st_ctime_ns >= since)]
    while stack:
        rel, changed = stack.pop()
        below: list[tuple[bytes, bool]] = []
        yield from _directory(planner, rel, changed, since, below)
        stack.extend(reversed(below))


def _directory(
    planner: Planner, rel: bytes, changed: bool, since: int, below: list[tuple[bytes, bool]]
) -> Iterator[bytes]:
    """What to compare in the directory ``rel`` (``changed``: its names may have); the directories to walk
    through next go to ``below`` (with whether their names may have changed)."""
    base = planner.base
    try:
        it = os.scandir(base + b"/" + rel if rel else base)
    except (FileNotFoundError, NotADirectoryError):
        return  # (gone since: its parent changed, and says so)
    with it:
        for e in it:
            child = rel + b"/" + e.name if rel else e.name  # (os.scandir of bytes: bytes names)
            try:
                st = e.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # (gone since capture began: capture says so)
            if _verdict(planner, child, st, changed, since, below):
                yield child
    if changed:  # names the picture holds that are gone (deleted there too when compared)
        for child in planner.remote.children(rel):
            if not os.path.lexists(base + b"/" + child):
                yield child


def _verdict(
    planner: Planner, rel: bytes, st: os.stat_result, changed: bool, since: int, below: list[tuple[bytes, bool]]
) -> bool:
    """Whether a path of a directory (``changed``: whose names may have) is compared; a directory to walk
    through goes to ``below``."""
    moved = st.st_ctime_ns >= since
    if not stat.S_ISDIR(st.st_mode) or st.st_dev != planner.dev:  # (another filesystem: never descended into)
        return changed or moved
    if not planner.select(rel):
        return False
    # another directory than the picture's at this path (made there, or moved in with its old times below
    # it): every name in it is compared, and so on down
    other = planner.links.get(planner.inode_key(st)) != rel
    below.append((rel, other or moved))
    return changed or moved or other

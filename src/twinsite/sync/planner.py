"""Turn "these paths may have changed" into the records that make the replica equal to the source.

The planner keeps what it knows the replica holds (``remote``: metadata per path, block signatures per
file) and compares the source's current state with it, path by path. It serves the initial sync and resync
(every path, with the replica's manifest as ``remote``), periodic scans and continuous capture (the dirty
paths inotify reported). Records come out in an order the receiver can apply: parents before children,
renames before the changes that follow them.

File times come from a coarse clock (a kernel tick; a second or two on some filesystems), so a file read
while it is being written can be written again with the same size and mtime: its next event would then find
"nothing changed" by metadata, and the write would be lost. A file whose mtime is within its settling time
of the moment it was read is therefore *unsettled*: the replica gets its mtime less 1 ns (so that no later
comparison, even by a restarted agent against the replica's listing, takes it for unchanged), and it is
read again once the time has passed (:meth:`Planner.settle`), which ships its true mtime.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import math
import os
import stat
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from twinsite.apply.paths import open_file_under
from twinsite.errors import ParentNotDirectoryError
from twinsite.journal.record import Op, Record
from twinsite.sync.ahead import ReadAhead
from twinsite.sync.index import InodeIndex, RemoteTree
from twinsite.sync.progress import SyncProgress
from twinsite.sync.signatures import DIGEST, block_signatures, data_ranges
from twinsite.tree import Entry, entry

#: what is known of a file's changed bytes (see Planner.plan_path)
Extents = tuple[()] | list[tuple[int, int]] | None

READ_CHUNK = 1 << 20  # a multiple of every supported block size
#: how long after its mtime a file may still be written with the same mtime: ten ticks of a 100 Hz clock
#: where the filesystem keeps sub-second times, two seconds where it keeps whole seconds (ext4 with small
#: inodes, FAT)
SETTLE_FINE_NS = 100_000_000
SETTLE_COARSE_NS = 2_000_000_000
_ZEROS = bytes(READ_CHUNK)


def all_zero(buf: bytes) -> bool:
    """Whether ``buf`` is all zero bytes (one memcmp; most data fails at its first byte)."""
    if not buf or buf[0] or buf[-1]:
        return not buf
    return buf == (_ZEROS if len(buf) == READ_CHUNK else bytes(len(buf)))


def local_entry(full: bytes, st: os.stat_result) -> Entry | None:
    """What the replica should hold for a source path, or None for a kind twinsite does not replicate."""
    e = entry(full, st)
    return None if e.kind == "other" else e  # sockets and device nodes: documented policy, counted in stats


def merged(extents: list[tuple[int, int]], size: int) -> list[tuple[int, int]]:
    """(start, end) of the ranges, sorted, overlapping and touching ones joined, cut at ``size``."""
    out: list[tuple[int, int]] = []
    for off, length in sorted(extents):
        end = min(off + length, size)
        if end <= off:
            continue
        if out and off <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((off, end))
    return out


#: Signatures asked of the replica at a time (8 MiB of them: 4 GiB of a file in 4 KiB blocks)
SIG_PAGE = 1 << 20
#: Signatures of shipped files kept to compare their next change with (a file's are kept up to FILE_SIGS bytes:
#: a 128 MiB file in 4 KiB blocks; the least recently used are let go past SIG_CACHE bytes in all)
FILE_SIGS = 256 << 10
SIG_CACHE = 32 << 20
_PER_FILE = 160  # what keeping one file's signatures costs besides them (its name, the dict's slot), about


class SigCache:
    """The replica's signatures of files this planner shipped (exactly the bytes it sent), so that the next
    change of a file is compared without asking the replica. Bounded: a file's are kept only up to
    ``FILE_SIGS`` bytes, and the least recently used are dropped past ``SIG_CACHE`` bytes in all, counting
    what each kept file costs besides (a file whose signatures are not known has them asked of the replica, a
    page at a time)."""

    def __init__(self, budget: int = SIG_CACHE) -> None:
        self._sigs: collections.OrderedDict[bytes, bytes] = collections.OrderedDict()
        self.size = 0
        self.budget = budget

    def __contains__(self, rel: bytes) -> bool:
        return rel in self._sigs

    def get(self, rel: bytes) -> bytes | None:
        sigs = self._sigs.get(rel)
        if sigs is not None:
            self._sigs.move_to_end(rel)
        return sigs

    def pop(self, rel: bytes) -> bytes | None:
        sigs = self._sigs.pop(rel, None)
        if sigs is not None:
            self.size -= _PER_FILE + len(rel) + len(sigs)
        return sigs

    def put(self, rel: bytes, sigs: bytes | None) -> None:
        """Keep ``sigs`` for ``rel`` (None, or too many to keep: forget what was kept)."""
        self.pop(rel)
        if sigs is None or len(sigs) > FILE_SIGS:
            return
        self._sigs[rel] = sigs
        self.size += _PER_FILE + len(rel) + len(sigs)
        while self.size > self.budget:
            name, old = self._sigs.popitem(last=False)
            self.size -= _PER_FILE + len(name) + len(old)


class RemoteSigs:
    """The replica's signatures of one file, asked for a page of ``SIG_PAGE`` blocks at a time as the file is
    read front to back (never all of a big file's at once)."""

    def __init__(self, fetch: Callable[[bytes, int, int], bytes], rel: bytes, known: bytes | None = None) -> None:
        self.fetch, self.rel = fetch, rel
        self.known = known is not None  # (all of them: those the planner kept, or none for a new file)
        self.first, self.asked, self.sigs = 0, 0, known or b""

    def blocks(self, first: int, n: int) -> bytes:
        """The signatures of blocks ``first`` to ``first + n - 1`` (fewer where the replica's file ends)."""
        if not self.known and not self.first <= first <= first + n <= self.first + self.asked:
            self.first, self.asked = first, max(SIG_PAGE, n)
            self.sigs = self.fetch(self.rel, first, self.asked)
        at = (first - self.first) * DIGEST.size
        return self.sigs[at : at + n * DIGEST.size]


@dataclass
class PlanStats:
    files: int = 0
    bytes_sent: int = 0
    skipped_special: int = 0
    skipped_mounts: int = 0  # directories that are another filesystem inside the root: never descended into
    vanished: int = 0


class Planner:
    def __init__(
        self,
        root: Path,
        *,
        block_size: int,
        next_seq: Callable[[], int],
        now: Callable[[], float],
        fetch_sigs: Callable[[bytes, int, int], bytes],
        select: Callable[[bytes], bool] | None = None,
        checksum: bool = False,
        drop_privileged: bool = False,
    ) -> None:
        self.root = root
        self.drop_privileged = drop_privileged  # (the standby drops it anyway: the sender's picture matches)
        self.base = os.fsencode(root)
        self.dev = _device(self.base)
        self.one_device = False  # (read_from)
        self.block = block_size
        self.next_seq = next_seq
        self.now = now
        self.fetch_sigs = fetch_sigs
        self.select = select or (lambda _p: True)
        self._remote = RemoteTree()
        self.links = InodeIndex(self._remote.db)  # source inode of every shipped file -> a path the replica has it at
        self._parent_ok: bytes | None = None  # the parent whose ancestors and itself the replica has as directories
        self.sigs = SigCache()
        self.key_of: dict[bytes, tuple[int, int]] = {}  # hard-linked paths shipped -> their source inode
        self._regroup: set[tuple[int, int]] = set()  # link groups that lost a name: compare the others
        self.stats = PlanStats()
        self.ahead = ReadAhead(self.base)  # (a walk of the whole root reads its files ahead of itself)
        self.progress: SyncProgress | None = None  # during plan_all: what is planned, and acknowledged
        self.last_seq = 0  # of the newest record made
        self._counted = 0  # bytes of the file being planned already counted in progress
        self._wrote_to = 0  # where the last WRITE of the file being compared ended
        #: sync_method checksum: a file the planner has not shipped itself is compared by block signatures
        #: even when its size and mtime match (metadata mode trusts them).
        self.checksum = checksum
        self.live = True  # reading the live root (False: a read-only snapshot, where nothing is written)
        #: files read while they could still be written within their mtime -> (when they were read, mtime) (ns)
        self.unsettled: dict[bytes, tuple[int, int]] = {}
        self.settle_ns: int | None = None  # (tests: the settling time of every file, instead of by its mtime)

    def _rec(self, op: Op, path: bytes, **kw: object) -> Record:
        self.last_seq = self.next_seq()
        return Record(seq=self.last_seq, ts=self.now(), op=op, path=path, **kw)  # type: ignore[arg-type]

    # -- the replica's side of the picture -------------------------------------------------------------
    @property
    def remote(self) -> RemoteTree:
        return self._remote

    @remote.setter
    def remote(self, entries: Mapping[bytes, Entry]) -> None:
        """A new picture of the replica (its listing): what was known of inodes goes with the old one."""
        self._remote = entries if isinstance(entries, RemoteTree) else RemoteTree(entries)
        self.links = InodeIndex(self._remote.db)
        self._parent_ok = None

    def forget(self, path: bytes) -> None:
        self._parent_ok = None
        if not self.remote.holds(path):
            return
        for p in self.remote.drop(path):
            self.sigs.pop(p)
            self.unsettled.pop(p, None)
            key = self.key_of.pop(p, None)
            if key is not None:
                self._regroup.add(key)
        for k, _ in self.links.under(path):
            del self.links[k]
            # the inode may live on under another name the replica has: keep finding it by that name
            alt = next((p for p, kk in self.key_of.items() if kk == k and p in self.remote), None)
            if alt is not None:
                self.links[k] = alt

    def move(self, old: bytes, new: bytes) -> None:
        self.forget(new)
        self._parent_ok = None
        for p, q in self.remote.move(old, new):
            if p in self.sigs:
                self.sigs.put(q, self.sigs.pop(p))
            if p in self.key_of:
                self.key_of[q] = self.key_of.pop(p)
            if p in self.unsettled:
                self.unsettled[q] = self.unsettled.pop(p)
        for k, v in self.links.under(old):
            self.links[k] = new + v[len(old) :]

    # -- planning --------------------------------------------------------------------------------------
    def plan_deletions(self) -> Iterator[Record]:
        """DELETE for what the replica has and the source no longer has (topmost paths only)."""
        deleted = False
        for p in self.remote:  # (sorted)
            if deleted and p not in self.remote:
                continue  # removed with a parent
            try:
                os.lstat(self.base + b"/" + p)
                if self.select(p):
                    continue
            except (FileNotFoundError, NotADirectoryError):  # gone, or a parent is a file now: gone here too
                pass
            yield self._rec(Op.DELETE, p)
            self.forget(p)
            deleted = True

    def plan_rename(self, old: bytes, new: bytes) -> Iterator[Record]:
        """A rename seen at the source: shipped as a rename when the replica has the old path."""
        if self.remote.holds(old) and self.select(new):
            yield from self._ensure_parents(new)
            yield self._rec(Op.RENAME, old, path2=new)
            self.move(old, new)
            self._implicit_parents(new)
        else:
            yield from self.plan_path(old)  # moved out of what is replicated: deleted on the replica
            yield from self.plan_path(new, recursive=True)

    def read_from(self, base: Path) -> None:
        """Read the source's state from ``base`` from now on (a consistency point: a read-only snapshot of the
        root). Inodes keep their numbers in a snapshot but not their device, so they are told apart by number
        only from then on."""
        self.base = os.fsencode(base)
        self.dev = _device(self.base)
        self.one_device = True
        self.live = False
        self.unsettled.clear()

    def _settling(self, mtime_ns: int) -> int:
        if self.settle_ns is not None:
            return self.settle_ns
        return SETTLE_COARSE_NS if mtime_ns % 1_000_000_000 == 0 else SETTLE_FINE_NS

    def settles_in(self) -> float:
        """Seconds until the next unsettled file is due to be read again (infinity: none is)."""
        now = time.time_ns()
        due = [read_at + self._settling(mtime) - now for read_at, mtime in self.unsettled.values()]
        return max(0.0, min(due) / 1e9) if due else math.inf

    def settle(self) -> Iterator[Record]:
        """Read again the unsettled files whose settling time is over (see the module's docstring)."""
        now = time.time_ns()
        due = [p for p, (read_at, mtime) in self.unsettled.items() if now - read_at >= self._settling(mtime)]
        for p in sorted(due):
            self.unsettled.pop(p, None)
            yield from self.plan_path(p)

    def plan_path(
        self, rel: bytes, *, recursive: bool = False, extents: Extents = (), inode: tuple[int, int] | None = None
    ) -> Iterator[Record]:
        """Records that bring ``rel`` (and with ``recursive``, everything under it) to the source's state.

        ``extents`` says what is known of a file's content: ``()`` nothing (its size and time decide whether it
        is compared), ``None`` that it must be compared whole, a list of (offset, length) that exactly these
        bytes changed (a consistency point's change list): only they are read and shipped. ``inode``: the
        (device, inode) of the file capture saw behind ``rel`` with other names (sync.changes): the other names
        known for it are compared too, even when ``rel`` is gone."""
        key = self.key_of.get(rel)
        if key is not None:
            self._regroup.add(key)
        yield from self._plan_path(rel, recursive=recursive, extents=extents)
        if inode is not None:
            self._regroup.add((0 if self.one_device else inode[0], inode[1]))
        # A change through one name of a hard-linked file (its attributes, or the name going away) is
        # reported for that name only: compare the group's other names too.
        seen: set[tuple[int, int]] = set()
        while self._regroup - seen:
            group = (self._regroup - seen).pop()
            seen.add(group)
            self._regroup.discard(group)
            names = {p for p, k in self.key_of.items() if k == group}
            indexed = self.links.get(group)
            if indexed is not None:  # (a file shipped with one name: the index knows it by that name)
                names.add(indexed)
            for other in sorted(names - {rel}):
                yield from self._plan_path(other, recursive=False)

    def _plan_path(self, rel: bytes, *, recursive: bool, extents: Extents = ()) -> Iterator[Record]:
        if not self.select(rel):
            return
        full = self.base + b"/" + rel
        try:
            st = os.lstat(full)
        except (FileNotFoundError, NotADirectoryError):  # gone, or a parent is no longer a directory
            if self.remote.holds(rel):  # (a rename may have made only its parents)
                yield self._rec(Op.DELETE, rel)
                self.forget(rel)
            return
        yield from self._ensure_parents(rel)
        try:
            yield from self._plan_one(rel, full, st, extents)
        except (FileNotFoundError, NotADirectoryError):
            # changed under our feet (deleted, replaced): its own event comes next and plans what is there
            self.stats.vanished += 1
            return
        if recursive and stat.S_ISDIR(st.st_mode) and not self._other_filesystem(st):
            try:
                names = sorted(os.listdir(full))
            except (FileNotFoundError, NotADirectoryError):
                return
            self.ahead.directory(rel, names)
            for name in names:
                yield from self._plan_path(rel + b"/" + name, recursive=True)
                self.ahead.passed()

    def inode_key(self, st: os.stat_result) -> tuple[int, int]:
        """How a source inode is known in ``links``: (device, inode), the device 0 when reading a snapshot."""
        return (0 if self.one_device else st.st_dev, st.st_ino)

    def _other_filesystem(self, st: os.stat_result) -> bool:
        """Whether a directory is another filesystem mounted inside the root (or a nested btrfs subvolume): it is
        replicated as a directory, never descended into (as ``rsync -x``)."""
        if st.st_dev == self.dev or self.dev < 0:
            return False
        self.stats.skipped_mounts += 1
        return True

    def plan_all(self) -> Iterator[Record]:
        """Everything under the root (initial sync and resync), deletions first."""
        self.dev = _device(self.base)
        yield from self.plan_deletions()
        try:
            names = sorted(os.listdir(self.base))
        except FileNotFoundError:
            return
        self.ahead.directory(b"", names)
        for name in names:
            yield from self.plan_path(name, recursive=True)
            self.ahead.passed()

    def _implicit_parents(self, rel: bytes) -> None:
        """The receiver creates missing parents of a rename target (mode 0755, root): remember them, so that
        a later comparison corrects or deletes them."""
        parts = rel.split(b"/")[:-1]
        for i in range(1, len(parts) + 1):
            self.remote.setdefault(b"/".join(parts[:i]), Entry("dir", 0o755, 0, 0))

    def _ensure_parents(self, rel: bytes) -> Iterator[Record]:
        parent = rel.rpartition(b"/")[0]
        if not parent or parent == self._parent_ok:  # (the files of one directory, one after the other)
            return
        parts = rel.split(b"/")[:-1]
        for i in range(1, len(parts) + 1):
            parent = b"/".join(parts[:i])
            got = self.remote.get(parent)
            if got is None or got.kind != "dir":
                try:
                    st = os.lstat(self.base + b"/" + parent)
                except (FileNotFoundError, NotADirectoryError):
                    return
                yield from self._plan_one(parent, self.base + b"/" + parent, st)
                got = self.remote.get(parent)
        self._parent_ok = parent if got is not None and got.kind == "dir" else None

    def _plan_one(self, rel: bytes, full: bytes, st: os.stat_result, extents: Extents = ()) -> Iterator[Record]:
        want = local_entry(full, st)
        if want is None:
            self.stats.skipped_special += 1
            return
        if self.drop_privileged:
            want = want.unprivileged()
        have = self.remote.get(rel)
        if want.kind == "dir":
            if have is None or have.kind != "dir":
                self.forget(rel)
                yield self._rec(Op.MKDIR, rel, meta=want.meta())
            elif have != want:
                yield self._rec(Op.SETATTR, rel, meta=want.meta())
            self.remote[rel] = want
            self.links[self.inode_key(st)] = rel  # (which directory it is: sync.since)
        elif want.kind == "file":
            self._counted = 0
            yield from self._plan_file(rel, full, st, want, have, extents)
            if self.progress is not None:
                self.progress.planned(self.last_seq, max(0, st.st_size - self._counted), files=1)
        elif want.kind == "link":
            yield from self._plan_link(rel, want, have)
        elif have != want:
            self.forget(rel)
            yield self._rec(Op.MKFIFO, rel, meta=want.meta())
            self.remote[rel] = want

    def _plan_link(self, rel: bytes, want: Entry, have: Entry | None) -> Iterator[Record]:
        if have == want:
            return
        if have is not None and have.kind == "link" and have.target == want.target:
            yield self._rec(Op.SETATTR, rel, meta=want.meta())  # only its owner or mtime: set on the link itself
        else:
            self.forget(rel)
            yield self._rec(Op.SYMLINK, rel, path2=want.target, meta=want.meta())
        self.remote[rel] = want

    def _plan_file(
        self, rel: bytes, full: bytes, st: os.stat_result, want: Entry, have: Entry | None, extents: Extents = ()
    ) -> Iterator[Record]:
        key = self.inode_key(st)
        other_st: os.stat_result | None = None
        other = b""
        if st.st_nlink > 1 and self._linked_elsewhere(key, rel, st.st_ino):
            other = self.links[key]
            self.key_of[other] = key
            # the content and attributes of the shared inode are compared through its first name
            try:
                other_st = os.lstat(self.base + b"/" + other)
            except (FileNotFoundError, NotADirectoryError):
                other_st = None  # raced with a rename or delete of that name: compare this one by itself
            if other_st is not None:  # (content known changed: compared whole through that name)
                yield from self._plan_one(other, self.base + b"/" + other, other_st, None if extents else ())
        if other_st is not None and other in self.remote:
            if not self.remote.same_inode(rel, other):
                self.forget(rel)
                yield self._rec(Op.HARDLINK, rel, path2=other)
            self.remote.link(rel, other)
            self.sigs.put(rel, self.sigs.get(other) or b"")
            self.key_of[rel] = key
            return
        if have is not None and have.kind == "file" and self._stale_link(rel, key, st):
            self.forget(rel)  # (shipped as a new file: CREATE replaces the name, the other names keep their inode)
            have = None
        same = extents == () and have is not None and have.kind == "file" and have == want
        if same and not (self.checksum and rel not in self.sigs):
            self._index_inode(key, rel, st, known=True)  # the replica has it as it is (by metadata): nothing to read
            return
        try:
            fd = open_file_under(self.base, rel, st)  # (the planned file, reached without following a link)
        except (OSError, ParentNotDirectoryError):
            self.stats.vanished += 1  # gone or replaced since the event: a later event says what it is now
            return
        try:
            st = os.fstat(fd)
            want = want.sized(st.st_size, st.st_mtime_ns)
            yield from self._compare(rel, fd, st, want, have, extents)
        finally:
            os.close(fd)
        self._index_inode(key, rel, st)

    def _stale_link(self, rel: bytes, key: tuple[int, int], st: os.stat_result) -> bool:
        """Whether the replica's file at ``rel`` is one inode with other names there while the source's ``rel``
        is another file now (replaced by a new inode, or no longer linked): written in place, it would change
        those other names on the replica too. Known by the inode ``rel`` was shipped as; not known (a picture
        read from the replica's listing), by the source: a file with one name must not share one there."""
        shipped = self.key_of.get(rel)
        if shipped == key or (shipped is None and st.st_nlink > 1):
            return False  # (linked at the source too: the names' group is compared as hard links)
        return self.remote.shared(rel)

    def _index_inode(self, key: tuple[int, int], rel: bytes, st: os.stat_result, *, known: bool = False) -> None:
        """Every file's inode is indexed, not only linked ones: linking a new name to a file changes no
        event-visible property of the old name (IN_ATTRIB for the link count goes to the inode only), so the
        new name must find the old one by inode. (``known``: a file compared before, most likely indexed: read
        first; a new one is indexed at once.)"""
        cur = (self.links.get(key) if known else None) or self.links.add(key, rel)
        if cur != rel and (cur not in self.remote or not self._is_inode(cur, key[1])):
            self.links[key] = rel  # (a stale entry: that inode number now belongs to this file)
        if st.st_nlink > 1:
            self.key_of[rel] = key

    def _linked_elsewhere(self, key: tuple[int, int], rel: bytes, ino: int) -> bool:
        """Whether the replica already has this inode at another path that still is this inode at the source."""
        other = self.links.get(key)
        if other is None or other == rel or other not in self.remote:
            return False
        return self._is_inode(other, ino)

    def _is_inode(self, rel: bytes, ino: int) -> bool:
        try:
            return os.lstat(self.base + b"/" + rel).st_ino == ino
        except (FileNotFoundError, NotADirectoryError):
            return False

    def _compare(
        self, rel: bytes, fd: int, st: os.stat_result, want: Entry, have: Entry | None, extents: Extents
    ) -> Iterator[Record]:
        """The records for an open file's content and attributes, by what is known of its changes."""
        unchanged = have is not None and have.kind == "file" and have == want
        if isinstance(extents, list) and have is not None and have.kind == "file":
            yield from self._plan_extents(rel, fd, st.st_size, want, have, extents)
        elif extents is None or not unchanged or (self.checksum and rel not in self.sigs):
            yield from self._plan_content(rel, fd, st.st_size, want, have, whole=extents is None)

    def _plan_extents(
        self, rel: bytes, fd: int, size: int, want: Entry, have: Entry, extents: list[tuple[int, int]]
    ) -> Iterator[Record]:
        """Ship exactly the changed ranges of a file the replica has (read from a consistency point, they are
        the bytes of that instant), then its size and attributes. The signatures known for it are dropped: a
        later comparison asks the replica."""
        self.stats.files += 1
        for start, end in merged(extents, size):
            pos = start
            while pos < end:
                buf = os.pread(fd, min(READ_CHUNK, end - pos), pos)
                if not buf:
                    break
                yield self._rec(Op.WRITE, rel, offset=pos, data=buf)
                self.stats.bytes_sent += len(buf)
                pos += len(buf)
        if have.size != size:
            yield self._rec(Op.TRUNCATE, rel, offset=size)
        if have != want or extents:
            yield self._rec(Op.SETATTR, rel, meta=want.meta())
        self.remote[rel] = want
        self.sigs.pop(rel)

    def _plan_content(
        self, rel: bytes, fd: int, size: int, want: Entry, have: Entry | None, *, whole: bool = False
    ) -> Iterator[Record]:
        """Ship what differs, reading the file once: the signatures kept are those of exactly the bytes
        shipped, so a file changing while it is read never leaves the planner believing the replica holds
        bytes it does not (a later event re-plans it against what was really sent)."""
        self.stats.files += 1
        read_at, first = time.time_ns(), self.last_seq
        new = have is None or have.kind != "file"
        if new:
            if have is not None or self.remote.has_under(rel):  # (what a planner holds has its parents)
                self.forget(rel)
            yield self._rec(Op.CREATE, rel, meta=want.meta(mtime_ns=0))
            remote_sigs = RemoteSigs(self.fetch_sigs, rel, b"")
        elif (
            have is not None
            and have.size == want.size
            and have.mtime_ns == want.mtime_ns
            and not (self.checksum and rel not in self.sigs)
            and not whole
        ):
            yield self._rec(Op.SETATTR, rel, meta=want.meta())  # same content by metadata; attributes differ
            self.remote[rel] = want
            return
        else:
            remote_sigs = RemoteSigs(self.fetch_sigs, rel, self.sigs.get(rel))
        sigs: list[bytes] | None = [] if -(-size // self.block) * DIGEST.size <= FILE_SIGS else None
        self._wrote_to = 0
        pos = yield from self._differing(rel, fd, size, remote_sigs, sigs, new=new)
        if self._wrote_to != pos if new or have is None else have.size != pos:
            # exact size: shrinks, or extends a sparse tail (a new file whose last bytes were written has it)
            yield self._rec(Op.TRUNCATE, rel, offset=pos)
        want = self._as_read(rel, want.sized(pos, want.mtime_ns), read_at)
        self.sigs.put(rel, None if sigs is None else b"".join(sigs))
        if self.last_seq == first and have == want:
            return  # read again and found as shipped (an unsettled file): nothing to say, the entry kept as it is
        yield self._rec(Op.SETATTR, rel, meta=want.meta())
        self.remote[rel] = want

    def _differing(
        self, rel: bytes, fd: int, size: int, remote_sigs: RemoteSigs, sigs: list[bytes] | None, *, new: bool
    ) -> Generator[Record, None, int]:
        """WRITE records for the blocks of the file that differ from the replica's, read once (their signatures
        added to ``sigs``); returns how much was read (less than ``size`` if it shrank meanwhile)."""
        pos = 0
        data = _Extents(fd, size)  # (a sparse file's holes are not read: their blocks are zeros)
        if size > READ_CHUNK:
            # read front to back: a larger read-ahead for this descriptor only (measured on the lab: a cold
            # 512 MiB file synced in 4.3-4.9 s instead of 5.1-5.3 s); production's own reads are not touched
            with contextlib.suppress(OSError):  # (advice: a filesystem that takes none reads as before)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        while pos < size:
            n = min(READ_CHUNK, size - pos)
            if data.any_in(pos, pos + n):
                buf = os.pread(fd, n, pos)
                if not buf:
                    break  # shrank while being read: ship what is there now
                local = block_signatures(buf, self.block)
            else:
                buf, local = None, zero_signatures(n, self.block)
            if sigs is not None:
                sigs.append(local)
            remote = remote_sigs.blocks(pos // self.block, len(local) // DIGEST.size)
            zeros = new and (buf is None or all_zero(buf))  # a new file's hole (or zeros): TRUNCATE makes them
            if not zeros and local != remote:
                yield from self._changed_blocks(rel, pos, bytes(n) if buf is None else buf, local, remote)
            n = n if buf is None else len(buf)
            pos += n
            if self.progress is not None:
                self.progress.planned(self.last_seq, n)
                self._counted += n
        return pos

    def _as_read(self, rel: bytes, want: Entry, read_at: int) -> Entry:
        """What the replica is told of a file read at ``read_at``: its mtime less 1 ns while it is unsettled
        (see the module's docstring)."""
        if self.live and abs(read_at - want.mtime_ns) < self._settling(want.mtime_ns):
            self.unsettled[rel] = (read_at, want.mtime_ns)
            return want.sized(want.size, want.mtime_ns - 1)
        self.unsettled.pop(rel, None)
        return want

    def _changed_blocks(self, rel: bytes, pos: int, buf: bytes, local: bytes, remote: bytes) -> Iterator[Record]:
        """WRITE records for the runs of blocks of ``buf`` whose signature differs from the replica's."""
        n = len(local) // DIGEST.size
        view = memoryview(buf)
        start = -1
        for i in range(n + 1):
            same = i == n or local[i * 8 : i * 8 + 8] == remote[i * 8 : i * 8 + 8]
            if not same and start < 0:
                start = i
            elif same and start >= 0:
                whole = start == 0 and i * self.block >= len(buf)  # (a new file's chunk: all of it, not copied)
                data = buf if whole else bytes(view[start * self.block : i * self.block])
                yield self._rec(Op.WRITE, rel, offset=pos + start * self.block, data=data)
                self._wrote_to = pos + start * self.block + len(data)
                self.stats.bytes_sent += len(data)
                if self.progress is not None:
                    self.progress.bytes_sent += len(data)
                start = -1


@functools.lru_cache(maxsize=8)
def zero_signatures(n: int, block: int) -> bytes:
    """The signatures of ``n`` zero bytes (a hole)."""
    return block_signatures(bytes(n), block)


class _Extents:
    """Where a file being read holds data (the filesystem's list, asked as the file is read front to back)."""

    def __init__(self, fd: int, size: int) -> None:
        self._ranges = data_ranges(fd, 0, size)
        self._cur = next(self._ranges, None)

    def any_in(self, start: int, end: int) -> bool:
        """Whether ``[start, end)`` may hold data (asked for ranges further and further on)."""
        while self._cur is not None and self._cur[1] <= start:
            self._cur = next(self._ranges, None)
        return self._cur is not None and self._cur[0] < end


def _device(base: bytes) -> int:
    """The device of the root's filesystem (-1 while there is no root yet: nothing is compared then)."""
    try:
        return os.stat(base).st_dev
    except FileNotFoundError:
        return -1

"""The planner's picture of the replica, kept on disk: what the replica holds by path, and which source inode it
holds at which path.

A million files held as Python objects cost about 690 MiB in the agent (an ``Entry``, its path, two dicts and
a set slot per file, and an inode index entry for every file), so the picture lives in one SQLite database per
planner instead: its page cache is bounded (:data:`CACHE_KIB`), the rest lives in the filesystem's page cache,
and the agent's memory no longer grows with the tree. SQLite was chosen over a hand-made sorted file or a
key-value store because it is in the standard library, keeps the paths sorted as bytes (a subtree is a range
of keys, parents before children, with no index of each directory's children to keep), updates in place (a
rename of a directory moves a range), and commits atomically.

A sender's picture is kept in its state directory (``index.sqlite``, write-ahead log, no fsync of its own) and
committed with a :class:`Stamp` each time the planner has journaled everything capture saw up to a moment: the
seq the picture is in step with, and the time from which the source must be looked at again. A restarted agent
whose journal ends at that seq, and whose standby is at it or can be brought to it from the journal, takes the
picture as it is and compares only what changed at the source since that time (sync.since) instead of asking
the standby for its whole listing. A crash between a journal append and the commit that follows it leaves a
stamp behind the journal, and the picture is not taken: the next start lists the replica, as every start did
before. Tests and one-off comparisons use a private temporary database (no path), which SQLite unlinks as it
opens it.

About 80 bytes of disk per path; every lookup is a B-tree search (a few microseconds), which the planner pays
once or twice per file it compares.
"""

from __future__ import annotations

import json
import os
import sqlite3
import struct
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from dataclasses import asdict, dataclass
from pathlib import Path

from twinsite.durable import fsync_dir
from twinsite.errors import TwinsiteError
from twinsite.tree import Entry, Xattrs

#: The database's page cache (KiB): what the picture costs in memory, whatever the tree's size
CACHE_KIB = 8192
PAGE_ROWS = 1000  # rows read at a time when a range is walked or moved
_KINDS = ("dir", "file", "link", "fifo", "other")
_HEAD = struct.Struct("<BHIIqqH")  # kind, mode, uid, gid, size, mtime_ns, len(target)
_LEN = struct.Struct("<I")
_TOP = 1 << 63


def _signed(n: int) -> int:
    """An unsigned 64-bit number (an inode, a device) as SQLite's signed integer."""
    return n - (1 << 64) if n >= _TOP else n


def _unsigned(n: int) -> int:
    return n + (1 << 64) if n < 0 else n


def _pack(e: Entry) -> bytes:
    head = _HEAD.pack(_KINDS.index(e.kind), e.mode, e.uid, e.gid, e.size, e.mtime_ns, len(e.target))
    if not (e.xattrs or e.content or e.link_group):
        return head + e.target
    parts = [head, e.target, _LEN.pack(len(e.xattrs))]
    for k, v in e.xattrs:
        parts += [_LEN.pack(len(k)), k, _LEN.pack(len(v)), v]
    content = e.content.encode()
    parts += [_LEN.pack(len(content)), content, _LEN.pack(len(e.link_group)), e.link_group]
    return b"".join(parts)


def _unpack(b: bytes) -> Entry:
    kind, mode, uid, gid, size, mtime_ns, tlen = _HEAD.unpack_from(b)
    at = _HEAD.size
    target = b[at : at + tlen]
    at += tlen
    if at == len(b):
        return Entry(_KINDS[kind], mode, uid, gid, size, mtime_ns, target)

    def take() -> bytes:
        nonlocal at
        (n,) = _LEN.unpack_from(b, at)
        at += _LEN.size + n
        return b[at - n : at]

    (count,) = _LEN.unpack_from(b, at)
    at += _LEN.size
    xattrs: Xattrs = tuple((take(), take()) for _ in range(count))
    content, link_group = take().decode(), take()
    return Entry(_KINDS[kind], mode, uid, gid, size, mtime_ns, target, xattrs, content, link_group)


#: a path's entry, its inode group kept (the replica changed that inode's content or attributes, not which it is)
_SET = "INSERT INTO entry (p, v) VALUES (?, ?) ON CONFLICT (p) DO UPDATE SET v = excluded.v"


def _range(path: bytes) -> tuple[bytes, bytes]:
    """The keys strictly below ``path``: greater than ``path/`` and less than ``path0`` ('0' follows '/')."""
    return path + b"/", path + b"0"


def failure(exc: sqlite3.Error, where: Path | None = None) -> TwinsiteError:
    """What a failure of the index means to a user (most likely: its filesystem is full)."""
    place = str(where.parent) if where else os.environ.get("SQLITE_TMPDIR") or os.environ.get("TMPDIR") or "/var/tmp"
    what = "an SQLite database in the sender's state directory" if where else "a temporary SQLite database"
    full = isinstance(exc, sqlite3.OperationalError) and "full" in str(exc)
    if full:
        hint = "free space there (about 80 bytes per replicated path)"
        hint += "" if where else ", or set SQLITE_TMPDIR in the agent's environment to a directory with room"
    else:
        hint = "the next attempt starts a new one from the standby's listing; see the agent's log"
    return TwinsiteError(f"the planner's picture of the replica ({what}) failed: {exc}", where=place, hint=hint)


SCHEMA = 2  # (a picture kept by another layout is never taken: its stamp says another schema)


def connect(path: Path | None = None, *, bulk: bool = False) -> sqlite3.Connection:
    """The planner's tables in a private temporary database (unlinked by SQLite as it is opened), or in the
    database file ``path`` (made when missing). ``bulk``: a new file filled by a sync, without a journal until
    its first commit (RemoteTree.commit), as fast as a temporary database."""
    db = sqlite3.connect(path or "", isolation_level=None, check_same_thread=False)
    if path is None or bulk:
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
    else:
        _journaled(db)
    db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    db.execute(
        "CREATE TABLE IF NOT EXISTS entry (p BLOB PRIMARY KEY, v BLOB NOT NULL, g INTEGER NOT NULL DEFAULT 0) "
        "WITHOUT ROWID"
    )
    db.execute(
        "CREATE TABLE IF NOT EXISTS inode (d INTEGER, i INTEGER, p BLOB NOT NULL, PRIMARY KEY (d, i)) WITHOUT ROWID"
    )
    db.execute("CREATE INDEX IF NOT EXISTS inode_path ON inode (p)")
    db.execute("CREATE INDEX IF NOT EXISTS entry_group ON entry (g) WHERE g != 0")  # (only names of shared inodes)
    db.execute(
        "CREATE TABLE IF NOT EXISTS listed (i INTEGER PRIMARY KEY, g INTEGER NOT NULL)"
    )  # replica inode -> group
    db.execute("CREATE TABLE IF NOT EXISTS stamp (k INTEGER PRIMARY KEY CHECK (k = 0), v TEXT NOT NULL)")
    db.execute("BEGIN")  # (changes are committed only with a stamp, or never: RemoteTree.commit)
    return db


def _journaled(db: sqlite3.Connection) -> None:
    """Atomic commits from now on: a write-ahead log, or a rollback journal where the filesystem cannot have
    one (SQLite then keeps the mode it had, and says which). Durable enough: a picture lost to a power cut
    only makes the next start ask for the listing."""
    if db.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower() != "wal":
        mode = db.execute("PRAGMA journal_mode=DELETE").fetchone()[0].lower()
        if mode != "delete":
            raise sqlite3.OperationalError(f"the picture cannot have a journal (SQLite keeps journal_mode={mode})")
    db.execute("PRAGMA synchronous=NORMAL")


@dataclass(frozen=True)
class Stamp:
    """What a committed picture is in step with: the replica holds exactly it once every record up to ``seq`` is
    applied, and every change the source may have had since ``since_ns`` (the source's clock, ctime) is still to
    be compared. ``identity`` names what the picture is of (the root, its selection, the standby, the epoch,
    the root's device and inode): a picture of anything else is never taken."""

    seq: int
    since_ns: int
    identity: str
    schema: int = SCHEMA

    def dumps(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def loads(cls, text: str) -> Stamp | None:
        try:
            got = json.loads(text)
            stamp = cls(
                seq=int(got["seq"]),
                since_ns=int(got["since_ns"]),
                identity=str(got["identity"]),
                schema=int(got["schema"]),
            )
        except (ValueError, KeyError, TypeError):
            return None
        return stamp if stamp.schema == SCHEMA else None


class RemoteTree(MutableMapping[bytes, Entry]):
    """What the replica holds, by relative path (on disk, see the module's docstring).

    Names of one inode on the replica are told apart from equal entries by a group number: :meth:`link` puts a
    name in another's group (the planner made it a hard link), :meth:`same_inode` asks. Setting an entry keeps
    the group of the name (the replica changed the inode's content or attributes, not which inode it is)."""

    def __init__(
        self,
        entries: Mapping[bytes, Entry] | Iterable[tuple[bytes, Entry]] = (),
        *,
        path: Path | None = None,
        bulk: bool = False,
    ) -> None:
        self.path = path
        self.bulk = bulk and path is not None
        self.db = connect(path, bulk=self.bulk)
        self._groups = int(self.db.execute("SELECT coalesce(max(g), 0) FROM entry").fetchone()[0])
        self.add(entries.items() if isinstance(entries, Mapping) else entries)

    @classmethod
    def fresh(cls, path: Path) -> RemoteTree:
        """An empty picture kept at ``path`` (whatever was there before is removed first), filled without a
        journal until its first commit: a crash before then leaves a file without a stamp, or unreadable,
        and either is never taken."""
        for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            p.unlink(missing_ok=True)
        return cls(path=path, bulk=True)

    @classmethod
    def kept(cls, path: Path) -> tuple[RemoteTree, Stamp] | None:
        """The picture committed at ``path`` and its stamp, or None (none there, or none committed whole)."""
        if not path.exists():
            return None
        tree = cls(path=path)
        row = tree.db.execute("SELECT v FROM stamp WHERE k = 0").fetchone()
        stamp = Stamp.loads(row[0]) if row else None
        if stamp is None:
            tree.close()
            return None
        return tree, stamp

    def commit(self, stamp: Stamp | None) -> None:
        """Make what changed since the last commit durable together with ``stamp`` (None: a picture that must
        not be taken as it is, e.g. while a sync fills it). A picture filled without a journal is written and
        fsynced whole first, then given its write-ahead log, and only then its stamp."""
        if self.bulk and self.path is not None:
            self.db.execute("COMMIT")
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            fsync_dir(self.path.parent)
            _journaled(self.db)
            self.db.execute("BEGIN")
            self.bulk = False
        if stamp is None:
            self.db.execute("DELETE FROM stamp")
        else:
            self.db.execute("INSERT OR REPLACE INTO stamp VALUES (0, ?)", (stamp.dumps(),))
        self.db.execute("COMMIT")
        self.db.execute("BEGIN")

    def close(self) -> None:
        """Let the database go, uncommitted changes with it."""
        self.db.close()

    def add(self, items: Iterable[tuple[bytes, Entry]]) -> None:
        """Hold these entries (many at a time: a listing's)."""
        batch: list[tuple[bytes, bytes]] = []
        for k, v in items:
            batch.append((k, _pack(v)))
            if len(batch) >= PAGE_ROWS * 10:
                self.db.executemany(_SET, batch)
                batch.clear()
        self.db.executemany(_SET, batch)

    def __getitem__(self, key: bytes) -> Entry:
        got = self.get(key)
        if got is None:
            raise KeyError(key)
        return got

    def get(self, key: bytes, default: Entry | None = None) -> Entry | None:  # type: ignore[override]
        row = self.db.execute("SELECT v FROM entry WHERE p = ?", (key,)).fetchone()
        return default if row is None else _unpack(row[0])

    def __contains__(self, key: object) -> bool:
        return self.db.execute("SELECT 1 FROM entry WHERE p = ?", (key,)).fetchone() is not None

    def __iter__(self) -> Iterator[bytes]:
        """Every path, sorted (read a page at a time: paths may be deleted meanwhile)."""
        last = b""
        query = "SELECT p FROM entry WHERE p > ? ORDER BY p LIMIT ?"
        while rows := self.db.execute(query, (last, PAGE_ROWS)).fetchall():
            for (p,) in rows:
                yield p
            last = rows[-1][0]

    def __len__(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM entry").fetchone()[0])

    def __setitem__(self, key: bytes, value: Entry) -> None:
        self.db.execute(_SET, (key, _pack(value)))

    def __delitem__(self, key: bytes) -> None:
        if self.db.execute("DELETE FROM entry WHERE p = ?", (key,)).rowcount == 0:
            raise KeyError(key)

    def link(self, name: bytes, other: bytes) -> None:
        """``name`` is now a hard link to ``other`` on the replica (which it must hold)."""
        row = self.db.execute("SELECT v, g FROM entry WHERE p = ?", (other,)).fetchone()
        if row is None:
            raise KeyError(other)
        v, group = row
        if not group:
            self._groups += 1
            group = self._groups
            self.db.execute("UPDATE entry SET g = ? WHERE p = ?", (group, other))
        self.db.execute("INSERT OR REPLACE INTO entry VALUES (?, ?, ?)", (name, v, group))

    def group_by(self, inodes: Mapping[bytes, int]) -> None:
        """Put the names the replica's listing showed as one inode (path -> the replica's inode number) in one
        group each (a listing's pages one after the other: the inodes seen are kept here, not in memory)."""
        for path, ino in inodes.items():
            row = self.db.execute("SELECT g FROM listed WHERE i = ?", (_signed(ino),)).fetchone()
            if row is None:
                self._groups += 1
                row = (self._groups,)
                self.db.execute("INSERT INTO listed VALUES (?, ?)", (_signed(ino), self._groups))
            self.db.execute("UPDATE entry SET g = ? WHERE p = ?", (row[0], path))

    def shared(self, name: bytes) -> bool:
        """Whether the replica's inode at ``name`` has other names there (as far as this picture knows)."""
        if not self._groups:  # (no hard link made nor listed: the common case, no lookup)
            return False
        row = self.db.execute("SELECT g FROM entry WHERE p = ?", (name,)).fetchone()
        if row is None or not row[0]:
            return False
        query = "SELECT 1 FROM entry WHERE g = ? AND g != 0 AND p != ? LIMIT 1"
        return self.db.execute(query, (row[0], name)).fetchone() is not None

    def same_inode(self, name: bytes, other: bytes) -> bool:
        """Whether ``name`` and ``other`` are one file on the replica (the planner linked them, or its listing
        said so)."""
        rows = self.db.execute("SELECT g FROM entry WHERE p IN (?, ?)", (name, other)).fetchall()
        return len(rows) == 2 and rows[0][0] != 0 and rows[0][0] == rows[1][0]

    def holds(self, path: bytes) -> bool:
        """Whether ``path`` or anything below it is held."""
        lo, hi = _range(path)
        query = "SELECT 1 FROM entry WHERE p = ? OR (p > ? AND p < ?) LIMIT 1"
        return self.db.execute(query, (path, lo, hi)).fetchone() is not None

    def children(self, path: bytes) -> Iterator[bytes]:
        """The paths directly below ``path`` (b"": the root) that are held, or that something held is below; each
        subtree is skipped over, not read."""
        lo, hi = _range(path) if path else (b"", None)
        after = "SELECT p FROM entry WHERE p > ? AND (?2 IS NULL OR p < ?2) ORDER BY p LIMIT 1"
        past = "SELECT p FROM entry WHERE p >= ? AND (?2 IS NULL OR p < ?2) ORDER BY p LIMIT 1"
        row = self.db.execute(after, (lo, hi)).fetchone()
        while row is not None:
            p = bytes(row[0])
            cut = p.find(b"/", len(lo))
            if cut < 0:  # a child: the next row is its first descendant, a sibling, or nothing
                yield p
                row = self.db.execute(after, (p, hi)).fetchone()
                continue
            child = p[:cut]  # the first row below a child (seen before, unless the child itself is not held)
            if child not in self:
                yield child
            row = self.db.execute(past, (child + b"0", hi)).fetchone()

    def has_under(self, path: bytes) -> bool:
        """Whether anything is held below ``path``."""
        return self.db.execute("SELECT 1 FROM entry WHERE p > ? AND p < ? LIMIT 1", _range(path)).fetchone() is not None

    def _below(self, path: bytes) -> Iterator[list[tuple[bytes, bytes, int]]]:
        """The rows below ``path`` a page at a time, sorted (parents before children)."""
        lo, hi = _range(path)
        while rows := self.db.execute(
            "SELECT p, v, g FROM entry WHERE p > ? AND p < ? ORDER BY p LIMIT ?", (lo, hi, PAGE_ROWS)
        ).fetchall():
            yield rows
            lo = rows[-1][0]

    def subtree(self, path: bytes) -> list[bytes]:
        """``path`` (if held) and every path below it, parents before children."""
        out = [path] if path in self else []
        for rows in self._below(path):
            out.extend(p for p, _, _ in rows)
        return out

    def drop(self, path: bytes) -> Iterator[bytes]:
        """Forget ``path`` and everything below it, yielding each path as it goes (parents first)."""
        if self.db.execute("DELETE FROM entry WHERE p = ?", (path,)).rowcount:
            yield path
        for rows in self._below(path):
            self.db.executemany("DELETE FROM entry WHERE p = ?", [(p,) for p, _, _ in rows])
            for p, _, _ in rows:
                yield p

    def move(self, old: bytes, new: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Hold what was at ``old`` (and below) at ``new`` (which holds nothing), yielding (old, new) of each path."""
        row = self.db.execute("SELECT v, g FROM entry WHERE p = ?", (old,)).fetchone()
        if row is not None:
            self.db.execute("DELETE FROM entry WHERE p = ?", (old,))
            self.db.execute("INSERT OR REPLACE INTO entry VALUES (?, ?, ?)", (new, *row))
            yield old, new
        cut = len(old)
        for rows in self._below(old):
            self.db.executemany("DELETE FROM entry WHERE p = ?", [(p,) for p, _, _ in rows])
            self.db.executemany(
                "INSERT OR REPLACE INTO entry VALUES (?, ?, ?)", [(new + p[cut:], v, g) for p, v, g in rows]
            )
            for p, _, _ in rows:
                yield p, new + p[cut:]


class InodeIndex:
    """A path the replica holds each shipped source inode at: (device, inode) -> path, and by path (in the same
    database as the :class:`RemoteTree` it goes with)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def get(self, key: tuple[int, int]) -> bytes | None:
        d, i = _signed(key[0]), _signed(key[1])
        row = self.db.execute("SELECT p FROM inode WHERE d = ? AND i = ?", (d, i)).fetchone()
        return None if row is None else bytes(row[0])

    def __contains__(self, key: tuple[int, int]) -> bool:
        return self.get(key) is not None

    def __getitem__(self, key: tuple[int, int]) -> bytes:
        got = self.get(key)
        if got is None:
            raise KeyError(key)
        return got

    def __setitem__(self, key: tuple[int, int], path: bytes) -> None:
        self.db.execute("INSERT OR REPLACE INTO inode VALUES (?, ?, ?)", (_signed(key[0]), _signed(key[1]), path))

    def __delitem__(self, key: tuple[int, int]) -> None:
        self.db.execute("DELETE FROM inode WHERE d = ? AND i = ?", (_signed(key[0]), _signed(key[1])))

    def __len__(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM inode").fetchone()[0])

    def add(self, key: tuple[int, int], path: bytes) -> bytes:
        """Index ``key`` at ``path`` if it is not indexed yet; the path it is indexed at now (one statement)."""
        d, i = _signed(key[0]), _signed(key[1])
        query = "INSERT INTO inode VALUES (?, ?, ?) ON CONFLICT (d, i) DO UPDATE SET p = p RETURNING p"
        return bytes(self.db.execute(query, (d, i, path)).fetchone()[0])

    def at(self, path: bytes) -> list[tuple[tuple[int, int], bytes]]:
        """The inodes indexed at ``path`` (more than one where an inode number was reused)."""
        rows = self.db.execute("SELECT d, i FROM inode WHERE p = ?", (path,)).fetchall()
        return [((_unsigned(d), _unsigned(i)), path) for d, i in rows]

    def under(self, path: bytes) -> Iterator[tuple[tuple[int, int], bytes]]:
        """The inodes indexed at ``path`` or below it, a page at a time (they may be changed meanwhile)."""
        yield from self.at(path)
        lo, hi = _range(path)
        d = i = -(1 << 63)
        while rows := self.db.execute(
            "SELECT d, i, p FROM inode WHERE (p, d, i) > (?, ?, ?) AND p < ? ORDER BY p, d, i LIMIT ?",
            (lo, d, i, hi, PAGE_ROWS),
        ).fetchall():
            for d, i, p in rows:
                yield (_unsigned(d), _unsigned(i)), bytes(p)
            lo, d, i = rows[-1][2], rows[-1][0], rows[-1][1]

"""The rewind log on the standby: for every applied batch, its records and their undo (docs/formats.md).

A log directory holds ``<first seq, 20 digits>.rwl`` segment files of *groups*, appended in seq order:

``magic | first_seq u64 | last_seq u64 | ts_first f64 | ts_last f64 | forward_len u64 | undo_len u64 |
xxh3_64 u64 | forward blob | undo blob``

(little-endian). A blob is records in the journal's record encoding (TWR1). The forward blob is the batch as
applied; the undo blob is what :func:`twinsite.cdp.undo.capture` reads before applying it. The magic is
``b"TWG2"``, or ``b"TWP2"`` for a group whose last record is a POINT (the end of a consistency point:
engine.receiver applies a point's last records as a group of their own), so that listing points reads headers
only; the checksum covers both blobs and then the 52 bytes before it. Groups of the first version (``b"TWG1"``,
``b"TWGP"``: the checksum covers the header first) are still read.

A group is streamed to the segment, never held whole: its header goes first with the magic ``b"TWGO"`` (open),
then the records, in pieces, then the header is written again in place, complete, and the segment fsynced
*before* the batch it undoes is applied. Nothing reads a whole group either: records are read from the file
piece by piece, so a group may be of any size (the undo of a file of any size truncated or deleted).

On open, an incomplete group at the end of the newest segment (a crash mid-append: an open header, a group
that ends past the file, or damage with no whole group after it) is dropped; corruption anywhere else is an
error. Retention removes whole segments, oldest first, by age (``retention`` seconds after the segment's
last append, by the standby's own clock: its mtime, never the sender's record times) and by total size.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import xxhash

from twinsite.durable import fsync_dir
from twinsite.errors import JournalError
from twinsite.journal.record import MAX_DATA, MAX_PATH, MAX_XATTRS, Op, Record, RecordError, decode

MAGIC = b"TWG2"
MAGIC_POINT = b"TWP2"  # (a group that ends a consistency point)
MAGIC_OPEN = b"TWGO"  # a group being appended (its header is written again, complete, at the end)
V1 = (b"TWG1", b"TWGP")  # the first version: checksum of the header, then the blobs
KNOWN = (MAGIC, MAGIC_POINT, *V1)
POINTS = (MAGIC_POINT, b"TWGP")
HEAD = struct.Struct("<4sQQddQQ")
TAIL = struct.Struct("<Q")
MAX_BLOB = 1 << 56  # a sanity bound on a header's lengths (nothing is allocated by them)
PIECE = 4 << 20  # bytes read or written at a time
WHOLE = 16 << 20  # a group up to this size is read whole and checked before any of its records is used


@dataclass(frozen=True)
class NewGroup:
    """A batch and its undo, to append: the undo is iterated once, while the group is written."""

    forward: Sequence[Record]
    undo: Iterable[Record]

    @property
    def first_seq(self) -> int:
        return self.forward[0].seq

    @property
    def last_seq(self) -> int:
        return self.forward[-1].seq

    @property
    def point(self) -> bool:
        return self.forward[-1].op == Op.POINT


def make_group(forward: Sequence[Record], undo: Iterable[Record]) -> NewGroup:
    """The group of ``forward`` with its undo (a list, or :func:`twinsite.cdp.undo.capture`'s lazy undo, which
    reads the replica while the group is appended)."""
    return NewGroup(forward, undo)


@dataclass(frozen=True)
class Head:
    """A group's header: what listing points and retention need, read without the blobs."""

    first_seq: int
    last_seq: int
    ts_first: float
    ts_last: float
    point: bool = False


@dataclass(frozen=True)
class Group:
    """A group in the log: its header and where its blobs are. Their records are read from the segment when
    asked for, a piece at a time (a group can be larger than memory)."""

    first_seq: int
    last_seq: int
    ts_first: float
    ts_last: float
    file: Path
    start: int  # the byte of the segment where the group begins
    forward_len: int
    undo_len: int
    point: bool = False
    version: int = 2

    @property
    def segment(self) -> str:
        return self.file.name

    @property
    def size(self) -> int:
        return HEAD.size + TAIL.size + self.forward_len + self.undo_len

    @property
    def head(self) -> Head:
        return Head(self.first_seq, self.last_seq, self.ts_first, self.ts_last, self.point)

    def forward_records(self) -> Iterator[Record]:
        """The batch as applied, oldest first."""
        return self._records(forward=True)

    def undo_records(self) -> Iterator[Record]:
        """Its undo, in the order it is applied."""
        return self._records(forward=False)

    def encode(self) -> bytes:
        """The group's bytes as stored (whole, in memory: for tools and tests)."""
        with _opened(self.file) as fd:
            return _pread(fd, self.start, self.size)

    def _records(self, *, forward: bool) -> Iterator[Record]:
        """One blob's records. A small group is read whole and checked before any record is used; a larger one
        piece by piece: each record is checked (its own checksum) as it is read, the group's checksum once all
        of it is read."""
        where = f"{self.file} group at byte {self.start}"
        body = self.start + HEAD.size + TAIL.size
        at, length = (body, self.forward_len) if forward else (body + self.forward_len, self.undo_len)
        with _opened(self.file) as fd:
            header = _pread(fd, self.start, HEAD.size + TAIL.size)
            if not _same(header, self):
                raise JournalError("a rewind-log group changed while it was read (retention?)", where=where)
            if self.size <= WHOLE:
                blobs = _pread(fd, body, self.forward_len + self.undo_len)
                h = _hasher(self, header)
                h.update(blobs)
                _compare(self, h, header, where)
                yield from _decode_all(blobs[at - body : at - body + length], where)
                return
            h = _hasher(self, header)
            if not forward:
                _hash_region(fd, body, self.forward_len, h, where)
            yield from _read_records(fd, at, length, h, where)
            if forward:
                _hash_region(fd, at + length, self.undo_len, h, where)
            _compare(self, h, header, where)


@contextmanager
def _opened(path: Path) -> Iterator[int]:
    """A segment opened for reading (one removed meanwhile, by retention, is a JournalError)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise JournalError("a rewind-log segment was removed while it was read (retention)", where=str(path)) from exc
    try:
        yield fd
    finally:
        os.close(fd)


def _pread(fd: int, at: int, n: int) -> bytes:
    """Up to ``n`` bytes at ``at`` (fewer at the end of the file)."""
    parts: list[bytes] = []
    while n > 0:
        got = os.pread(fd, min(n, PIECE), at)
        if not got:
            break
        parts.append(got)
        at += len(got)
        n -= len(got)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _header(raw: bytes, pos: int, file: Path) -> Group:
    """The group whose header (and checksum) is ``raw``, at byte ``pos``; a bad header raises RecordError."""
    magic, first, last, ts0, ts1, flen, ulen = HEAD.unpack_from(raw)
    if magic not in KNOWN or flen > MAX_BLOB or ulen > MAX_BLOB or last < first:
        raise RecordError(f"bad group header at byte {pos}")
    return Group(first, last, ts0, ts1, file, pos, flen, ulen, magic in POINTS, 1 if magic in V1 else 2)


def _same(header: bytes, g: Group) -> bool:
    """Whether ``header`` is still ``g``'s."""
    try:
        return len(header) == HEAD.size + TAIL.size and _header(header, g.start, g.file) == g
    except RecordError:
        return False


def _hasher(g: Group, header: bytes) -> Any:
    """The group's checksum, to be fed its blobs: a first-version group's covers its header first."""
    h = xxhash.xxh3_64()
    if g.version == 1:
        h.update(header[: HEAD.size])
    return h


def _compare(g: Group, h: Any, header: bytes, where: str) -> None:
    if g.version != 1:
        h.update(header[: HEAD.size])
    if h.intdigest() != TAIL.unpack_from(header, HEAD.size)[0]:
        raise JournalError(f"corrupt rewind log: checksum mismatch (seq {g.first_seq}-{g.last_seq})", where=where)


def _decode_all(blob: bytes, where: str) -> Iterator[Record]:
    pos = 0
    while pos < len(blob):
        try:
            got = decode(blob, pos)
        except RecordError as exc:
            raise JournalError(f"corrupt rewind log: {exc}", where=where) from exc
        if got is None:
            raise JournalError("corrupt rewind log: a group ends inside a record", where=where)
        rec, pos = got
        yield rec


def _read_records(fd: int, at: int, length: int, h: Any, where: str) -> Iterator[Record]:
    """The records of the ``length`` bytes at ``at``, read a piece at a time (``h`` is fed every byte)."""
    buf = bytearray()
    pos, end = 0, at + length
    while True:
        try:
            got = decode(buf, pos) if pos < len(buf) else None
        except RecordError as exc:
            raise JournalError(f"corrupt rewind log: {exc}", where=where) from exc
        if got is not None:
            rec, pos = got
            yield rec
            continue
        if at >= end:
            if pos != len(buf):
                raise JournalError("corrupt rewind log: a group ends inside a record", where=where)
            return
        del buf[:pos]
        pos = 0
        piece = os.pread(fd, min(PIECE, end - at), at)
        if not piece:
            raise JournalError("corrupt rewind log: the segment ends inside a group", where=where)
        h.update(piece)
        buf += piece
        at += len(piece)


def _hash_region(fd: int, at: int, length: int, h: Any, where: str) -> None:
    end = at + length
    while at < end:
        piece = os.pread(fd, min(PIECE, end - at), at)
        if not piece:
            raise JournalError("corrupt rewind log: the segment ends inside a group", where=where)
        h.update(piece)
        at += len(piece)


def _whole_at(fd: int, pos: int, size: int, file: Path) -> Group | None:
    """The group at ``pos`` when it is whole and its checksum holds (read a piece at a time); None when the file
    ends inside it or it is still open (an append that did not finish); RecordError when it is damaged."""
    if size - pos < HEAD.size + TAIL.size:
        return None
    raw = _pread(fd, pos, HEAD.size + TAIL.size)
    if raw[:4] == MAGIC_OPEN:
        return None
    g = _header(raw, pos, file)
    if pos + g.size > size:
        return None
    h = _hasher(g, raw)
    try:
        _hash_region(fd, pos + HEAD.size + TAIL.size, g.forward_len + g.undo_len, h, str(file))
        _compare(g, h, raw, str(file))
    except JournalError as exc:
        raise RecordError(f"checksum mismatch in the group at byte {pos} (seq {g.first_seq}-{g.last_seq})") from exc
    return g


def _valid_after(fd: int, pos: int, size: int, file: Path) -> bool:
    """Whether a whole group starts anywhere after ``pos`` (damage with groups after it is not a torn tail)."""
    at = pos + 1
    while at < size:
        window = os.pread(fd, PIECE + 3, at)  # (a magic across the boundary is found in this window)
        hits: list[int] = []
        for magic in KNOWN:
            i = window.find(magic)
            while 0 <= i < PIECE:
                hits.append(i)
                i = window.find(magic, i + 1)
        for i in sorted(hits):
            try:
                if _whole_at(fd, at + i, size, file) is not None:
                    return True
            except RecordError:
                pass
        at += PIECE
    return False


def _encoded(rec: Record) -> bytes:
    """A record as the log's reader takes it back: one it would refuse is refused here, before it is written
    (decoded again: the reader's own checks, whatever they are)."""
    xattrs = 4 + sum(6 + len(k) + len(v) for k, v in rec.meta.xattrs) if rec.meta else 0
    where = os.fsdecode(rec.path)
    if len(rec.path) > MAX_PATH or len(rec.path2) > MAX_PATH or len(rec.data) > MAX_DATA or xattrs > MAX_XATTRS:
        raise JournalError(
            f"a record of seq {rec.seq} is too large for the rewind log (path {len(rec.path)}, path2 "
            f"{len(rec.path2)}, data {len(rec.data)}, xattrs {xattrs} bytes)",
            where=where,
        )
    data = rec.encode()
    try:
        back = decode(data)
    except RecordError as exc:
        raise JournalError(
            f"a record of seq {rec.seq} could not be read back from the rewind log: {exc}", where=where
        ) from exc
    if back is None or back[1] != len(data):
        raise JournalError(f"a record of seq {rec.seq} could not be read back from the rewind log", where=where)
    return data


def _pwrite(fd: int, data: bytes | bytearray, at: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, at)
        view, at = view[n:], at + n


class _Pieces:
    """Encoded records written from byte ``at`` on, a piece of about ``PIECE`` bytes at a time, and hashed."""

    def __init__(self, fd: int, at: int) -> None:
        self.fd, self.at = fd, at
        self.size = 0  # bytes put so far
        self.hash = xxhash.xxh3_64()
        self._buf = bytearray()

    def put(self, records: Iterable[Record]) -> None:
        for rec in records:
            data = _encoded(rec)
            self._buf += data
            self.size += len(data)
            if len(self._buf) >= PIECE:
                self.flush()

    def flush(self) -> None:
        _pwrite(self.fd, self._buf, self.at)
        self.hash.update(self._buf)
        self.at += len(self._buf)
        self._buf.clear()


def _write_group(fd: int, start: int, group: NewGroup) -> int:
    """Write ``group`` at ``start``: an open header, the records a piece at a time (the undo read as it goes),
    then the header again, complete (not fsynced). Returns where the group ends."""
    first, last = group.forward[0], group.forward[-1]
    _pwrite(fd, HEAD.pack(MAGIC_OPEN, first.seq, last.seq, first.ts, last.ts, 0, 0) + TAIL.pack(0), start)
    out = _Pieces(fd, start + HEAD.size + TAIL.size)
    out.put(group.forward)
    flen = out.size
    out.put(group.undo)
    out.flush()
    magic = MAGIC_POINT if group.point else MAGIC
    head = HEAD.pack(magic, first.seq, last.seq, first.ts, last.ts, flen, out.size - flen)
    out.hash.update(head)
    _pwrite(fd, head + TAIL.pack(out.hash.intdigest()), start)
    return out.at


class RewindLog:
    """One scenario root's rewind log. Single writer (the receiver, or a rewind when it is paused)."""

    def __init__(self, directory: Path, *, segment_size: int = 64 << 20, readonly: bool = False) -> None:
        """``readonly``: for reading headers beside a running receiver (``twinsite status``, the metrics):
        nothing is created or recovered, since cutting a torn tail could cut the group being appended."""
        self.dir = directory
        self.segment_size = segment_size
        self.dropped_tail = 0
        self._fd: int | None = None
        self._size = 0
        self._broken = False
        self.last_seq = 0
        if not readonly:
            directory.mkdir(parents=True, exist_ok=True)
            self._recover()

    def segments(self) -> list[Path]:
        return sorted(p for p in self.dir.iterdir() if p.suffix == ".rwl" and p.stem.isdigit())

    def _whole(self, seg: Path) -> tuple[Group | None, int, int]:
        """The newest segment's last whole group, where its whole groups end, and its size: every group is read
        (a piece at a time) and checked. Damage with a whole group after it is corruption, not a torn append."""
        with _opened(seg) as fd:
            size = os.fstat(fd).st_size
            pos, last = 0, None
            while pos < size:
                try:
                    got = _whole_at(fd, pos, size, seg)
                except RecordError as exc:
                    if _valid_after(fd, pos, size, seg):
                        raise JournalError(f"corrupt rewind log: {exc}", where=str(seg)) from exc
                    break  # damage at the very end of the newest segment: a torn append
                if got is None:
                    break
                last, pos = got, pos + got.size
            return last, pos, size

    def _recover(self) -> None:
        segs = self.segments()
        if not segs:
            return
        last, end, size = self._whole(segs[-1])
        if end < size:
            self.dropped_tail = size - end
            with open(segs[-1], "r+b") as f:
                f.truncate(end)
                os.fsync(f.fileno())
        if last is not None:
            self.last_seq = last.last_seq
        else:
            older = list(self.heads(segs[:-1]))
            self.last_seq = older[-1].last_seq if older else 0

    def append(self, group: NewGroup) -> None:
        """Append and fsync: durable on return (before the batch it undoes is applied). The undo is read while it
        is written, a piece at a time; an append that fails leaves nothing of the group behind."""
        if self._broken:
            raise JournalError(
                "an append to the rewind log failed and could not be cut off",
                where=str(self.dir),
                hint="open the log again (restart the receiver): the unfinished group is dropped",
            )
        if group.first_seq <= self.last_seq:
            raise JournalError(f"rewind-log group {group.first_seq} is not after {self.last_seq}", where=str(self.dir))
        if self._fd is None or self._size >= self.segment_size:
            self._fd = self._open(group.first_seq)
        fd, start = self._fd, self._size
        try:
            end = _write_group(fd, start, group)
            os.fsync(fd)
        except BaseException:
            self._cut_back(fd, start)
            raise
        self._size = end
        self.last_seq = group.last_seq

    def _cut_back(self, fd: int, start: int) -> None:
        try:
            os.ftruncate(fd, start)
        except OSError:
            self.close()
            self._broken = True

    def _open(self, first_seq: int) -> int:
        self.close()
        segs = self.segments()
        if segs and os.path.getsize(segs[-1]) < self.segment_size:
            path = segs[-1]  # continue the newest segment after a restart
        else:
            path = self.dir / f"{first_seq:020d}.rwl"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)  # (written at explicit offsets)
        self._size = os.fstat(fd).st_size
        fsync_dir(self.dir)
        return fd

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    # -- reading ------------------------------------------------------------------------------------
    def groups(self) -> Iterator[Group]:
        """Every group, oldest first (headers: the records are read, and checked, when asked for)."""
        every = self.segments()
        for seg in every:
            yield from self._spans(seg, seg == every[-1])

    def heads(self, segments: list[Path] | None = None) -> Iterator[Head]:
        """The groups' headers, oldest first, reading only headers (a group's checksum covers its blobs and
        is checked when the group itself is read). A group still being appended at the end ends the list."""
        every = self.segments()
        newest = every[-1] if every else None
        for seg in every if segments is None else segments:
            for g in self._spans(seg, seg == newest):
                yield g.head

    def _spans(self, seg: Path, newest: bool) -> Iterator[Group]:
        """The groups in ``seg`` (their headers only)."""
        with _opened(seg) as fd:
            size = os.fstat(fd).st_size
            pos = 0
            while pos + HEAD.size <= size:
                raw = _pread(fd, pos, HEAD.size + TAIL.size)
                if raw[:4] == MAGIC_OPEN and newest:
                    break  # being appended
                try:
                    g = _header(raw, pos, seg)
                except RecordError as exc:
                    raise JournalError(f"corrupt rewind log: {exc}", where=str(seg)) from exc
                if pos + g.size > size:
                    break
                yield g
                pos += g.size
            if pos != size and not newest:
                raise JournalError(f"corrupt rewind log: it ends inside a group at byte {pos}", where=str(seg))

    def drop_above(self, seq: int) -> None:
        """Remove the groups after ``seq``, durably: a replica made live at point ``seq`` (a switchover to a
        rewound replica, or to its last complete consistency point) never goes forward to them again.
        ``seq`` must end a group (every point does)."""
        if self.last_seq <= seq:
            return
        heads = list(self.heads())
        if seq >= heads[0].first_seq and seq not in {h.last_seq for h in heads}:
            raise JournalError(f"the rewind log has no group ending at seq {seq}", where=str(self.dir))
        self.close()
        segs = self.segments()
        self.last_seq = 0  # (unless a group at or below seq is kept)
        for seg in reversed(segs):
            spans = list(self._spans(seg, seg == segs[-1]))
            if all(g.first_seq > seq for g in spans):
                seg.unlink()
                continue
            cut = next((g.start for g in spans if g.first_seq > seq), os.path.getsize(seg))
            with open(seg, "r+b") as f:
                f.truncate(cut)
                os.fsync(f.fileno())
            self.last_seq = seq
            break
        fsync_dir(self.dir)

    def newest_first(self, above: int) -> Iterator[Group]:
        """The groups with ``last_seq > above``, newest first (the headers of one segment at a time)."""
        segs = self.segments()
        for seg in reversed(segs):
            groups = list(self._spans(seg, seg == segs[-1]))
            yield from (g for g in reversed(groups) if g.last_seq > above)
            if groups and groups[0].first_seq <= above + 1:
                return

    def disk_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.segments())

    # -- retention ----------------------------------------------------------------------------------
    def prune(self, *, max_age: float | None, max_size: int | None, keep_above: int | None = None) -> int:
        """Remove whole segments, oldest first, older than ``max_age`` seconds or while the log is larger
        than ``max_size``; never the newest segment, nor one holding groups above ``keep_above`` (a rewind
        in progress needs them). Returns the bytes freed. A segment's age runs from its last append, by this
        host's clock (its mtime): the records' own times are the sender's, which does not decide how long the
        standby keeps its history."""
        segs = self.segments()
        total = sum(p.stat().st_size for p in segs)
        freed = 0
        now = time.time()
        for seg in segs[:-1]:
            heads = list(self.heads([seg]))
            newest = heads[-1] if heads else None
            too_old = max_age is not None and now - seg.stat().st_mtime > max_age
            too_big = max_size is not None and total - freed > max_size
            pinned = keep_above is not None and newest is not None and newest.last_seq > keep_above
            if not (too_old or too_big) or pinned:
                break
            freed += seg.stat().st_size
            seg.unlink()
        if freed:
            fsync_dir(self.dir)
        return freed

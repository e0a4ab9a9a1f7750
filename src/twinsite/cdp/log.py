"""The rewind log on the standby: for every applied batch, its records and their undo (docs/formats.md).

A log directory holds ``<first seq, 20 digits>.rwl`` segment files of *groups*, appended in seq order:

``b"TWG1" | first_seq u64 | last_seq u64 | ts_first f64 | ts_last f64 | forward_len u64 | undo_len u64 |
xxh3_64 of everything before it and both blobs u64 | forward blob | undo blob``

(little-endian); a group whose last record is a POINT (the end of a consistency point: engine.receiver
applies a point's last records as a group of their own) has the magic ``b"TWGP"`` instead, so that listing
points reads headers only. A blob is records in the journal's record encoding (TWR1). The forward blob is the batch
as applied; the undo blob is what :func:`twinsite.cdp.undo.capture` read before applying it. A group is
appended and fsynced *before* its batch is applied. On open, an incomplete group at the end of the newest
segment (a crash mid-append) is dropped; corruption anywhere else is an error. Retention removes whole
segments, oldest first, by age (``retention`` seconds after their newest group) and by total size.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import xxhash

from twinsite.durable import fsync_dir
from twinsite.errors import JournalError
from twinsite.journal.record import Op, Record, RecordError, decode

MAGIC = b"TWG1"
MAGIC_POINT = b"TWGP"  # (a group that ends a consistency point)
HEAD = struct.Struct("<4sQQddQQ")
TAIL = struct.Struct("<Q")
MAX_BLOB = 1 << 32


@dataclass(frozen=True)
class Group:
    first_seq: int
    last_seq: int
    ts_first: float
    ts_last: float
    forward: bytes
    undo: bytes
    segment: str = ""
    point: bool = False  # its last record is a POINT

    def encode(self) -> bytes:
        head = HEAD.pack(
            MAGIC_POINT if self.point else MAGIC,
            self.first_seq,
            self.last_seq,
            self.ts_first,
            self.ts_last,
            len(self.forward),
            len(self.undo),
        )
        h = xxhash.xxh3_64()
        for part in (head, self.forward, self.undo):
            h.update(part)
        return head + TAIL.pack(h.intdigest()) + self.forward + self.undo

    @property
    def size(self) -> int:
        return HEAD.size + TAIL.size + len(self.forward) + len(self.undo)

    def forward_records(self) -> list[Record]:
        return _records(self.forward)

    def undo_records(self) -> list[Record]:
        return _records(self.undo)


@dataclass(frozen=True)
class Head:
    """A group's header: what listing points and retention need, read without the blobs."""

    first_seq: int
    last_seq: int
    ts_first: float
    ts_last: float
    point: bool = False


def _records(blob: bytes) -> list[Record]:
    out: list[Record] = []
    pos = 0
    while pos < len(blob):
        got = decode(blob, pos)
        if got is None:
            raise JournalError("a rewind-log group ends inside a record")
        rec, pos = got
        out.append(rec)
    return out


def make_group(forward: list[Record], undo: list[Record]) -> Group:
    return Group(
        forward[0].seq,
        forward[-1].seq,
        forward[0].ts,
        forward[-1].ts,
        b"".join(r.encode() for r in forward),
        b"".join(r.encode() for r in undo),
        point=forward[-1].op == Op.POINT,
    )


def _parse(data: bytes, pos: int, segment: str) -> tuple[Group, int] | None:
    """The group at ``pos``, or None when the data ends inside it; corruption raises RecordError."""
    if len(data) - pos < HEAD.size + TAIL.size:
        return None
    magic, first, last, ts0, ts1, flen, ulen = HEAD.unpack_from(data, pos)
    if magic not in (MAGIC, MAGIC_POINT):
        raise RecordError(f"bad group magic {bytes(magic)!r} at byte {pos}")
    if flen > MAX_BLOB or ulen > MAX_BLOB or last < first:
        raise RecordError(f"absurd group header at byte {pos}")
    body = pos + HEAD.size + TAIL.size
    end = body + flen + ulen
    if len(data) < end:
        return None
    (digest,) = TAIL.unpack_from(data, pos + HEAD.size)
    h = xxhash.xxh3_64()
    h.update(data[pos : pos + HEAD.size])
    h.update(data[body:end])
    if h.intdigest() != digest:
        raise RecordError(f"checksum mismatch in the group at byte {pos} (seq {first}-{last})")
    forward, undo = data[body : body + flen], data[body + flen : end]
    return Group(first, last, ts0, ts1, forward, undo, segment, magic == MAGIC_POINT), end


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
        self.last_seq = 0
        if not readonly:
            directory.mkdir(parents=True, exist_ok=True)
            self._recover()

    def segments(self) -> list[Path]:
        return sorted(p for p in self.dir.iterdir() if p.suffix == ".rwl" and p.stem.isdigit())

    def _scan(self, seg: Path) -> tuple[list[Group], int, int]:
        data = seg.read_bytes()
        out: list[Group] = []
        pos = 0
        while pos < len(data):
            try:
                got = _parse(data, pos, seg.name)
            except RecordError as exc:
                if seg != self.segments()[-1] or _valid_after(data, pos, seg.name):
                    raise JournalError(f"corrupt rewind log: {exc}", where=str(seg)) from exc
                break  # damage at the very end of the newest segment: a torn append
            if got is None:
                break
            out.append(got[0])
            pos = got[1]
        return out, pos, len(data)

    def _recover(self) -> None:
        segs = self.segments()
        if not segs:
            return
        groups, end, size = self._scan(segs[-1])
        if end < size:
            self.dropped_tail = size - end
            with open(segs[-1], "r+b") as f:
                f.truncate(end)
                os.fsync(f.fileno())
        if groups:
            self.last_seq = groups[-1].last_seq
        else:
            older = list(self.heads(segs[:-1]))
            self.last_seq = older[-1].last_seq if older else 0

    def append(self, group: Group) -> None:
        """Append and fsync: durable on return (before the batch it undoes is applied)."""
        if group.first_seq <= self.last_seq:
            raise JournalError(f"rewind-log group {group.first_seq} is not after {self.last_seq}", where=str(self.dir))
        if self._fd is None or self._size >= self.segment_size:
            self._fd = self._open(group.first_seq)
        data = group.encode()
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        os.fsync(self._fd)
        self._size += len(data)
        self.last_seq = group.last_seq

    def _open(self, first_seq: int) -> int:
        self.close()
        segs = self.segments()
        if segs and os.path.getsize(segs[-1]) < self.segment_size:
            path = segs[-1]  # continue the newest segment after a restart
        else:
            path = self.dir / f"{first_seq:020d}.rwl"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        self._size = os.fstat(fd).st_size
        fsync_dir(self.dir)
        return fd

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    # -- reading ------------------------------------------------------------------------------------
    def groups(self) -> Iterator[Group]:
        """Every group, oldest first."""
        for seg in self.segments():
            yield from self._scan(seg)[0]

    def heads(self, segments: list[Path] | None = None) -> Iterator[Head]:
        """The groups' headers, oldest first, reading only headers (a group's checksum covers its blobs and
        is checked when the group itself is read). A group still being appended at the end ends the list."""
        every = self.segments()
        newest = every[-1] if every else None
        for seg in every if segments is None else segments:
            for head, _start in self._spans(seg, seg == newest):
                yield head

    def _spans(self, seg: Path, newest: bool) -> Iterator[tuple[Head, int]]:
        """Each group's header in ``seg`` with the byte where the group starts."""
        with open(seg, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            pos = 0
            while pos + HEAD.size <= size:
                magic, first, last, ts0, ts1, flen, ulen = HEAD.unpack(os.pread(f.fileno(), HEAD.size, pos))
                end = pos + HEAD.size + TAIL.size + flen + ulen
                if magic not in (MAGIC, MAGIC_POINT) or flen > MAX_BLOB or ulen > MAX_BLOB or last < first:
                    raise JournalError(f"corrupt rewind log: bad group header at byte {pos}", where=str(seg))
                if end > size:
                    break
                yield Head(first, last, ts0, ts1, magic == MAGIC_POINT), pos
                pos = end
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
            if all(h.first_seq > seq for h, _at in spans):
                seg.unlink()
                continue
            cut = next((at for h, at in spans if h.first_seq > seq), os.path.getsize(seg))
            with open(seg, "r+b") as f:
                f.truncate(cut)
                os.fsync(f.fileno())
            self.last_seq = seq
            break
        fsync_dir(self.dir)

    def newest_first(self, above: int) -> Iterator[Group]:
        """The groups with ``last_seq > above``, newest first (one segment in memory at a time)."""
        for seg in reversed(self.segments()):
            groups = self._scan(seg)[0]
            yield from (g for g in reversed(groups) if g.last_seq > above)
            if groups and groups[0].first_seq <= above + 1:
                return

    def disk_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.segments())

    # -- retention ----------------------------------------------------------------------------------
    def prune(self, *, max_age: float | None, max_size: int | None, keep_above: int | None = None) -> int:
        """Remove whole segments, oldest first, older than ``max_age`` seconds or while the log is larger
        than ``max_size``; never the newest segment, nor one holding groups above ``keep_above`` (a rewind
        in progress needs them). Returns the bytes freed."""
        segs = self.segments()
        total = sum(p.stat().st_size for p in segs)
        freed = 0
        now = time.time()
        for seg in segs[:-1]:
            heads = list(self.heads([seg]))
            newest = heads[-1] if heads else None
            too_old = max_age is not None and newest is not None and now - newest.ts_last > max_age
            too_big = max_size is not None and total - freed > max_size
            pinned = keep_above is not None and newest is not None and newest.last_seq > keep_above
            if not (too_old or too_big) or pinned:
                break
            freed += seg.stat().st_size
            seg.unlink()
        if freed:
            fsync_dir(self.dir)
        return freed


def _valid_after(data: bytes, pos: int, segment: str) -> bool:
    start = data.find(MAGIC, pos + 1)
    while start != -1:
        try:
            if _parse(data, start, segment) is not None:
                return True
        except RecordError:
            pass
        start = data.find(MAGIC, start + 1)
    return False

"""Append-only segment files of records, fsynced before anything depends on them (docs/formats.md).

A journal directory holds ``<first seq, 20 digits>.seg`` files. Records are only ever appended; a
segment is deleted whole once every record in it is acknowledged. On open, an incomplete record at the
end of the newest segment (a crash mid-append) is dropped; corruption anywhere else is an error.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from twinsite.durable import fsync_dir
from twinsite.errors import JournalError
from twinsite.journal.record import MAGIC, Record, RecordError, decode

READ_CHUNK = 4 << 20


def _scan(data: bytes) -> tuple[list[Record], int, RecordError | None]:
    """Decode records from ``data``: (records, end of the last good one, the error that stopped it)."""
    out: list[Record] = []
    pos = 0
    while pos < len(data):
        try:
            got = decode(data, pos)
        except RecordError as exc:
            return out, pos, exc
        if got is None:
            break
        rec, pos = got
        out.append(rec)
    return out, pos, None


def _valid_record_after(data: bytes, pos: int) -> bool:
    """Whether any complete, valid record starts after ``pos`` (then the damage is not a torn tail)."""
    start = data.find(MAGIC, pos + 1)
    while start != -1:
        try:
            if decode(data, start) is not None:
                return True
        except RecordError:
            pass
        start = data.find(MAGIC, start + 1)
    return False


class Journal:
    """One scenario's journal. Single writer; readers stream with :meth:`read_from`."""

    def __init__(self, directory: Path, *, segment_size: int = 64 << 20) -> None:
        self.dir = directory
        self.segment_size = segment_size
        self.dir.mkdir(parents=True, exist_ok=True)
        self.last_seq = 0
        self.dropped_tail = 0  # bytes of a torn tail dropped at open (reported, never silent)
        self._fd: int | None = None
        self._size = 0
        self._recover()

    # -- opening -------------------------------------------------------------------------------------
    def segments(self) -> list[Path]:
        return sorted(p for p in self.dir.iterdir() if p.suffix == ".seg" and p.stem.isdigit())

    def _recover(self) -> None:
        segs = self.segments()
        if not segs:
            return
        last = segs[-1]
        data = last.read_bytes()
        records, end, err = _scan(data)
        if err is not None and _valid_record_after(data, end):
            raise JournalError(
                f"corrupt record in the middle of the journal: {err}",
                where=str(last),
                hint="the journal cannot be trusted: run a verified resync (twinsite sync --verify)",
            )
        if end < len(data):
            self.dropped_tail = len(data) - end
            with open(last, "r+b") as f:
                f.truncate(end)
                os.fsync(f.fileno())
        if records:
            self.last_seq = records[-1].seq
        elif len(segs) > 1:
            self.last_seq = int(segs[-1].stem) - 1
        else:
            self.last_seq = int(last.stem) - 1

    # -- writing -------------------------------------------------------------------------------------
    def _open_segment(self, first_seq: int) -> None:
        if self._fd is not None:
            os.close(self._fd)
        path = self.dir / f"{first_seq:020d}.seg"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._size = os.fstat(self._fd).st_size
        fsync_dir(self.dir)

    def append(self, records: Iterable[Record]) -> int:
        """Append records (seq must follow on), fsync, and return the last seq. Durable on return."""
        buf: list[bytes] = []
        expect = self.last_seq + 1
        for rec in records:
            if rec.seq != expect:
                raise JournalError(f"sequence gap: expected seq {expect}, got {rec.seq}", where=str(self.dir))
            if self._fd is None or self._size >= self.segment_size:
                self._flush(buf)
                buf = []
                self._open_segment(rec.seq)
            enc = rec.encode()
            buf.append(enc)
            self._size += len(enc)
            expect += 1
        self._flush(buf)
        if self._fd is not None:
            os.fsync(self._fd)
        self.last_seq = expect - 1
        return self.last_seq

    def _flush(self, buf: list[bytes]) -> None:
        if buf and self._fd is not None:
            data = b"".join(buf)
            view = memoryview(data)
            while view:
                n = os.write(self._fd, view)
                view = view[n:]

    def skip_to(self, seq: int) -> None:
        """Continue numbering at ``seq`` (records below it were acknowledged without passing through here)."""
        if seq <= self.last_seq:
            return
        self.close()
        self.last_seq = seq - 1

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    # -- reading and trimming ------------------------------------------------------------------------
    def read_from(self, seq: int) -> Iterator[Record]:
        """Every record with seq >= ``seq``, in order, one segment in memory at a time."""
        segs = self.segments()
        for i, seg in enumerate(segs):
            nxt = int(segs[i + 1].stem) if i + 1 < len(segs) else None
            if nxt is not None and nxt <= seq:
                continue
            records, _end, err = _scan(seg.read_bytes())
            if err is not None:
                raise JournalError(f"corrupt record: {err}", where=str(seg))
            for rec in records:
                if rec.seq >= seq:
                    yield rec

    def reader(self, seq: int) -> JournalReader:
        """A cursor that streams the records from ``seq`` on as they are appended (the shipper's)."""
        return JournalReader(self, seq)

    def first_seq(self) -> int:
        segs = self.segments()
        return int(segs[0].stem) if segs else self.last_seq + 1

    def trim(self, acked_seq: int) -> int:
        """Delete segments whose every record is <= ``acked_seq``; return bytes freed."""
        segs = self.segments()
        freed = 0
        for i, seg in enumerate(segs[:-1]):  # the newest segment is the one being written
            if int(segs[i + 1].stem) - 1 <= acked_seq:
                freed += seg.stat().st_size
                seg.unlink()
        if freed:
            fsync_dir(self.dir)
        return freed

    def disk_bytes(self) -> int:
        total = 0
        for seg in self.segments():
            with contextlib.suppress(FileNotFoundError):  # trimmed meanwhile
                total += seg.stat().st_size
        return total


class JournalReader:
    """Streams a journal's records in order from a given seq, remembering where it stopped.

    Each call reads only what was appended since the last one (never the segment from its start again),
    and returns only records the journal has made durable (``seq <= last_seq``): a record being appended is
    left for the next call. Each record comes with its encoded bytes, which are what the wire carries.
    """

    def __init__(self, journal: Journal, seq: int) -> None:
        self.journal = journal
        self.next_seq = seq
        self._seg: Path | None = None
        self._offset = 0

    def _segment_for(self, seq: int) -> Path | None:
        found = None
        for seg in self.journal.segments():
            if int(seg.stem) <= seq:
                found = seg
            elif found is None:
                found = seg  # records below the oldest segment were trimmed: start at what there is
        return found

    def read(self, max_bytes: int = READ_CHUNK) -> list[tuple[Record, memoryview]]:
        """The next durable records (about ``max_bytes`` of them, at least one if any is there)."""
        upto = self.journal.last_seq
        out: list[tuple[Record, memoryview]] = []
        size = 0
        while self.next_seq <= upto and size < max_bytes:
            if self._seg is None:
                self._seg = self._segment_for(self.next_seq)
                self._offset = 0
                if self._seg is None:
                    break
            # Listed before reading: a segment with a newer one beside it was complete when read (the writer
            # finishes a segment before it starts the next), so reading it to its end means it is done.
            newer = [s for s in self.journal.segments() if int(s.stem) > int(self._seg.stem)]
            before = self._offset
            got, exhausted = self._read_segment(self._seg, upto, max_bytes - size)
            if got or self._offset > before:  # records, or records below next_seq passed over: read on
                out += got
                size += sum(len(raw) for _, raw in got)
                continue
            if not (exhausted and newer):
                break  # the rest is not durable yet, or still being written
            self._seg, self._offset = newer[0], 0
        return out

    def _read_segment(self, seg: Path, upto: int, max_bytes: int) -> tuple[list[tuple[Record, memoryview]], bool]:
        """Records from the cursor's offset, and whether the segment's end was reached (nothing left in it)."""
        try:
            with open(seg, "rb") as f:
                f.seek(self._offset)
                want = max(max_bytes, 1 << 16)
                data = f.read(want)
                short = len(data) < want  # the file ended within this read
                while data and decode(data, 0) is None and not short:
                    more = f.read(len(data))  # a record longer than what was read: read on until it ends
                    short = len(more) < len(data)
                    data += more
        except FileNotFoundError:
            return [], True  # trimmed under us: everything in it was acknowledged
        view = memoryview(data)
        out: list[tuple[Record, memoryview]] = []
        pos = 0
        while pos < len(data):
            try:
                got = decode(view, pos)
            except RecordError as exc:
                raise JournalError(f"corrupt record: {exc}", where=f"{seg} at byte {self._offset + pos}") from exc
            if got is None or got[0].seq > upto:
                break  # incomplete (being appended) or not yet durable
            rec, end = got
            if rec.seq >= self.next_seq:
                out.append((rec, view[pos:end]))
                self.next_seq = rec.seq + 1
            pos = end
        self._offset += pos
        return out, short and pos == len(data)

"""``applied_seq``: where a standby's replica of a root stands, durably (docs/formats.md).

32 bytes rewritten in place and fdatasync'ed: the seq, the source time of that record, the epoch its seq
belongs to, and the xxh3-64 of those 24 bytes. A 16-byte file (seq and checksum) from an earlier version
reads as epoch 0, time unknown. A damaged file is an error that asks for a verified resync, never a guess.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import xxhash

from twinsite.durable import fsync_dir
from twinsite.errors import ApplyError


@dataclass(frozen=True)
class AppliedPosition:
    """Where a replica stands: the last applied seq, the source time of that record, and the epoch (the
    switchover generation, state.role) whose numbering the seq belongs to."""

    seq: int = 0
    ts: float = 0.0
    epoch: int = 0


class AppliedFile:
    """The position file, held open by the one writer of a root (the receiver, a rewind settling)."""

    FMT = struct.Struct("<QQ")
    FMT2 = struct.Struct("<QdQQ")  # seq, ts, epoch, xxh3-64 of the 24 bytes before it

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            fsync_dir(path.parent)  # (a new file: its name durable before any position is acknowledged in it)
        except FileExistsError:
            self.fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)

    def read(self) -> int:
        return self.position().seq

    def position(self) -> AppliedPosition:
        raw = os.pread(self.fd, self.FMT2.size, 0)
        if not raw:
            return AppliedPosition()
        corrupt = ApplyError(
            "applied-seq file is corrupt",
            where=str(self.path),
            hint="the replica's position is unknown: run a verified resync",
        )
        if len(raw) == self.FMT.size:
            seq, digest = self.FMT.unpack(raw)
            if xxhash.xxh3_64_intdigest(struct.pack("<Q", seq)) != digest:
                raise corrupt
            return AppliedPosition(int(seq))
        if len(raw) != self.FMT2.size:
            raise ApplyError("applied-seq file is truncated", where=str(self.path))
        seq, ts, epoch, digest = self.FMT2.unpack(raw)
        if xxhash.xxh3_64_intdigest(raw[:24]) != digest:
            raise corrupt
        return AppliedPosition(int(seq), float(ts), int(epoch))

    def write(self, seq: int, ts: float = 0.0, epoch: int | None = None) -> None:
        """Store the position (``epoch`` None: the one stored now). Durable when it returns."""
        if epoch is None:
            epoch = self.position().epoch
        head = struct.pack("<QdQ", seq, ts, epoch)
        os.pwrite(self.fd, head + struct.pack("<Q", xxhash.xxh3_64_intdigest(head)), 0)
        os.fdatasync(self.fd)

    def close(self) -> None:
        os.close(self.fd)


def read(path: Path) -> AppliedPosition:
    """What a standby has durably applied of a root (seq 0 when it never received any)."""
    if not path.exists():
        return AppliedPosition()
    f = AppliedFile(path)
    try:
        return f.position()
    finally:
        f.close()


def write(path: Path, seq: int, ts: float, epoch: int | None = None) -> None:
    """Store a position without holding the file open (a rewind settling, a promotion)."""
    f = AppliedFile(path)
    try:
        f.write(seq, ts, epoch)
    finally:
        f.close()

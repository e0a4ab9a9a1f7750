"""Change records and their binary encoding (documented in docs/formats.md).

A record is one change to one path under a scenario root: ``seq`` orders it, ``ts`` is the source's clock
(a label only: ordering never uses it). Paths are root-relative bytes, never normalised.

Encoding, little-endian::

    magic  b"TWR1"                 4
    op, flags                      1 + 1
    path_len, path2_len            2 + 2
    data_len                       4
    seq                            8   (unsigned)
    offset                         8   (unsigned; write offset, or the new size for TRUNCATE)
    ts                             8   (float seconds since the epoch, source clock)
    [meta: mode, uid, gid, mtime_ns, xattr_len]  4+4+4+8+4  when flags & HAS_META
    path, path2, [xattrs], data
    xxh3_64 of everything above    8

Lengths are checked against hard limits before anything is allocated.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

import xxhash

from twinsite.errors import TwinsiteError

MAGIC = b"TWR1"
HEAD = struct.Struct("<4sBBHHIQQd")
META = struct.Struct("<IIIqI")
TAIL = struct.Struct("<Q")
HAS_META = 0x01

MAX_PATH = 4096
MAX_XATTRS = 1 << 20
MAX_DATA = 16 << 20


class Op(enum.IntEnum):
    MKDIR = 1  # path, meta
    CREATE = 2  # path, meta: an empty regular file (replaces whatever was there)
    WRITE = 3  # path, offset, data
    TRUNCATE = 4  # path, offset = new size
    SYMLINK = 5  # path, path2 = link target (stored as is, never followed)
    HARDLINK = 6  # path, path2 = existing path it links to
    RENAME = 7  # path -> path2
    DELETE = 8  # path (a directory with everything under it)
    SETATTR = 9  # path, meta (mode, uid, gid, mtime, xattrs)
    MKFIFO = 10  # path, meta
    POINT = 11  # offset = point id, ts = its snapshot's time: every record before it forms a consistency point


#: Metadata that grants privileges (a scenario's ``replication.privileged_metadata`` decides whether it is
#: replicated): the setuid and setgid bits of anything but a directory, and these xattrs.
SETID_BITS = 0o6000
PRIVILEGED_XATTRS = (b"security.capability", b"trusted.")


def unprivileged(
    mode: int, xattrs: tuple[tuple[bytes, bytes], ...], *, directory: bool
) -> tuple[int, tuple[tuple[bytes, bytes], ...]]:
    """``mode`` and ``xattrs`` without what grants privileges (a directory keeps its setgid bit: it only passes
    the group on to what is made in it)."""
    kept = tuple((k, v) for k, v in xattrs if not k.startswith(PRIVILEGED_XATTRS))
    return (mode if directory else mode & ~SETID_BITS), kept


class RecordError(TwinsiteError, ValueError):
    """A record is corrupt, truncated, or of an unknown version or kind, or says what no filesystem can hold (a
    NUL in a name, a link's target or an xattr's name)."""


@dataclass(frozen=True, slots=True)
class Meta:
    mode: int  # permission bits (07777)
    uid: int
    gid: int
    mtime_ns: int
    xattrs: tuple[tuple[bytes, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class Record:
    seq: int
    ts: float
    op: Op
    path: bytes
    path2: bytes = b""
    offset: int = 0
    data: bytes = b""
    meta: Meta | None = None

    def encode(self) -> bytes:
        xattrs = _encode_xattrs(self.meta.xattrs) if self.meta else b""
        flags = HAS_META if self.meta else 0
        parts = [
            HEAD.pack(
                MAGIC, self.op, flags, len(self.path), len(self.path2), len(self.data), self.seq, self.offset, self.ts
            )
        ]
        if self.meta:
            m = self.meta
            parts.append(META.pack(m.mode, m.uid, m.gid, m.mtime_ns, len(xattrs)))
        parts += [self.path, self.path2, xattrs, self.data]
        h = xxhash.xxh3_64()
        for part in parts:
            h.update(part)
        parts.append(TAIL.pack(h.intdigest()))
        return b"".join(parts)  # (one copy of the data: a record's data is up to a read chunk, 1 MiB)

    @property
    def size(self) -> int:
        """Encoded size in bytes, without encoding."""
        n = HEAD.size + len(self.path) + len(self.path2) + len(self.data) + TAIL.size
        if self.meta:
            n += META.size + 4 + sum(6 + len(k) + len(v) for k, v in self.meta.xattrs)
        return n


def _encode_xattrs(xattrs: tuple[tuple[bytes, bytes], ...]) -> bytes:
    out = [struct.pack("<I", len(xattrs))]
    for k, v in xattrs:
        out += [struct.pack("<HI", len(k), len(v)), k, v]
    return b"".join(out)


def _decode_xattrs(buf: bytes) -> tuple[tuple[bytes, bytes], ...]:
    if len(buf) < 4:
        raise RecordError(f"xattr block of {len(buf)} bytes (at least 4)")
    (n,) = struct.unpack_from("<I", buf, 0)
    pos, out = 4, []
    for _ in range(n):
        if pos + 6 > len(buf):
            raise RecordError("xattr block overruns its length")
        kl, vl = struct.unpack_from("<HI", buf, pos)
        pos += 6
        if pos + kl + vl > len(buf):
            raise RecordError("xattr block overruns its length")
        key = buf[pos : pos + kl]
        if not key or b"\0" in key or kl > 255:
            raise RecordError(f"xattr name {key[:64]!r}: empty, longer than 255 bytes, or with a NUL")
        out.append((key, buf[pos + kl : pos + kl + vl]))
        pos += kl + vl
    if pos != len(buf):
        raise RecordError("xattr block has trailing bytes")
    return tuple(out)


def _header(view: memoryview, pos: int) -> tuple[tuple[int, ...], tuple[int, ...] | None, int] | None:
    """Check the fixed header (and meta block) at ``pos``: (header fields, meta fields, end of them)."""
    if len(view) - pos < HEAD.size:
        return None
    magic, *fields = HEAD.unpack_from(view, pos)
    if magic != MAGIC:
        known = " (unknown version)" if magic[:3] == b"TWR" else ""
        raise RecordError(f"bad magic {bytes(magic)!r} at byte {pos}{known}")
    _op, flags, plen, p2len, dlen = fields[:5]
    if plen > MAX_PATH or p2len > MAX_PATH or dlen > MAX_DATA:
        raise RecordError(f"absurd lengths at byte {pos}: path {plen}, path2 {p2len}, data {dlen}")
    if flags & ~HAS_META:
        raise RecordError(f"unknown flags {flags:#x} at byte {pos}")
    end = pos + HEAD.size
    if not flags & HAS_META:
        return tuple(fields), None, end
    if len(view) < end + META.size:
        return None
    meta = META.unpack_from(view, end)
    if meta[4] > MAX_XATTRS:
        raise RecordError(f"absurd xattr length {meta[4]} at byte {pos}")
    return tuple(fields), meta, end + META.size


def decode(buf: bytes | bytearray | memoryview, pos: int = 0) -> tuple[Record, int] | None:
    """Decode the record at ``buf[pos:]``; return it and the position after it.

    Returns None when the buffer ends before the record does (a torn tail, or more bytes to come);
    raises :class:`RecordError` for anything corrupt.
    """
    view = memoryview(buf)
    head = _header(view, pos)
    if head is None:
        return None
    (op, _flags, plen, p2len, dlen, seq, offset, ts), meta_fields, end = head
    xlen = meta_fields[4] if meta_fields else 0
    total = end + plen + p2len + xlen + dlen + TAIL.size
    if len(view) < total:
        return None
    (digest,) = TAIL.unpack_from(view, total - TAIL.size)
    if xxhash.xxh3_64_intdigest(view[pos : total - TAIL.size]) != digest:
        raise RecordError(f"checksum mismatch in record at byte {pos} (seq {seq} if the header is right)")
    try:
        kind = Op(op)
    except ValueError as exc:
        raise RecordError(f"unknown operation {op} in record seq {seq}") from exc
    xoff = end + plen + p2len
    if 0 in view[end:xoff]:  # (a memoryview holds ints)
        raise RecordError(f"a NUL in a path or link target of record seq {seq}")
    if kind == Op.SYMLINK and p2len == 0:
        raise RecordError(f"a symlink with an empty target in record seq {seq}")
    meta = None
    if meta_fields is not None:
        mode, uid, gid, mtime_ns, _ = meta_fields
        meta = Meta(mode, uid, gid, mtime_ns, _decode_xattrs(bytes(view[xoff : xoff + xlen])))
    return Record(
        seq=seq,
        ts=ts,
        op=kind,
        path=bytes(view[end : end + plen]),
        path2=bytes(view[end + plen : xoff]),
        offset=offset,
        data=bytes(view[xoff + xlen : xoff + xlen + dlen]),
        meta=meta,
    ), total

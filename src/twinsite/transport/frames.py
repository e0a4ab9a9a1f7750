"""The wire protocol between sender and receiver: checksummed frames over a byte stream (docs/formats.md).

Frame: ``b"TWF1" | kind (1) | flags (1) | length (4) | xxh3_64 of payload (8) | payload``.
Control frames carry compact JSON; BATCH frames carry encoded records, zstd-compressed when flag 1 is set.
Decompressed size is capped, so a decompression bomb is refused rather than allocated.
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import json
import struct
from typing import Any, BinaryIO, Protocol, cast

import xxhash
import zstandard

from twinsite.errors import PeerClosed, ProtocolError

MAGIC = b"TWF1"
HEAD = struct.Struct("<4sBBIQ")
MAX_FRAME = 64 << 20
MAX_BATCH_RAW = 128 << 20
COMPRESSED = 0x01
PIPE_BYTES = 1 << 20  # a pipe carrying frames holds this much (Linux's default, 64 KiB, is a task switch per 64 KiB)


class Kind(enum.IntEnum):
    HELLO = 1  # sender -> receiver: {"scenario", "root", "version"}
    READY = 2  # receiver -> sender: {"applied_seq", ...}
    MANIFEST_REQ = 3  # sender -> receiver: {}
    MANIFEST = 4  # receiver -> sender: {"entries": [...]}
    SIGS_REQ = 5  # sender -> receiver: {"paths": [...], "block_size"}
    SIGS = 6  # receiver -> sender: {"sigs": {path_hex: {"size", "blocks": hex}}}
    BATCH = 7  # sender -> receiver: records; binary payload
    ACK = 8  # receiver -> sender: {"seq"}: everything up to seq is durably applied
    ERROR = 9  # either way: {"type", "message", "where", "hint"}
    PING = 10
    PONG = 11
    BYE = 12


def frame_head(kind: Kind, payload: bytes, flags: int = 0) -> bytes:
    """The header of a frame carrying ``payload`` (written before it, without copying the payload)."""
    if len(payload) > MAX_FRAME:
        raise ProtocolError(f"frame of {len(payload)} bytes exceeds {MAX_FRAME}")
    return HEAD.pack(MAGIC, kind, flags, len(payload), xxhash.xxh3_64_intdigest(payload))


def pack(kind: Kind, payload: bytes, flags: int = 0) -> bytes:
    return frame_head(kind, payload, flags) + payload


def pack_json(kind: Kind, obj: dict[str, Any]) -> bytes:
    return pack(kind, json.dumps(obj, separators=(",", ":")).encode())


SAMPLE = 16 << 10  # bytes compressed from each of three places to decide whether a batch compresses


def compressible(blob: bytes, level: int = 1) -> bool:
    """Whether zstd shrinks ``blob`` by at least 1/16, judged from three samples (start, middle, end):
    already-compressed or random data (database pages of compressed tables, media, archives) then costs
    three small trial compressions instead of a full one that gains nothing."""
    if len(blob) <= 3 * SAMPLE:
        return True
    c = zstandard.ZstdCompressor(level=level)
    mid = len(blob) // 2
    parts = (blob[:SAMPLE], blob[mid : mid + SAMPLE], blob[-SAMPLE:])
    return sum(len(c.compress(x)) for x in parts) < 3 * SAMPLE * 15 // 16


def batch_frame(records_blob: bytes, *, compress: bool, level: int = 1) -> tuple[bytes, bytes]:
    """(header, payload) of a BATCH frame; compressed when asked to and when it pays."""
    if compress and compressible(records_blob, level):
        z = zstandard.ZstdCompressor(level=level).compress(records_blob)
        if len(z) < len(records_blob):
            return frame_head(Kind.BATCH, z, COMPRESSED), z
    return frame_head(Kind.BATCH, records_blob), records_blob


def pack_batch(records_blob: bytes, *, compress: bool, level: int = 1) -> bytes:
    return b"".join(batch_frame(records_blob, compress=compress, level=level))


def widen_pipe(stream: BinaryIO) -> None:
    """Give the pipe under ``stream`` room for PIPE_BYTES (best effort: a socket, a file or a system whose
    pipe-max-size is lower keeps what it has)."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        fcntl.fcntl(stream.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)


class Readable(Protocol):
    def readinto(self, buffer: memoryview, /) -> int | None: ...


def _read_exact(stream: BinaryIO, n: int) -> bytearray:
    # every stream read here (a pipe's BufferedReader, paramiko's ChannelFile, BytesIO) has readinto
    reader = cast(Readable, stream)
    buf = bytearray(n)  # read in place: a batch is not copied chunk by chunk
    view = memoryview(buf)
    got = 0
    while got < n:
        k = reader.readinto(view[got:])
        if not k:
            raise PeerClosed(f"stream ended after {got} of {n} bytes")
        got += k
    return buf


def read_frame(stream: BinaryIO) -> tuple[Kind, int, bytearray]:
    head = _read_exact(stream, HEAD.size)
    magic, kind, flags, length, digest = HEAD.unpack(head)
    if magic != MAGIC:
        raise ProtocolError(f"bad frame magic {magic!r}: not a twinsite peer, or a different version")
    if length > MAX_FRAME:
        raise ProtocolError(f"frame length {length} exceeds {MAX_FRAME}: refused before reading")
    payload = _read_exact(stream, length)
    if xxhash.xxh3_64_intdigest(payload) != digest:
        raise ProtocolError("frame checksum mismatch: corrupted in transit")
    try:
        return Kind(kind), flags, payload
    except ValueError as exc:
        raise ProtocolError(f"unknown frame kind {kind}") from exc


def batch_payload(flags: int, payload: bytearray) -> bytes | bytearray:
    """The encoded records of a BATCH frame, decompressed with a hard output cap."""
    if not flags & COMPRESSED:
        return payload
    try:
        out: bytes = zstandard.ZstdDecompressor().decompress(payload, max_output_size=MAX_BATCH_RAW)
    except zstandard.ZstdError as exc:
        raise ProtocolError(f"batch does not decompress within {MAX_BATCH_RAW} bytes: {exc}") from exc
    return out


def parse_json(payload: bytes | bytearray) -> dict[str, Any]:
    try:
        obj = json.loads(payload)
    except ValueError as exc:
        raise ProtocolError("control frame is not JSON") from exc
    if not isinstance(obj, dict):
        raise ProtocolError("control frame is not a JSON object")
    return obj

"""The wire protocol between sender and receiver: checksummed frames over a byte stream (docs/formats.md).

Frame: ``b"TWF1" | kind (1) | flags (1) | length (4) | xxh3_64 of payload (8) | payload``.
Control frames carry compact JSON; BATCH frames carry encoded records, zstd-compressed when flag 1 is set.
Decompressed size is capped, so a decompression bomb is refused rather than allocated.
"""

from __future__ import annotations

import enum
import json
import struct
from typing import Any, BinaryIO

import xxhash
import zstandard

from twinsite.errors import TwinsiteError

MAGIC = b"TWF1"
HEAD = struct.Struct("<4sBBIQ")
MAX_FRAME = 64 << 20
MAX_BATCH_RAW = 128 << 20
COMPRESSED = 0x01


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


class ProtocolError(TwinsiteError):
    """The peer sent something that is not a valid frame (corrupt, oversized, unexpected)."""

    exit_code = 11


class PeerClosed(ProtocolError):
    """The stream ended (the peer exited or the link was cut)."""


def pack(kind: Kind, payload: bytes, flags: int = 0) -> bytes:
    if len(payload) > MAX_FRAME:
        raise ProtocolError(f"frame of {len(payload)} bytes exceeds {MAX_FRAME}")
    return HEAD.pack(MAGIC, kind, flags, len(payload), xxhash.xxh3_64_intdigest(payload)) + payload


def pack_json(kind: Kind, obj: dict[str, Any]) -> bytes:
    return pack(kind, json.dumps(obj, separators=(",", ":")).encode())


def pack_batch(records_blob: bytes, *, compress: bool, level: int = 1) -> bytes:
    if compress:
        return pack(Kind.BATCH, zstandard.ZstdCompressor(level=level).compress(records_blob), COMPRESSED)
    return pack(Kind.BATCH, records_blob)


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = stream.read(n - len(buf))
        if not chunk:
            raise PeerClosed(f"stream ended after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def read_frame(stream: BinaryIO) -> tuple[Kind, int, bytes]:
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


def batch_payload(flags: int, payload: bytes) -> bytes:
    """The encoded records of a BATCH frame, decompressed with a hard output cap."""
    if not flags & COMPRESSED:
        return payload
    try:
        out: bytes = zstandard.ZstdDecompressor().decompress(payload, max_output_size=MAX_BATCH_RAW)
    except zstandard.ZstdError as exc:
        raise ProtocolError(f"batch does not decompress within {MAX_BATCH_RAW} bytes: {exc}") from exc
    return out


def parse_json(payload: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(payload)
    except ValueError as exc:
        raise ProtocolError("control frame is not JSON") from exc
    if not isinstance(obj, dict):
        raise ProtocolError("control frame is not a JSON object")
    return obj

"""Fixed-size block signatures: xxh3-64 per block, little-endian, concatenated.

The work per block is one C call (xxhash); there is no per-byte loop in Python.
"""

from __future__ import annotations

import os
import struct

import xxhash

DIGEST = struct.Struct("<Q")
READ_CHUNK = 1 << 20


def block_signatures(buf: bytes, block: int) -> bytes:
    """Signatures of the blocks of ``buf`` (the last one may be short)."""
    h = xxhash.xxh3_64_intdigest
    view = memoryview(buf)
    return b"".join(DIGEST.pack(h(view[i : i + block])) for i in range(0, len(buf), block))


def signatures(fd: int, size: int, block: int) -> bytes:
    """Signatures of the first ``size`` bytes of ``fd``, read with pread (never mmap: a file truncated while
    it is hashed would turn an mmap access into SIGBUS). A file that shrank meanwhile gives fewer blocks."""
    out: list[bytes] = []
    chunk = max(block, READ_CHUNK // block * block)
    pos = 0
    while pos < size:
        buf = os.pread(fd, min(chunk, size - pos), pos)
        if not buf:
            break
        out.append(block_signatures(buf, block))
        pos += len(buf)
    return b"".join(out)

"""Fixed-size block signatures: xxh3-64 per block, little-endian, concatenated.

The work per block is one C call (xxhash); there is no per-byte loop in Python. A sparse file's holes are
never read: a block wholly in a hole has the signature of a block of zeros (:func:`data_ranges`), so the
signatures of a 1 TiB file with a few MiB of data take the time of those few MiB.
"""

from __future__ import annotations

import errno
import os
import struct
from collections.abc import Iterator

import xxhash

DIGEST = struct.Struct("<Q")
READ_CHUNK = 1 << 20


def block_signatures(buf: bytes, block: int) -> bytes:
    """Signatures of the blocks of ``buf`` (the last one may be short)."""
    h = xxhash.xxh3_64_intdigest
    view = memoryview(buf)
    return b"".join(DIGEST.pack(h(view[i : i + block])) for i in range(0, len(buf), block))


def data_ranges(fd: int, start: int, end: int) -> Iterator[tuple[int, int]]:
    """The ranges of ``fd`` within ``[start, end)`` that may hold data, in order: its holes left out
    (``SEEK_DATA``/``SEEK_HOLE``). Where the filesystem cannot tell, the whole range."""
    pos = start
    while pos < end:
        try:
            data = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:
                return  # a hole from ``pos`` to the end of the file
            if exc.errno not in (errno.EINVAL, errno.EOPNOTSUPP):
                raise
            yield pos, end  # (a filesystem without the seeks: every byte may be data)
            return
        if data >= end:
            return
        hole = min(os.lseek(fd, data, os.SEEK_HOLE), end)
        yield data, hole
        pos = hole


def signatures(fd: int, size: int, block: int, *, first: int = 0) -> bytes:
    """Signatures of the blocks of ``fd`` from block ``first`` up to byte ``size``, read with pread (never
    mmap: a file truncated while it is hashed would turn an mmap access into SIGBUS), holes not read. A file
    that shrank meanwhile gives fewer blocks."""
    h = xxhash.xxh3_64_intdigest
    zero = DIGEST.pack(h(bytes(block)))
    out: list[bytes] = []
    chunk = max(block, READ_CHUNK // block * block)
    done = first  # the blocks signed so far
    for start, end in data_ranges(fd, first * block, size):
        first_block = max(start // block, done)
        out.append(zero * (first_block - done))
        pos, stop = first_block * block, min(-(-end // block) * block, size)
        while pos < stop:
            buf = os.pread(fd, min(chunk, stop - pos), pos)
            if not buf:
                return b"".join(out)
            out.append(block_signatures(buf, block))
            pos += len(buf)
        done = -(-pos // block)
    size = min(size, os.fstat(fd).st_size)
    whole, rest = divmod(size, block)
    out.append(zero * max(0, whole - done))
    if rest and done <= whole:
        out.append(DIGEST.pack(h(bytes(rest))))
    return b"".join(out)

"""Fixed-size block signatures (xxh3-64 per block) and the delta of a file against them.

The work per block is one C call (xxhash); there is no per-byte loop in Python. Ranges that differ are
coalesced, so the records written carry exactly the changed blocks.
"""

from __future__ import annotations

import os
import struct

import xxhash

DIGEST = struct.Struct("<Q")


def signatures(fd: int, size: int, block: int) -> bytes:
    """Concatenated little-endian xxh3-64 of each block of the first ``size`` bytes of ``fd``.

    Read with pread, never mmap: a file truncated by the application while it is hashed would turn an
    mmap access into SIGBUS. A file that shrank meanwhile gives fewer blocks (a later event re-plans it).
    """
    h = xxhash.xxh3_64_intdigest
    out: list[bytes] = []
    chunk = max(block, (1 << 20) // block * block)
    pos = 0
    while pos < size:
        buf = os.pread(fd, min(chunk, size - pos), pos)
        if not buf:
            break
        view = memoryview(buf)
        out.extend(DIGEST.pack(h(view[i : i + block])) for i in range(0, len(buf), block))
        pos += len(buf)
    return b"".join(out)


def changed_ranges(fd: int, size: int, block: int, remote: bytes) -> list[tuple[int, int]]:
    """(offset, length) ranges of ``fd`` that differ from the remote file described by ``remote`` signatures.

    A block is unchanged when its signature equals the remote's block at the same index (a signature covers
    the block's length too, so a shorter last block differs). Runs of 1024 equal signatures are skipped in
    one comparison.
    """
    local = signatures(fd, size, block)
    n = len(local) // DIGEST.size
    ranges: list[tuple[int, int]] = []
    start = -1
    i = 0
    step = 1024
    while i < n:
        if start < 0 and i + step <= n and local[i * 8 : (i + step) * 8] == remote[i * 8 : (i + step) * 8]:
            i += step
            continue
        same = local[i * 8 : i * 8 + 8] == remote[i * 8 : i * 8 + 8]
        if not same and start < 0:
            start = i
        elif same and start >= 0:
            ranges.append((start * block, (i - start) * block))
            start = -1
        i += 1
    if start >= 0:
        ranges.append((start * block, size - start * block))
    return ranges


def data_segments(fd: int, size: int) -> list[tuple[int, int]]:
    """(offset, length) of the parts of a file that hold data (holes of a sparse file are skipped)."""
    segs: list[tuple[int, int]] = []
    pos = 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError:  # ENXIO: only a hole remains
            break
        end = os.lseek(fd, start, os.SEEK_HOLE)
        segs.append((start, min(end, size) - start))
        pos = end
    return segs

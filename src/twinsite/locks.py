"""The one file lock: ``flock`` on a lock file, released when the holder's descriptor closes (also when the
process dies, so a crash never leaves a lock behind).

Held by a receiver while it applies a batch, by a rewind while it moves the replica and by a promotion while it
writes the role (``apply.lock`` of each root); by the process running an assured-recovery test (``test.lock``);
by a switchover (``switchover.lock``). The paths are in state.layout.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def held(path: Path, *, wait: bool = True) -> Iterator[bool]:
    """Hold the lock ``path`` while the block runs (True). Without ``wait``, a lock another process holds is
    not waited for: the block runs without it (False)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)

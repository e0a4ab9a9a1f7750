"""Progress of an initial sync or resync: files and bytes compared out of the tree's total, rate, ETA.

The totals come from a quick walk (metadata only) before the comparison starts. Bytes are "done" when the
standby has acknowledged (durably applied) the records planned for them, a megabyte at a time within a big
file; a file is done with its last record (an unchanged file with the records before it). "sent" counts
the data the planner found the replica lacks. Rate and ETA are of done
bytes, so they reflect whichever is slower: reading, the wire (or its bandwidth limit), or the standby.
"""

from __future__ import annotations

import collections
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def measure(root: Path, select: Callable[[bytes], bool] | None = None) -> tuple[int, int]:
    """(regular files, their bytes) under ``root``, without following symlinks, honouring ``select``."""
    files = size = 0
    base = os.fsencode(root)
    todo = [b""]
    while todo:
        rel = todo.pop()
        try:
            it = os.scandir(base + b"/" + rel if rel else base)
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        with it:
            for e in it:
                path = rel + b"/" + e.name if rel else e.name
                if select is not None and not select(path):
                    continue
                try:
                    st = e.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    todo.append(path)
                elif stat.S_ISREG(st.st_mode):
                    files += 1
                    size += st.st_size
    return files, size


@dataclass
class SyncProgress:
    files_total: int = 0
    bytes_total: int = 0
    files_done: int = 0
    bytes_done: int = 0
    bytes_sent: int = 0
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    # (last seq planned for them, bytes, files), oldest first: appended by the planner, taken by acknowledgements
    _pending: collections.deque[tuple[int, int, int]] = field(default_factory=collections.deque, repr=False)

    def planned(self, seq: int, nbytes: int, files: int = 0) -> None:
        """``nbytes`` of source data (and ``files`` files) are on the replica once ``seq`` is acknowledged."""
        self._pending.append((seq, nbytes, files))

    def acked(self, seq: int) -> None:
        while self._pending and self._pending[0][0] <= seq:
            _, nbytes, files = self._pending.popleft()
            self.files_done += files
            self.bytes_done += nbytes

    def as_dict(self, now: float | None = None) -> dict[str, Any]:
        now = now if now is not None else time.time()
        end = self.finished_at or now
        elapsed = max(end - self.started_at, 1e-6)
        rate = self.bytes_done / elapsed
        left = max(self.bytes_total - self.bytes_done, 0)
        if self.finished_at is not None:
            eta: float | None = 0.0
        else:
            eta = round(left / rate, 1) if rate > 0 else None
        total = self.bytes_total or 1
        return {
            "files_total": self.files_total,
            "files_done": self.files_done,
            "bytes_total": self.bytes_total,
            "bytes_done": self.bytes_done,
            "bytes_sent": self.bytes_sent,
            "percent": round(min(100.0, 100.0 * self.bytes_done / total), 1) if self.bytes_total else 100.0,
            "rate_bytes_per_s": round(rate),
            "eta_seconds": eta,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "elapsed_seconds": round(elapsed, 3),
        }


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def human_seconds(s: float | None) -> str:
    """A duration for people: ``0.04 s``, ``12 s``, ``7 min``, ``3.5 h``, ``4 d``; ``-`` when not known."""
    if s is None:
        return "-"
    if s < 10:
        return f"{s:.2f} s"
    for limit, unit, size, fmt in ((60, "s", 1, ".0f"), (3600, "min", 60, ".0f"), (172800, "h", 3600, ".1f")):
        if s < limit:
            return f"{s / size:{fmt}} {unit}"
    return f"{s / 86400:.0f} d"


def bar(p: dict[str, Any], width: int = 24) -> str:
    """A progress bar and :func:`describe`'s line: ``[##########--------------] 42.0% - ...``."""
    full = round(width * min(100.0, float(p["percent"])) / 100)
    return f"[{'#' * full}{'-' * (width - full)}] {describe(p)}"


def describe(p: dict[str, Any]) -> str:
    """One line for people: ``42.0% - 1.1 of 2.6 GiB, 4210 of 10001 files - 95.3 MiB/s - about 14 s left``."""
    parts = [
        f"{p['percent']:.1f}%",
        f"{human_bytes(p['bytes_done'])} of {human_bytes(p['bytes_total'])}, "
        f"{p['files_done']} of {p['files_total']} files",
        f"{human_bytes(p['rate_bytes_per_s'])}/s",
    ]
    if p.get("finished_at"):
        parts.append(f"done in {p['elapsed_seconds']:.1f} s, {human_bytes(p['bytes_sent'])} sent")
    elif p.get("eta_seconds") is not None:
        parts.append(f"about {p['eta_seconds']:.0f} s left")
    return " - ".join(parts)

"""An overlay over a replica root, so that an application started on the replica's data writes to a
throw-away layer (docs/assured-recovery.md).

The overlay is mounted on the root's own path, with the root as its lower layer: every process of the host
then sees the application's view there, and the replica's files below are never written. The upper and
work directories live in the scenario's state directory (``recovery/overlay/<i>/``), outside the root.
Unmounting and removing them discards every write of the test. The mount is recognised by its source name
``twinsite-test`` in /proc/self/mountinfo, on the root's resolved path (:func:`mounted`, the one place that
decides whether a test's overlay is on a root: the applier refuses to apply while it is).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from twinsite.errors import CommandError, RecoveryError
from twinsite.proc import run, wait_until

SOURCE = "twinsite-test"


def unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (\\040)."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mounted(root: Path | str) -> bool:
    """Whether a test's overlay is mounted on ``root`` (in this process's mount namespace). mountinfo names
    mount points by their resolved path, so ``root`` is resolved first: a root configured under a symlink
    (``/srv`` -> ``/data``) is found all the same."""
    target = os.path.realpath(root)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, rest = left.split(), right.split()
            ours = len(fields) >= 5 and len(rest) >= 2 and rest[0] == "overlay" and rest[1] == SOURCE
            if ours and unescape(fields[4]) == target:
                return True
    return False


def _check_path(root: Path) -> None:
    for bad in (",", ":", "\\"):
        if bad in str(root):
            raise RecoveryError(
                f"the root {root} holds {bad!r}, which an overlay's options cannot carry",
                hint="assured recovery cannot test this root",
            )


def mount(root: Path, scratch: Path) -> bool:
    """Mount the overlay on ``root`` with its upper layer in ``scratch`` (idempotent: False when it is)."""
    if mounted(root):
        return False
    real = root.resolve()
    _check_path(real)  # (the resolved path is what the options carry)
    _check_path(scratch)
    if scratch.resolve().is_relative_to(real):
        raise RecoveryError(f"the overlay's scratch directory {scratch} is inside the root {root}")
    if not root.is_dir():
        raise RecoveryError(f"the replica root {root} is not a directory", where=str(root))
    shutil.rmtree(scratch, ignore_errors=True)  # (a crash left the last one: its writes are not wanted)
    upper, work = scratch / "upper", scratch / "work"
    upper.mkdir(parents=True)
    work.mkdir()
    st = root.stat()
    os.chown(upper, st.st_uid, st.st_gid)  # the merged root takes the upper layer's owner and mode
    os.chmod(upper, st.st_mode & 0o7777)
    opts = f"lowerdir={real},upperdir={upper},workdir={work}"
    try:
        run(["mount", "-t", "overlay", SOURCE, "-o", opts, str(real)], timeout=30)
    except CommandError as exc:
        raise RecoveryError(f"the overlay on {root} could not be mounted: {exc.message}", where=str(root)) from exc
    return True


def unmount(root: Path, scratch: Path, *, busy_wait: float = 10.0) -> dict[str, object]:
    """Unmount the overlay and discard its writes (idempotent). A mount still busy after ``busy_wait`` s
    (a process of the test outlived it) is detached lazily, so replication can apply again."""
    out: dict[str, object] = {"unmounted": False, "lazy": False}
    busy: list[bytes] = []  # what umount said the last time it refused

    def unmounted() -> bool:
        if not mounted(root):
            return True
        proc = run(["umount", os.path.realpath(root)], check=False, timeout=30)
        busy[:] = [proc.stdout + proc.stderr]
        out["unmounted"] = proc.returncode == 0
        return proc.returncode == 0

    if not wait_until(unmounted, timeout=busy_wait, interval=0.2):
        run(["umount", "-l", os.path.realpath(root)], timeout=30)
        out.update(unmounted=True, lazy=True, busy=busy[0].decode(errors="replace").strip())
    if scratch.exists():
        shutil.rmtree(scratch, ignore_errors=True)  # (a concurrent cleanup may remove it too)
        out["discarded"] = not scratch.exists()
    return out

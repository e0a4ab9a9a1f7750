"""Snapshots of a scenario root, for consistency points: one small interface (:class:`Snapshotter`) and its
btrfs implementation. LVM thin or ZFS would add theirs behind the same interface.

A point is a read-only snapshot of the root taken at one instant: every file in it is as the source's disk
held it then, so what is read from it is crash-consistent. The changes between two points are the
filesystem's own list of what it changed (btrfs: ``btrfs send --no-data -p OLD NEW``, read by
capture.sendstream), never a comparison of files read at different moments.

On btrfs the root must be a subvolume; its snapshots are read-only subvolumes in ``store``, a directory on
the same btrfs filesystem (a snapshot cannot cross filesystems).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from twinsite.capture.sendstream import Command, read
from twinsite.errors import CaptureError, CommandError, ConfigError
from twinsite.proc import run
from twinsite.sync.changes import ChangeSet

# commands that make a new inode at their path (or a new name for one): compared whole, never by ranges
_NEW = {"mkfile", "mkdir", "mknod", "mkfifo", "mksock", "symlink", "link"}
# commands about a path's attributes or size: compared by what the newer snapshot holds
_ATTRS = {"truncate", "chmod", "chown", "utimes", "set_xattr", "remove_xattr", "unlink", "rmdir"}


class Snapshotter(Protocol):
    """What consistency points need of a filesystem."""

    def check(self) -> None:
        """Raise a ConfigError saying why the root cannot have points (not a subvolume, no snapshots here)."""

    def prepare(self) -> None:
        """Check, make the store if it is missing, and remove every snapshot a previous run left in it."""

    def take(self, name: str) -> Path:
        """A read-only snapshot of the root now, called ``name`` (idempotent: an existing one is returned)."""

    def delete(self, name: str) -> None:
        """Remove the snapshot ``name`` (quiet when it is gone)."""

    def names(self) -> list[str]:
        """The snapshots in the store, oldest first (a point's name is its id: milliseconds)."""

    def changes(self, older: str | None, newer: str) -> Iterator[Command]:
        """What changed from snapshot ``older`` to ``newer`` (everything in ``newer`` without ``older``)."""


@dataclass(frozen=True)
class Btrfs:
    """Snapshots of the btrfs subvolume ``root`` kept in ``store`` (on the same filesystem)."""

    root: Path
    store: Path

    def check(self) -> None:
        try:
            run(["btrfs", "subvolume", "show", str(self.root)], timeout=30)
        except CommandError as exc:
            raise ConfigError(
                f"{self.root} is not a btrfs subvolume: consistency points need one ({exc.message})",
                where=str(self.root),
                hint=f"make it one (btrfs subvolume create {self.root}, then move the data in), or declare the "
                "scenario with `consistency: file`",
            ) from exc

    def prepare(self) -> None:
        self.check()
        if not self.store.exists():
            try:
                run(["btrfs", "subvolume", "create", str(self.store)], timeout=60)
            except CommandError as exc:
                raise CaptureError(f"cannot create the point store {self.store}: {exc.message}") from exc
            self.store.chmod(0o700)
        elif not self._subvolume(self.store):
            raise ConfigError(
                f"{self.store} is not a btrfs subvolume: it is the root's point store, which twinsite makes itself",
                where=str(self.store),
                hint=f"move it out of the way ({self.store} is reserved and never replicated)",
            )
        for old in sorted(self.store.iterdir()):
            self.delete(old.name)

    @staticmethod
    def _subvolume(path: Path) -> bool:
        """Whether ``path`` is the top of a btrfs subvolume (inode 256)."""
        try:
            return path.lstat().st_ino == 256
        except FileNotFoundError:
            return False

    def path(self, name: str) -> Path:
        return self.store / name

    def take(self, name: str) -> Path:
        target = self.path(name)
        if target.exists():
            return target
        self.store.mkdir(parents=True, exist_ok=True)
        try:
            run(["btrfs", "subvolume", "snapshot", "-r", str(self.root), str(target)], timeout=60)
        except CommandError as exc:
            raise CaptureError(
                f"cannot snapshot {self.root} into {self.store}: {exc.message}", where=str(self.root)
            ) from exc
        return target

    def names(self) -> list[str]:
        if not self.store.is_dir():
            return []
        return [str(n) for n in sorted(int(p.name) for p in self.store.iterdir() if p.name.isdigit())]

    def delete(self, name: str) -> None:
        target = self.path(name)
        if target.exists():
            try:
                run(["btrfs", "subvolume", "delete", str(target)], timeout=60)
            except CommandError as exc:
                raise CaptureError(f"cannot remove the snapshot {target}: {exc.message}", where=str(target)) from exc

    def changes(self, older: str | None, newer: str) -> Iterator[Command]:
        parent = ["-p", str(self.path(older))] if older else []
        argv = ["btrfs", "send", "-q", "--no-data", *parent, str(self.path(newer))]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if proc.stdout is None or proc.stderr is None:  # (never: both are piped)
            raise CaptureError("btrfs send gave no pipes")
        try:
            yield from read(proc.stdout)
            if proc.stdout.read(1):  # (to the end of the pipe, so that btrfs send finishes its writes)
                raise CaptureError(f"btrfs send of {newer} went on after its end command", where=str(self.root))
        except CaptureError as exc:
            proc.kill()
            err = proc.stderr.read().decode(errors="replace").strip()
            raise CaptureError(f"{exc.message}{': ' + err if err else ''}", where=str(self.root)) from exc
        finally:
            proc.stdout.close()
            code = proc.wait()
            err = proc.stderr.read().decode(errors="replace").strip()
            proc.stderr.close()
        if code != 0:
            raise CaptureError(f"btrfs send of {newer} failed (exit {code}): {err}", where=str(self.root))


def changeset(commands: Iterator[Command]) -> ChangeSet:
    """The change set of a stream between two snapshots: its renames in order, every path it touches, and for
    each file the exact ranges written (``update_extent``, ``write``, ``clone``). A path the stream makes anew
    is compared whole (a new inode at an old name shares nothing with what the replica holds there). Paths in
    the stream name the tree as the commands leave it, so they are followed through renames as capture's
    events are (sync.changes)."""
    out = ChangeSet()
    for cmd in commands:
        name = cmd.name
        if name in ("subvol", "snapshot", "end") or not cmd.path:
            continue  # (b"": the root directory itself, whose own attributes are not replicated)
        if name == "rename":
            out.rename(cmd.path, cmd.bytes("path_to"))
        elif name in _NEW:
            out.content(cmd.path)
        elif name == "update_extent":
            out.extent(cmd.path, cmd.int("file_offset"), cmd.int("size"))
        elif name == "write":
            out.extent(cmd.path, cmd.int("file_offset"), len(cmd.bytes("data")))
        elif name == "clone":
            out.extent(cmd.path, cmd.int("file_offset"), cmd.int("clone_len"))
        elif name in _ATTRS:
            out.attributes(cmd.path)
        else:  # (every command of the format is named above)
            raise CaptureError(f"send stream: no change is known for {name} of {cmd.path!r}")
    return out

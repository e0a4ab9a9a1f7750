"""The lab's btrfs volumes: directories of a host that are a btrfs subvolume, for consistency points.

prod1's and dr1's ``/srv/db`` (the scenario `db`) each live on a btrfs filesystem of their own, made in a
sparse loop file in the host's directory (``hosts/NAME/srv_db.btrfs``, 4 GiB), holding one subvolume ``db``.

How the mounts are arranged, and why. The subvolume is mounted (``-o loop,subvol=db``) in the controller's
own mount namespace, on the host's private directory ``hosts/NAME/root/srv/db``, *before* the host's mount
namespace is made; the host then binds its private /srv recursively (``mount --rbind``, hosts.py), so the
copy of the mount tree its namespace starts with carries the subvolume to its /srv/db. One mount, two views
of the same subvolume: the host sees /srv/db (``btrfs subvolume show /srv/db`` works there, and snapshots
and ``btrfs send`` too), and the controller (the tests, the harness) reads the same files through
``LabHost.private_dir("/srv") / "db"``. Mounting inside the host's namespace instead would hide the data
from the controller, and a mount made on the controller after the host started would not reach the host
(its namespace's mounts are private copies); so a running host that lacks the mount is refused, not fixed.

Everything else in /srv stays on the ordinary filesystem.

``ensure`` is idempotent: a mounted volume is left alone, an existing loop file is reused with its data
(after a reboot, say). A plain directory left by an older lab is not hidden under the mount: its content
is moved into the subvolume (set aside first, copied with owners, modes and times, then removed, so an
interrupted move is finished by the next ``lab up``). ``remove`` (``lab down``) unmounts, detaches the
loop devices and deletes the loop file: the volume's data (prod1's PostgreSQL cluster, dr1's replica of it)
does not survive ``lab down``; the next ``lab up`` makes an empty one (and a new cluster, lab/pg.py).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from twinsite.apply.overlay import unescape
from twinsite.errors import CommandError, LabError
from twinsite.lab.topology import BTRFS_SIZE, BTRFS_VOLUMES, Lab, LabHost
from twinsite.proc import run, wait_until

SUBVOLUME = "db"  # the subvolume's name inside each loop filesystem (mounted with subvol=db)


@dataclass(frozen=True)
class Volume:
    """One btrfs volume of a lab host: the directory ``path`` (under /srv) inside the host."""

    host: LabHost
    path: str

    @property
    def slug(self) -> str:
        return self.path.strip("/").replace("/", "_")

    @property
    def image(self) -> Path:
        """The sparse loop file holding the filesystem."""
        return self.host.dir / f"{self.slug}.btrfs"

    @property
    def target(self) -> Path:
        """Where the subvolume is mounted on the controller: inside the host's private /srv."""
        return self.host.private_dir("/srv") / Path(self.path).relative_to("/srv")

    @property
    def staging(self) -> Path:
        """Where the filesystem's top level is mounted for a moment, to create the subvolume."""
        return self.host.dir / f"{self.slug}.btrfs-top"

    @property
    def aside(self) -> Path:
        """An older lab's plain directory, set aside while its content moves into the subvolume."""
        return self.host.dir / f"{self.slug}.pre-btrfs"


def volumes(h: LabHost) -> list[Volume]:
    return [Volume(h, p) for p in BTRFS_VOLUMES.get(h.name, ())]


@dataclass(frozen=True)
class Mount:
    fstype: str
    root: str  # the mounted path inside the filesystem (/db for our subvolume)
    source: str


def mount_at(path: Path | str, mountinfo: Path = Path("/proc/self/mountinfo")) -> Mount | None:
    """The topmost mount on ``path`` in the mount namespace ``mountinfo`` describes, if any."""
    target = os.path.normpath(str(path))
    found = None
    for line in mountinfo.read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, rest = left.split(), right.split()
        if len(fields) >= 5 and len(rest) >= 2 and unescape(fields[4]) == target:
            found = Mount(fstype=rest[0], root=unescape(fields[3]), source=unescape(rest[1]))
    return found


def _is_ours(m: Mount | None) -> bool:
    return m is not None and m.fstype == "btrfs" and m.root == f"/{SUBVOLUME}"


def _loops(image: Path) -> list[str]:
    """The loop devices backed by ``image``."""
    if not image.exists():
        return []
    out = run(["losetup", "--noheadings", "--output", "NAME", "--associated", str(image)], check=False)
    return out.stdout.decode().split()


def _umount(path: Path) -> None:
    while mount_at(path) is not None:
        try:
            run(["umount", str(path)], timeout=60)
        except CommandError as exc:
            raise LabError(
                f"cannot unmount {path}: {exc.message}",
                where=str(path),
                hint=f"a process on the controller still uses it (see `fuser -vm {path}`): stop it, then run "
                "`twinsite lab down` again",
            ) from exc


def _make(lab: Lab, v: Volume) -> None:
    """A new filesystem in a sparse loop file, holding the empty subvolume; made under a temporary name, so
    an existing ``image`` is always a finished one."""
    tmp = v.image.with_name(v.image.name + ".new")
    _umount(v.staging)
    tmp.unlink(missing_ok=True)
    with open(tmp, "wb") as f:
        f.truncate(BTRFS_SIZE)  # sparse: it takes only what the filesystem writes
    tmp.chmod(0o600)
    run(["mkfs.btrfs", "-q", "-L", f"{lab.name}-{v.host.name}-{v.slug}", str(tmp)], timeout=120)
    v.staging.mkdir(exist_ok=True)
    run(["mount", "-o", "loop", str(tmp), str(v.staging)], timeout=60)
    try:
        run(["btrfs", "subvolume", "create", str(v.staging / SUBVOLUME)], timeout=60)
    finally:
        _umount(v.staging)
    v.staging.rmdir()
    tmp.rename(v.image)


def _mount(v: Volume) -> None:
    run(["mount", "-o", f"loop,subvol={SUBVOLUME}", str(v.image), str(v.target)], timeout=60)
    if not _is_ours(mount_at(v.target)):
        raise LabError(f"mounting {v.image} on {v.target} did not give the btrfs subvolume {SUBVOLUME}")


def _set_aside(v: Volume) -> bool:
    """Move an older lab's plain, non-empty directory out of the way (True when one was)."""
    t = v.target
    if t.is_symlink() or (t.exists() and not t.is_dir()):
        raise LabError(
            f"{v.host.name}'s {v.path} ({t}) is not a directory, so the btrfs volume cannot be mounted there",
            where=str(t),
            hint="move it away, then run `twinsite lab up` again",
        )
    if not t.is_dir() or not any(t.iterdir()):
        return False
    if v.aside.exists():
        raise LabError(
            f"{v.host.name}'s {v.path} holds files ({t}), and so does {v.aside}, the older copy of it that an "
            "earlier `lab up` was moving into the btrfs volume",
            where=str(t),
            hint="keep one: merge or remove the other, then run `twinsite lab up` again",
        )
    t.rename(v.aside)
    return True


def _move_in(v: Volume, *, check_empty: bool) -> None:
    """Copy the set-aside directory into the mounted subvolume, then remove it."""
    if check_empty and any(v.target.iterdir()):
        # the existing loop file holds data too: refuse rather than mix two copies of the same directory
        _umount(v.target)
        v.target.rmdir()
        v.aside.rename(v.target)
        raise LabError(
            f"{v.host.name}'s {v.path} exists both as a plain directory ({v.target}) and in its btrfs volume "
            f"({v.image}), each with files",
            where=str(v.target),
            hint=f"keep one: to keep the volume, remove the directory's content; to keep the directory, delete "
            f"{v.image}; then run `twinsite lab up` again",
        )
    run(["cp", "-a", "--", f"{v.aside}/.", f"{v.target}/"], timeout=3600)  # owners, modes, times, links, xattrs
    st = v.aside.stat()
    os.chown(v.target, st.st_uid, st.st_gid)
    os.chmod(v.target, st.st_mode & 0o7777)
    os.utime(v.target, ns=(st.st_atime_ns, st.st_mtime_ns))
    shutil.rmtree(v.aside)


def ensure(lab: Lab, h: LabHost) -> None:
    """Mount the host's btrfs volumes on the controller, making them first if needed. Call it before the
    host's mount namespace is made (hosts.start). Idempotent."""
    for v in volumes(h):
        m = mount_at(v.target)
        if m is not None:
            if not _is_ours(m):
                raise LabError(
                    f"{v.target} ({h.name}'s {v.path}) has a {m.fstype} mount of {m.source} on it, not the lab's "
                    "btrfs volume",
                    where=str(v.target),
                    hint=f"unmount it (umount {v.target}), then run `twinsite lab up` again",
                )
            continue
        fresh = not v.image.exists()
        if fresh:
            _make(lab, v)
        moved = _set_aside(v)
        v.target.mkdir(parents=True, exist_ok=True)
        _mount(v)
        if v.aside.exists():  # (also when an interrupted `lab up` set it aside: then finish the move)
            _move_in(v, check_empty=moved and not fresh)


def check_running(h: LabHost, pid: int) -> None:
    """A running host must see its volumes (in the mount namespace of its process ``pid``), and the
    controller must see them too; a host started by an older lab, with plain directories, is refused."""
    for v in volumes(h):
        if not _is_ours(mount_at(v.path, Path(f"/proc/{pid}/mountinfo"))):
            raise LabError(
                f"lab host {h.name} runs with a plain {v.path}, not its btrfs volume (it was started by an older "
                "twinsite, or the volume was unmounted)",
                where=h.name,
                hint="run `twinsite lab down`, then `twinsite lab up` (it moves the directory's content into the "
                "volume)",
            )
        if not _is_ours(mount_at(v.target)):
            raise LabError(
                f"{h.name}'s btrfs volume {v.path} is no longer mounted on the controller at {v.target}",
                where=h.name,
                hint="run `twinsite lab down`, then `twinsite lab up`",
            )


def remove(h: LabHost) -> None:
    """Unmount the host's volumes, detach their loop devices and delete the loop files (after the host's
    namespace is gone: its copy of the mount holds the filesystem too). Idempotent."""
    for v in volumes(h):
        _umount(v.target)
        _umount(v.staging)
        if v.staging.exists():
            v.staging.rmdir()
        for image in (v.image, v.image.with_name(v.image.name + ".new")):
            _detach(h, image)
            image.unlink(missing_ok=True)


def _detach(h: LabHost, image: Path) -> None:
    """Detach the loop devices of ``image``: `mount -o loop` detaches its device on the last unmount by
    itself; this is for leftovers (a crash between losetup and mount, a `losetup` by hand)."""
    for dev in _loops(image):
        run(["losetup", "--detach", dev], check=False)  # (still mounted somewhere: detached on its unmount)
    if not wait_until(lambda: not _loops(image), timeout=10):
        devs = _loops(image)
        raise LabError(
            f"the loop device of {image} is still in use: {', '.join(devs)}",
            where=h.name,
            hint=f"a mount of it is left in some mount namespace (grep -l '{' '.join(devs)}' /proc/*/mountinfo); "
            "end the process that holds it, then run `twinsite lab down` again",
        )

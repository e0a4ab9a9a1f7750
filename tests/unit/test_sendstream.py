"""btrfs send streams read by twinsite.capture.sendstream, judged by btrfs-progs itself: on a real btrfs
filesystem (a loop file), seeded workloads with odd names, links, renames, deletes and xattrs between two
read-only snapshots; every command we read must be the one `btrfs receive --dump` prints, in order. Hostile
streams (a flipped bit, a torn end, an absurd length, another format) are refused, saying where."""

from __future__ import annotations

import io
import os
import random
import struct
import subprocess
from pathlib import Path

import pytest

from tests.btrfs import needs_btrfs
from tests.fsops import mutate, populate
from twinsite.capture import sendstream
from twinsite.capture.sendstream import Command, btrfs_crc
from twinsite.errors import CaptureError, ConfigError


def snapshot(mnt: Path, name: str) -> Path:
    subprocess.run(
        ["btrfs", "subvolume", "snapshot", "-r", str(mnt / "data"), str(mnt / name)], check=True, capture_output=True
    )
    return mnt / name


def send(new: Path, parent: Path | None, out: Path) -> bytes:
    argv = ["btrfs", "send", "-q", "--no-data", *(["-p", str(parent)] if parent else []), "-f", str(out), str(new)]
    subprocess.run(argv, check=True, capture_output=True)
    return out.read_bytes()


# -- how `btrfs receive --dump` prints (btrfs-progs cmds/receive-dump.c), for comparing line by line --------
ESCAPES = {7: "\\a", 8: "\\b", 27: "\\e", 12: "\\f", 10: "\\n", 13: "\\r", 9: "\\t", 11: "\\v", 32: "\\ ", 39: "\\'"}


def escaped(path: bytes) -> str:
    out = []
    for b in path:
        if b in ESCAPES:
            out.append(ESCAPES[b])
        elif b == 92:
            out.append("\\\\")
        elif b < 32 or b >= 127:
            out.append(f"\\{b:o}")
        else:
            out.append(chr(b))
    return "".join(out)


def ours(cmd: Command, snap: str) -> tuple[str, ...]:
    """A command as the dump shows it: name, full path, and the fields compared."""
    full = f"./{snap}/{escaped(cmd.path)}" if cmd.name not in ("subvol", "snapshot") else f"./{escaped(cmd.path)}"
    fields: dict[str, str] = {}
    if cmd.name == "rename":
        fields["dest"] = f"./{snap}/{escaped(cmd.bytes('path_to'))}"
    elif cmd.name in ("link", "symlink"):
        fields["dest"] = escaped(cmd.bytes("path_link"))
    elif cmd.name == "update_extent":
        fields.update(offset=str(cmd.int("file_offset")), len=str(cmd.int("size")))
    elif cmd.name == "truncate":
        fields["size"] = str(cmd.int("size"))
    elif cmd.name == "chmod":
        fields["mode"] = f"{cmd.int('mode'):o}"
    elif cmd.name == "chown":
        fields.update(gid=str(cmd.int("gid")), uid=str(cmd.int("uid")))
    elif cmd.name in ("set_xattr", "remove_xattr"):
        fields["name"] = escaped(cmd.bytes("xattr_name"))
    return (cmd.name, full, *(f"{k}={v}" for k, v in sorted(fields.items())))


def tokens(line: str) -> list[str]:
    """The dump's whitespace-separated fields; a backslash escapes the character after it (``\\ ``)."""
    out, word, i = [], "", 0
    while i < len(line):
        ch = line[i]
        if ch == "\\" and i + 1 < len(line):
            word, i = word + line[i : i + 2], i + 2
            continue
        if ch == " ":
            if word:
                out.append(word)
            word = ""
        else:
            word += ch
        i += 1
    return [*out, word] if word else out


def theirs(stream: Path) -> list[tuple[str, ...]]:
    dump = subprocess.run(["btrfs", "receive", "--dump", "-f", str(stream)], check=True, capture_output=True)
    out = []
    for line in dump.stdout.decode("latin-1").splitlines():  # (xattr data is printed raw)
        parts = tokens(line)
        name, full, rest = parts[0], parts[1], parts[2:]
        keep = {"rename": ("dest",), "link": ("dest",), "symlink": ("dest",), "update_extent": ("offset", "len"),
                "truncate": ("size",), "chmod": ("mode",), "chown": ("gid", "uid"),
                "set_xattr": ("name",), "remove_xattr": ("name",)}.get(name, ())  # fmt: skip
        fields = sorted(p for p in rest if p.split("=", 1)[0] in keep)
        out.append((name, full, *fields))
    return out


@needs_btrfs
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_command_read_is_the_one_btrfs_itself_dumps(volume: Path, seed: int) -> None:
    rng = random.Random(seed)
    data = volume / "data"
    populate(data, rng, files=60)
    first = snapshot(volume, ".s1")
    mutate(data, rng, ops=80)
    second = snapshot(volume, ".s2")
    for new, parent, name in ((first, None, "full.stream"), (second, first, "delta.stream")):
        raw = send(new, parent, volume.parent / name)
        cmds = list(sendstream.read(io.BytesIO(raw)))
        assert cmds[-1].name == "end" and cmds[0].name == ("snapshot" if parent else "subvol")
        mine = [ours(c, new.name) for c in cmds if c.name != "end"]
        assert mine == theirs(volume.parent / name)
        assert any(c.name == "update_extent" for c in cmds) and any(c.name in ("rename", "mkfile") for c in cmds)


@needs_btrfs
def test_a_write_is_listed_as_exactly_the_extent_it_changed(volume: Path) -> None:
    data = volume / "data"
    (data / "big").write_bytes(os.urandom(1 << 20))
    (data / "a dir").mkdir()
    first = snapshot(volume, ".s1")
    with open(data / "big", "r+b") as f:  # ten 4 KiB blocks in the middle, through the page cache
        f.seek(409600)
        f.write(os.urandom(40960))
    os.rename(data / "a dir", data / "b\ndir")
    second = snapshot(volume, ".s2")
    cmds = list(sendstream.read(io.BytesIO(send(second, first, volume.parent / "d.stream"))))
    extents = [(c.path, c.int("file_offset"), c.int("size")) for c in cmds if c.name == "update_extent"]
    assert extents == [(b"big", 409600, 40960)]
    assert [(c.path, c.bytes("path_to")) for c in cmds if c.name == "rename"] == [(b"a dir", b"b\ndir")]


def stream_of(*commands: tuple[int, bytes]) -> bytes:
    """A stream by hand: the header, then (command, attributes) with their checksums."""
    out = [sendstream.MAGIC, struct.pack("<I", 1)]
    for kind, payload in commands:
        header = struct.pack("<IHI", len(payload), kind, 0)
        out.append(struct.pack("<IHI", len(payload), kind, btrfs_crc(header + payload)) + payload)
    return b"".join(out)


def tlv(kind: int, value: bytes) -> bytes:
    return struct.pack("<HH", kind, len(value)) + value


GOOD = stream_of(
    (3, tlv(15, b"f") + tlv(3, (257).to_bytes(8, "little"))),
    (22, tlv(15, b"f") + tlv(18, (4096).to_bytes(8, "little")) + tlv(4, (8192).to_bytes(8, "little"))),
    (21, b""),
)


def test_a_stream_made_by_hand_reads_back() -> None:
    cmds = list(sendstream.read(io.BytesIO(GOOD)))
    assert [(c.name, c.path, c.attrs) for c in cmds] == [
        ("mkfile", b"f", {"ino": 257}),
        ("update_extent", b"f", {"file_offset": 4096, "size": 8192}),
        ("end", b"", {}),
    ]


@pytest.mark.parametrize(
    ("stream", "message"),
    [
        (b"not-a-stream-at-all", "not a btrfs send stream"),
        (sendstream.MAGIC + struct.pack("<I", 9), "version 9"),
        (GOOD[:-5], "ends inside"),  # torn
        (GOOD[: len(sendstream.MAGIC) + 4], "without its end command"),
        (GOOD[:40] + bytes([GOOD[40] ^ 1]) + GOOD[41:], "checksum"),  # a flipped bit
        (sendstream.MAGIC + struct.pack("<I", 1) + struct.pack("<IHI", 1 << 30, 3, 0), "at most"),  # absurd
        (stream_of((99, b"")), "unknown command 99"),
        (stream_of((3, tlv(15, b"f")[:-1] + b"")), "overruns"),
        (stream_of((22, tlv(18, b"\x01\x02"))), "2-byte integer"),
    ],
)
def test_a_hostile_or_broken_stream_is_refused_saying_where(stream: bytes, message: str) -> None:
    with pytest.raises(CaptureError, match=message):
        list(sendstream.read(io.BytesIO(stream)))


@needs_btrfs
def test_snapshots_of_a_subvolume_and_the_changes_between_them(volume: Path, tmp_path: Path) -> None:
    from twinsite.capture.snapshots import Btrfs

    data = volume / "data"
    snaps = Btrfs(data, volume / ".points")
    snaps.check()
    (data / "f").write_bytes(b"a" * 10000)
    first = snaps.take("p1")
    assert snaps.take("p1") == first  # (idempotent)
    (data / "f").write_bytes(b"b" * 10000)
    snaps.take("p2")
    (data / "f").write_bytes(b"c" * 10000)  # after the point: not in it
    assert (snaps.path("p2") / "f").read_bytes() == b"b" * 10000  # read-only, as it was at the point
    everything = [c.name for c in snaps.changes(None, "p1")]
    assert everything[0] == "subvol" and everything[-1] == "end"
    delta = [(c.name, c.path) for c in snaps.changes("p1", "p2") if c.name == "update_extent"]
    assert delta == [("update_extent", b"f")]
    snaps.delete("p1")
    snaps.delete("p1")
    assert not snaps.path("p1").exists()
    with pytest.raises(CaptureError, match="p1 failed: No such file"):  # (its parent is gone: btrfs says so)
        list(snaps.changes("p1", "p2"))
    (data / "sub").mkdir()
    with pytest.raises(ConfigError, match="is not a btrfs subvolume"):
        Btrfs(data / "sub", volume / ".points").check()
    with pytest.raises(ConfigError, match="is not a btrfs subvolume"):
        Btrfs(tmp_path, volume / ".points").check()

"""btrfs send streams: the exact list of what the kernel changed between two read-only snapshots of a
subvolume (``btrfs send --no-data -p OLD NEW``), or everything in one (without ``-p``).

The stream (btrfs-progs' send-stream format, version 1) is a header, ``btrfs-stream\\0`` and a u32 version,
then commands: a u32 payload length, a u16 command, a u32 CRC-32C of the command with that field zeroed, and
the payload, a run of attributes (u16 type, u16 length, value). All integers are little-endian. Paths are
bytes relative to the snapshot's root, never normalised. With ``--no-data`` a changed range of a file comes
as ``update_extent`` (offset and length, the bytes to be read from the newer snapshot), never as data.

:func:`read` yields one :class:`Command` per command as it arrives, checking each checksum and refusing a
length past :data:`MAX_COMMAND` before reading it: what a stream cannot say (a version, a command, a broken
checksum, a torn end) is a :class:`~twinsite.errors.CaptureError` naming the offset.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO

import crc32c

from twinsite.errors import CaptureError

MAGIC = b"btrfs-stream\0"
VERSIONS = (1,)
MAX_COMMAND = 16 << 20  # (a v1 command is at most 64 KiB of payload; anything past this is not a stream)
HEADER = struct.Struct("<IHI")  # payload length, command, crc32c
TLV = struct.Struct("<HH")

COMMANDS = {
    1: "subvol", 2: "snapshot", 3: "mkfile", 4: "mkdir", 5: "mknod", 6: "mkfifo", 7: "mksock", 8: "symlink",
    9: "rename", 10: "link", 11: "unlink", 12: "rmdir", 13: "set_xattr", 14: "remove_xattr", 15: "write",
    16: "clone", 17: "truncate", 18: "chmod", 19: "chown", 20: "utimes", 21: "end", 22: "update_extent",
}  # fmt: skip

# attribute type -> (name, how to read it)
ATTRIBUTES = {
    1: ("uuid", "bytes"), 2: ("ctransid", "u64"), 3: ("ino", "u64"), 4: ("size", "u64"), 5: ("mode", "u64"),
    6: ("uid", "u64"), 7: ("gid", "u64"), 8: ("rdev", "u64"), 9: ("ctime", "time"), 10: ("mtime", "time"),
    11: ("atime", "time"), 12: ("otime", "time"), 13: ("xattr_name", "bytes"), 14: ("xattr_data", "bytes"),
    15: ("path", "bytes"), 16: ("path_to", "bytes"), 17: ("path_link", "bytes"), 18: ("file_offset", "u64"),
    19: ("data", "bytes"), 20: ("clone_uuid", "bytes"), 21: ("clone_ctransid", "u64"),
    22: ("clone_path", "bytes"), 23: ("clone_offset", "u64"), 24: ("clone_len", "u64"),
}  # fmt: skip

Value = int | bytes | tuple[int, int]


@dataclass(frozen=True)
class Command:
    """One command of a stream: its name, the path it is about (b"" for the stream's own commands) and its
    other attributes by name (integers; bytes; times as (seconds, nanoseconds))."""

    name: str
    path: bytes = b""
    attrs: dict[str, Value] = field(default_factory=dict)

    def int(self, name: str) -> int:
        value = self.attrs.get(name)
        if not isinstance(value, int):
            raise CaptureError(f"send stream: {self.name} of {self.path!r} has no {name}")
        return value

    def bytes(self, name: str) -> bytes:
        value = self.attrs.get(name)
        if not isinstance(value, bytes):
            raise CaptureError(f"send stream: {self.name} of {self.path!r} has no {name}")
        return value


def btrfs_crc(data: bytes | bytearray | memoryview) -> int:
    """btrfs' CRC-32C: seed ~0, no final inversion (btrfs-progs' ``crc32c(0, ...)`` of the kernel's form)."""
    return crc32c.crc32c(data, value=0xFFFFFFFF) ^ 0xFFFFFFFF


def _exactly(stream: IO[bytes], n: int, offset: int, what: str) -> bytes:
    out = stream.read(n) if n else b""
    if len(out) != n:
        raise CaptureError(f"send stream ends inside {what} at byte {offset} ({len(out)} of {n} bytes)")
    return out


def _attribute(kind: str, raw: bytes, offset: int) -> Value:
    if kind == "bytes":
        return raw
    if kind == "u64":
        if len(raw) != 8:
            raise CaptureError(f"send stream: a {len(raw)}-byte integer at byte {offset}")
        return int.from_bytes(raw, "little")
    if len(raw) != 12:
        raise CaptureError(f"send stream: a {len(raw)}-byte time at byte {offset}")
    sec, nsec = struct.unpack("<QI", raw)
    return (sec, nsec)


def _command(kind: int, payload: bytes, offset: int) -> Command:
    name = COMMANDS.get(kind)
    if name is None:
        raise CaptureError(f"send stream: unknown command {kind} at byte {offset}")
    attrs: dict[str, Value] = {}
    pos = 0
    while pos < len(payload):
        if pos + TLV.size > len(payload):
            raise CaptureError(f"send stream: a torn attribute in {name} at byte {offset + HEADER.size + pos}")
        atype, alen = TLV.unpack_from(payload, pos)
        pos += TLV.size
        if pos + alen > len(payload):
            raise CaptureError(f"send stream: attribute {atype} of {name} overruns its command at byte {offset}")
        spec = ATTRIBUTES.get(atype)
        if spec is None:
            raise CaptureError(f"send stream: unknown attribute {atype} in {name} at byte {offset}")
        attrs[spec[0]] = _attribute(spec[1], payload[pos : pos + alen], offset)
        pos += alen
    path = attrs.pop("path", b"")
    return Command(name, path if isinstance(path, bytes) else b"", attrs)


def read(stream: IO[bytes]) -> Iterator[Command]:
    """The commands of a send stream, in order, checked as they are read (``end`` included)."""
    head = _exactly(stream, len(MAGIC) + 4, 0, "the stream's header")
    if head[: len(MAGIC)] != MAGIC:
        raise CaptureError("not a btrfs send stream (no btrfs-stream header)")
    version = int.from_bytes(head[len(MAGIC) :], "little")
    if version not in VERSIONS:
        raise CaptureError(f"btrfs send stream version {version} is not one this reads ({VERSIONS})")
    offset = len(head)
    while True:
        header = stream.read(HEADER.size)
        if not header:
            raise CaptureError(f"send stream ends at byte {offset} without its end command")
        if len(header) != HEADER.size:
            raise CaptureError(f"send stream ends inside a command header at byte {offset}")
        length, kind, crc = HEADER.unpack(header)
        if length > MAX_COMMAND:
            raise CaptureError(f"send stream: a command of {length} bytes at byte {offset} (at most {MAX_COMMAND})")
        payload = _exactly(stream, length, offset, "a command")
        if btrfs_crc(header[:6] + b"\0\0\0\0" + payload) != crc:
            raise CaptureError(f"send stream: command at byte {offset} fails its checksum")
        cmd = _command(kind, payload, offset)
        yield cmd
        offset += HEADER.size + length
        if cmd.name == "end":
            return

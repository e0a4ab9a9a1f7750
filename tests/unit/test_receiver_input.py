"""Issue 18, item 11: malformed input never kills `twinsite receive` without a word. Each case is fed to the
real process (as the forced command runs it): it answers with an ERROR frame that names what was wrong, and
writes nothing for it."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
import xxhash

from tests.unit.receiving import Standby, blob, recs
from twinsite.cdp.log import RewindLog
from twinsite.journal.record import HAS_META, HEAD, MAGIC, META, TAIL, Meta, Op, Record
from twinsite.transport.frames import Kind, pack_batch, pack_json


def hello(root: Path, **more: object) -> bytes:
    return pack_json(Kind.HELLO, {"scenario": "app", "root_index": 0, "root": str(root), **more})


def forged_setattr(xattr_block: bytes) -> bytes:
    """A SETATTR of `f1` whose xattr block is ``xattr_block`` as is, with a valid checksum: a sender that lies."""
    path = b"f1"
    body = HEAD.pack(MAGIC, Op.SETATTR, HAS_META, len(path), 0, 0, 2, 0, 0.0)
    body += META.pack(0o644, 0, 0, 0, len(xattr_block)) + path + xattr_block
    return body + TAIL.pack(xxhash.xxh3_64_intdigest(body))


def batch(*records: bytes) -> bytes:
    return pack_batch(b"".join(records), compress=False)


SETATTR = Record(seq=2, ts=0.0, op=Op.SETATTR, path=b"f1", meta=Meta(0o644, 0, 0, 0, ((b"user.a\0b", b"v"),)))
TERABYTE = Record(seq=2, ts=0.0, op=Op.TRUNCATE, path=b"f1", offset=1 << 40)  # (sparse: no data)
CASES = {
    "a NUL in a link's target": (
        [batch(Record(seq=1, ts=0.0, op=Op.SYMLINK, path=b"l", path2=b"/etc/\0passwd").encode())],
        "a NUL in a path or link target of record seq 1",
    ),
    "a NUL in an xattr's name": ([batch(blob(recs(1, 1)), SETATTR.encode())], "xattr name b'user.a\\x00b'"),
    "an xattr block too short to count": ([batch(blob(recs(1, 1)), forged_setattr(b"\1\0"))], "xattr block of 2"),
    "an xattr entry past the block": (
        [batch(blob(recs(1, 1)), forged_setattr(struct.pack("<I", 3) + b"\1"))],
        "xattr block overruns its length",
    ),
    "signatures of 0-byte blocks": (
        [batch(blob(recs(1, 1))), pack_json(Kind.SIGS_REQ, {"block_size": 0, "paths": [b"f1".hex()]})],
        "a SIGS_REQ with block_size 0",
    ),
    "signatures of a path that is not hex": (
        [pack_json(Kind.SIGS_REQ, {"block_size": 4096, "paths": ["zz"]})],
        "a SIGS_REQ path is not hex",
    ),
    # found by make fuzz: the signatures of a sparse 1 TiB file were computed for minutes, then could not be sent
    "signatures too many for one frame": (
        [batch(blob(recs(1, 1)), TERABYTE.encode()), pack_json(Kind.SIGS_REQ, {"block_size": 4096, "paths": ["6631"]})],
        "the signatures of 'f1' (268435456 blocks of 4096 bytes) do not fit in a SIGS frame",
    ),
    "an epoch that is not a number": ([], "a HELLO with epoch 'x'"),
    "a host that is not a name": ([], "a HELLO with host ['prod1']"),
}


@pytest.mark.parametrize("case", CASES)
def test_malformed_input_gets_an_error_frame_naming_it(tmp_path: Path, case: str) -> None:
    frames, said = CASES[case]
    dr1 = Standby(tmp_path)
    greeting = {"epoch": "x"} if "epoch" in case else {"host": ["prod1"]} if "host" in case else {}
    answers = dr1.receive(hello(dr1.root, **greeting), *frames)
    assert answers[-1][0] == Kind.ERROR, (answers, dr1.last.stderr[-2000:])
    assert said in str(answers[-1][1]["message"]), answers[-1]
    assert b"Traceback" not in dr1.last.stderr, dr1.last.stderr[-2000:]
    assert not (dr1.root / "l").exists()


def test_a_defect_is_still_an_error_frame(tmp_path: Path) -> None:
    """Whatever escapes the checks (here a root the declaration makes unusable: a file where the directory
    should be) ends the session with an ERROR frame, not a bare exit."""
    dr1 = Standby(tmp_path)
    dr1.root.write_bytes(b"not a directory")
    answers = dr1.receive(hello(dr1.root), batch(blob(recs(1, 1))))
    assert [k for k, _ in answers] == [Kind.ERROR], (answers, dr1.last.stderr[-2000:])


def test_with_cdp_a_write_under_a_file_is_a_counted_divergence_not_an_error(tmp_path: Path) -> None:
    """Item 7: the replica holds a file where the source has a directory. The undo capture (CDP is on here) finds
    nothing to undo, the applier refuses the record, and the sender hears of a divergence (it then compares
    the trees), not an ERROR on every resend."""
    dr1 = Standby(tmp_path)
    under_a_file = Record(seq=4, ts=0.0, op=Op.WRITE, path=b"f1/x", data=b"x")
    answers = dr1.receive(hello(dr1.root), batch(blob(recs(1, 3))), batch(under_a_file.encode()))
    assert answers[-1] == (Kind.ACK, {"seq": 4, "diverged": 1}), answers
    assert (dr1.root / "f1").read_bytes() == b""


def test_a_tree_deeper_than_pythons_recursion_limit_is_listed_deleted_and_its_undo_logged(tmp_path: Path) -> None:
    """Item 11: depth is data too. 1,050 nested directories (Python stops recursing at 1,000) are made, listed,
    and deleted with CDP on (the undo rebuilds the whole tree); nothing recurses per level."""
    dr1 = Standby(tmp_path)
    made, path = [], b"d"
    for seq in range(1, 1051):
        made.append(Record(seq=seq, ts=0.0, op=Op.MKDIR, path=path, meta=Meta(0o755, 0, 0, 0)))
        path += b"/d"
    answers = dr1.receive(
        hello(dr1.root),
        pack_batch(b"".join(r.encode() for r in made), compress=True),
        pack_json(Kind.MANIFEST_REQ, {}),
        batch(Record(seq=1051, ts=0.0, op=Op.DELETE, path=b"d").encode()),
    )
    assert [k for k, _ in answers] == [Kind.READY, Kind.ACK, Kind.MANIFEST, Kind.ACK], dr1.last.stderr[-2000:]
    assert len(answers[2][1]["entries"]) == 1050 and list(dr1.root.iterdir()) == []  # type: ignore[arg-type]
    newest = next(RewindLog(dr1.recv.rewind_log).newest_first(above=1050))
    assert sum(1 for r in newest.undo_records() if r.op == Op.MKDIR) == 1050

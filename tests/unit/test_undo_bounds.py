"""The undo of big changes in bounded memory (RELIABILITY.md invariant 6), and groups of any size in the rewind log.

Real files, in a child process whose address space is capped far below the data it moves (RLIMIT_AS: systemd
scopes need a systemd init, which test hosts may not have), reporting its peak RSS: a 1 GiB file truncated to
zero, a file replaced by an empty one and a directory tree deleted, captured and logged the way the receiver does
it, then rewound and brought forward again, compared byte for byte. And a group larger than 4 GiB (the largest
blob the reader used to take: a bigger one made the log's tail look torn and it was cut off) is logged, found
whole when the log is opened again, and read back intact.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import xxhash

from twinsite.cdp.log import RewindLog, make_group
from twinsite.journal.record import Op, Record
from twinsite.tree import digest

MIB = 1 << 20
CAP = 512 * MIB  # the child's address space (the interpreter itself takes about 30 MiB)
PEAK = 128 * MIB  # what its resident set may reach: whatever the data, a few pieces of it at a time

CHILD = """
import json, os, resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({cap}, {cap}))
{peak}
from pathlib import Path
from twinsite.apply.applier import Applier
from twinsite.cdp.log import RewindLog, make_group
from twinsite.cdp.rewind import move
from twinsite.cdp.undo import capture
from twinsite.journal.record import Meta, Op, Record
from twinsite.state.layout import ReceiverState

root, state, phase = Path(sys.argv[1]), ReceiverState(Path(sys.argv[2])), sys.argv[3]
out = {{}}
if phase == "apply":  # engine.receiver's _apply_run
    batch = [
        Record(1, 10.0, Op.TRUNCATE, b"big", offset=0),
        Record(2, 10.0, Op.SETATTR, b"big", meta=Meta(0o600, os.getuid(), os.getgid(), 10**18)),
        Record(3, 11.0, Op.CREATE, b"replaced", meta=Meta(0o644, os.getuid(), os.getgid(), 0)),
        Record(4, 12.0, Op.DELETE, b"tree"),
    ]
    log = RewindLog(state.rewind_log)
    ap = Applier(root)
    log.append(make_group(batch, capture(ap.root_fd, batch, lazy=True)))  # fsynced before applying
    for rec in batch:
        ap.apply(rec)
    ap.commit()
    ap.close()
    out["log_bytes"] = log.disk_bytes()
else:
    log = RewindLog(state.rewind_log)  # opened again: every group of the newest segment is checked
    out["dropped_tail"], out["last_seq"] = log.dropped_tail, log.last_seq
    move(root, state, log, 4, 0 if phase == "back" else 4)
log.close()
out["peak"] = peak()
print(json.dumps(out))
"""


PEAK_RSS = """
def peak():  # this process's own high-water mark (ru_maxrss would count the parent's RSS at the fork)
    line = next(x for x in open("/proc/self/status") if x.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024
"""


def run_child(script: str, *args: object) -> dict[str, int]:
    done = subprocess.run(
        [sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True, check=False, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out: dict[str, int] = json.loads(done.stdout)
    return out


def fill(path: Path, size: int, seed: int) -> None:
    """Real data (no zero block: a rebuilt file leaves all-zero blocks as holes), each MiB different."""
    block = bytearray(random.Random(seed).randbytes(MIB))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for i in range(0, size, MIB):
            block[:8] = i.to_bytes(8, "little")
            os.pwrite(fd, block[: min(MIB, size - i)], i)
    finally:
        os.close(fd)


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Path]:
    """A directory removed after the test (gigabytes: not kept with pytest's last temporary directories)."""
    yield tmp_path
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_undoing_a_truncate_a_replace_and_a_tree_delete_of_gigabytes_stays_in_bounded_memory(scratch: Path) -> None:
    root, state = scratch / "root", scratch / "state"
    (root / "tree" / "sub").mkdir(parents=True)
    fill(root / "big", 1024 * MIB, 1)
    fill(root / "replaced", 128 * MIB + 123, 2)
    fill(root / "tree" / "a", 96 * MIB, 3)
    fill(root / "tree" / "sub" / "b", 32 * MIB + 5, 4)
    (root / "tree" / "sub" / "small").write_bytes(b"x" * 100)
    os.link(root / "tree" / "a", root / "tree" / "sub" / "a-again")
    os.symlink("sub/b", root / "tree" / "link")
    before = digest(root)
    script = CHILD.format(cap=CAP, peak=PEAK_RSS)

    applied = run_child(script, root, state, "apply")
    assert (root / "big").stat().st_size == 0 and not (root / "tree").exists()
    assert applied["log_bytes"] > 1280 * MIB  # every old byte is in the log ...
    after = digest(root)
    back = run_child(script, root, state, "back")
    assert (back["dropped_tail"], back["last_seq"]) == (0, 4)
    assert digest(root) == before  # ... and comes back, byte for byte
    forward = run_child(script, root, state, "forward")
    assert digest(root) == after
    peaks = {"apply": applied["peak"], "back": back["peak"], "forward": forward["peak"]}
    assert max(peaks.values()) < PEAK, f"peak RSS {peaks} for 1.25 GiB of old data"


BIG_GROUP = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({cap}, {cap}))
{peak}
from pathlib import Path
import xxhash
from twinsite.cdp.log import RewindLog, make_group
from twinsite.journal.record import Op, Record

MIB, PIECES = 1 << 20, {pieces}
where = Path(sys.argv[1])
base = bytes(range(256)) * 4096

def pieces():
    for i in range(PIECES):
        yield Record(2, 2.0, Op.WRITE, b"big", offset=i * MIB, data=i.to_bytes(8, "little") + base[8:])

log = RewindLog(where)
log.append(make_group([Record(1, 1.0, Op.WRITE, b"f", data=b"one")], [Record(1, 1.0, Op.TRUNCATE, b"f")]))
log.append(make_group([Record(2, 2.0, Op.TRUNCATE, b"big", offset=0)], pieces()))
log.close()
again = RewindLog(where)  # the big group is the last of the newest segment, where a torn append would be
out = {{"dropped_tail": again.dropped_tail, "last_seq": again.last_seq}}
groups = list(again.groups())
out["spans"] = [[g.first_seq, g.last_seq, g.undo_len] for g in groups]
h, n = xxhash.xxh3_64(), 0
for rec in groups[-1].undo_records():
    assert (rec.seq, rec.op, rec.path, rec.offset) == (2, Op.WRITE, b"big", n * MIB), rec.offset
    h.update(rec.data)
    n += 1
out["read"], out["digest"] = n, h.intdigest()
out["forward"] = [r.op.name for r in groups[-1].forward_records()]
again.append(make_group([Record(3, 3.0, Op.DELETE, b"big")], []))  # the log goes on after it
again.close()
out["then"] = RewindLog(where).last_seq
out["peak"] = peak()
print(json.dumps(out))
"""


def test_a_group_larger_than_4_gib_is_logged_found_whole_again_and_read_back_intact(scratch: Path) -> None:
    pieces = (1 << 32) // MIB + 3  # undo records of 1 MiB of data: 4 GiB and 3 MiB in all
    out = run_child(BIG_GROUP.format(cap=CAP, peak=PEAK_RSS, pieces=pieces), scratch / "rewind")
    assert (out["dropped_tail"], out["last_seq"]) == (0, 2)
    assert [s[:2] for s in out["spans"]] == [[1, 1], [2, 2]] and out["spans"][1][2] > 1 << 32
    base = bytes(range(256)) * 4096
    h = xxhash.xxh3_64()
    for i in range(pieces):
        h.update(i.to_bytes(8, "little") + base[8:])
    assert (out["read"], out["digest"]) == (pieces, h.intdigest())
    assert out["forward"] == ["TRUNCATE"] and out["then"] == 3
    assert out["peak"] < PEAK


KILLED = """
import resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, ({cap}, {cap}))
from pathlib import Path
from twinsite.cdp.log import RewindLog, make_group
from twinsite.journal.record import Op, Record

log = RewindLog(Path(sys.argv[1]))
log.append(make_group([Record(1, 1.0, Op.WRITE, b"f", data=b"one")], [Record(1, 1.0, Op.TRUNCATE, b"f")]))

def pieces():
    for i in range(1024):
        if i == 300:
            print("streaming", flush=True)
            time.sleep(60)  # killed here
        yield Record(2, 2.0, Op.WRITE, b"big", offset=i << 20, data=bytes([i % 251 + 1]) * (1 << 20))

log.append(make_group([Record(2, 2.0, Op.TRUNCATE, b"big", offset=0)], pieces()))
"""


def test_an_append_killed_or_failing_midway_leaves_only_whole_groups(scratch: Path) -> None:
    """kill -9 in the middle of streaming a group larger than the child's memory: what reached the segment
    is a torn tail, dropped at open, and the group before it stays. An append whose undo fails midway (a
    read error, a full disk) is cut off at once. Either way the log takes the batch again afterwards."""
    where = scratch / "rewind"
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED.format(cap=CAP), str(where)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stdout.readline() == "streaming\n"
    child.kill()
    child.wait()
    (seg,) = where.iterdir()
    assert seg.stat().st_size > 256 * MIB  # streamed as it was read, not gathered in memory first
    log = RewindLog(where)
    assert log.dropped_tail > 256 * MIB and log.last_seq == 1
    assert [r.data for g in log.groups() for r in g.forward_records()] == [b"one"]

    def failing() -> Iterator[Record]:
        for i in range(10):
            yield Record(2, 2.0, Op.WRITE, b"big", offset=i << 20, data=b"x" * MIB)
        raise OSError(28, "No space left on device")

    size = seg.stat().st_size
    with pytest.raises(OSError, match="No space"):
        log.append(make_group([Record(2, 2.0, Op.TRUNCATE, b"big", offset=0)], failing()))
    assert seg.stat().st_size == size and log.last_seq == 1
    log.append(make_group([Record(2, 2.0, Op.DELETE, b"big")], []))
    log.close()
    again = RewindLog(where)
    assert (again.dropped_tail, again.last_seq) == (0, 2)
    assert [(g.first_seq, g.last_seq) for g in again.groups()] == [(1, 1), (2, 2)]
    again.close()

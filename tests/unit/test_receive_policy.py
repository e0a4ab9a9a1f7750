"""Issue 18, item 2: the standby acts only on its own declaration. `twinsite receive` runs as the replication
key's forced command runs it, a real process reading frames on stdin; the stream names a scenario and a root,
and whatever else a (compromised) sender says is not policy."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

from tests.unit.receiving import TWINSITE, Standby, blob, recs
from twinsite.cdp.log import RewindLog
from twinsite.transport.frames import Kind, pack_batch, pack_json


def hello(root: Path | str, **more: object) -> bytes:
    return pack_json(Kind.HELLO, {"scenario": "app", "root_index": 0, "root": str(root), **more})


def test_a_hello_that_turns_cdp_off_does_not_delete_the_standbys_rewind_log(tmp_path: Path) -> None:
    dr1 = Standby(tmp_path)
    first = dr1.receive(hello(dr1.root), pack_batch(blob(recs(1, 3)), compress=False))
    assert [k for k, _ in first] == [Kind.READY, Kind.ACK]
    assert [(g.first_seq, g.last_seq) for g in RewindLog(dr1.recv.rewind_log).groups()] == [(1, 3)]
    # A compromised active host says: no CDP, no points, and ships one more batch.
    evil = hello(dr1.root, cdp={"enabled": False}, consistency="file", epoch=0, host="prod1")
    second = dr1.receive(evil, pack_batch(blob(recs(4, 1)), compress=False))
    assert second[-1] == (Kind.ACK, {"seq": 4, "diverged": 0})
    groups = [(g.first_seq, g.last_seq) for g in RewindLog(dr1.recv.rewind_log).groups()]
    assert groups == [(1, 3), (4, 4)]  # the history is dr1's to keep, by dr1's own declaration


def test_the_stream_cannot_choose_a_directory(tmp_path: Path) -> None:
    dr1 = Standby(tmp_path)
    elsewhere = tmp_path / "dot-ssh"
    elsewhere.mkdir()
    # the options of yesterday's receiver are gone: the command line names no replica and no state
    for opt in ("--root", "--state"):
        proc = subprocess.run([TWINSITE, "receive", opt, str(elsewhere)], capture_output=True, timeout=60)
        assert proc.returncode == 2 and b"unrecognized arguments" in proc.stderr
    # a HELLO naming another root is refused, and nothing is written there nor in the declared root
    answers = dr1.receive(hello(elsewhere), pack_batch(blob(recs(1, 1)), compress=False))
    assert answers[0][0] == Kind.ERROR and "this host declares" in str(answers[0][1]["message"])
    assert list(elsewhere.iterdir()) == [] and not (dr1.root / "f1").exists()


@pytest.mark.parametrize(
    ("said", "refusal"),
    [
        ({"scenario": "payroll", "root_index": 0}, "dr1 does not serve scenario 'payroll': it is not declared in"),
        ({"scenario": "app", "root_index": 1}, "scenario 'app' has 1 root(s) here; the sender asked for root 1"),
        ({"scenario": "app", "root_index": -1}, "the sender asked for root -1"),
        ({"scenario": "app", "root_index": "0"}, "a HELLO names a scenario (a string) and a root index"),
        ({"scenario": "../app", "root_index": 0}, "does not serve scenario '../app'"),
        ({"root": "/root/.ssh"}, "a HELLO names a scenario"),
        ({"scenario": "app", "root_index": 0, "host": "prod9", "epoch": 7}, "from 'prod9', not a host of it"),
    ],
)
def test_a_stream_for_what_this_host_does_not_serve_is_refused(
    tmp_path: Path, said: dict[str, object], refusal: str
) -> None:
    dr1 = Standby(tmp_path)
    answers = dr1.receive(pack_json(Kind.HELLO, said), pack_batch(blob(recs(1, 1)), compress=False))
    assert [k for k, _ in answers] == [Kind.ERROR]
    assert refusal in str(answers[0][1]["message"]), answers
    assert not dr1.root.exists() and not dr1.state_dir.exists()


def test_a_malformed_declaration_is_named_as_such_not_as_a_missing_one(tmp_path: Path) -> None:
    dr1 = Standby(tmp_path)
    (dr1.config / "app.yml").write_text((dr1.config / "app.yml").read_text() + "bogus_key: 1\n")
    answers = dr1.receive(hello(dr1.root), pack_batch(blob(recs(1, 1)), compress=False))
    said = str(answers[0][1]["message"])
    assert [k for k, _ in answers] == [Kind.ERROR] and "dr1 cannot serve scenario 'app'" in said, answers
    assert "bogus_key" in said and "not declared" not in said, said
    assert not dr1.root.exists()


def test_a_host_not_named_by_the_scenario_refuses_it(tmp_path: Path) -> None:
    dr1 = Standby(tmp_path)
    answers = dr1.receive(hello(dr1.root), host="dr2")
    assert answers[0][0] == Kind.ERROR and "dr2 is not a host of scenario 'app'" in str(answers[0][1]["message"])


def test_a_session_begins_with_a_hello(tmp_path: Path) -> None:
    dr1 = Standby(tmp_path)
    answers = dr1.receive(pack_batch(blob(recs(1, 1)), compress=False))
    assert answers == [(Kind.ERROR, answers[0][1])] and "begins with a HELLO" in json.dumps(answers[0][1])
    assert not dr1.root.exists()


@pytest.mark.parametrize(
    ("peer", "says", "taken"),
    [("prod1", "prod1", True), ("prod1", "prod2", False), ("prod2", "prod2", False), ("prod2", "prod1", False)],
)
def test_the_forced_command_names_whose_key_it_is(tmp_path: Path, peer: str, says: str, taken: bool) -> None:
    """prod2 (a host of another scenario) holds a replication key too: with it, it may not feed `app`, whatever
    its HELLO says."""
    dr1 = Standby(tmp_path)
    frames = (hello(dr1.root, host=says), pack_batch(blob(recs(1, 1)), compress=False))
    answers = dr1.receive(*frames, args=("--peer", peer))
    if taken:
        assert [k for k, _ in answers] == [Kind.READY, Kind.ACK] and (dr1.root / "f1").exists()
    else:
        assert [k for k, _ in answers] == [Kind.ERROR], answers
        assert f"with {peer}'s key, saying it comes from {says}" in str(answers[0][1]["message"])
        assert not dr1.root.exists()


def test_retention_runs_by_the_standbys_clock_not_the_times_the_sender_wrote(tmp_path: Path) -> None:
    """Records stamped in 1970 by a (compromised) sender are history appended now: an hour's retention keeps
    them. A segment last appended to two hours ago, by this host's clock, goes."""
    from twinsite.cdp.log import make_group
    from twinsite.journal.record import Op, Record

    log = RewindLog(tmp_path / "rewind", segment_size=1 << 20)
    for seq in range(1, 5):  # four groups of 600 KiB: a new segment every other group
        rec = Record(seq=seq, ts=0.0, op=Op.WRITE, path=b"f", data=b"x" * (600 << 10))
        log.append(make_group([rec], []))
    segments = log.segments()
    assert len(segments) >= 2
    assert log.prune(max_age=3600, max_size=None) == 0 and log.segments() == segments
    two_hours_ago = time.time() - 7200
    os.utime(segments[0], (two_hours_ago, two_hours_ago))
    assert log.prune(max_age=3600, max_size=None) > 0 and log.segments() == segments[1:]


PRIVILEGED = ((b"security.capability", b"\x01\x00\x00\x02" + bytes(16)), (b"trusted.x", b"t"), (b"user.a", b"u"))


@pytest.mark.parametrize("declared", ["", ", privileged_metadata: keep"])
def test_privileged_metadata_is_the_standbys_policy_dropped_unless_it_keeps_it(tmp_path: Path, declared: str) -> None:
    """Item 10: a setuid-root program sent by a (compromised) active host is not one on the standby, unless the
    standby declares `privileged_metadata: keep`. A directory's setgid bit only passes on its group: kept."""
    from twinsite.journal.record import Meta, Op, Record

    dr1 = Standby(tmp_path, replication=declared)
    sent = [
        Record(seq=1, ts=0.0, op=Op.CREATE, path=b"sh", meta=Meta(0o6755, 0, 0, 0, PRIVILEGED)),
        Record(seq=2, ts=0.0, op=Op.MKDIR, path=b"shared", meta=Meta(0o2775, 0, 100, 0)),
    ]
    answers = dr1.receive(hello(dr1.root), pack_batch(blob(sent), compress=False))
    assert answers[-1] == (Kind.ACK, {"seq": 2, "diverged": 0}), answers
    mode = stat.S_IMODE((dr1.root / "sh").stat().st_mode)
    xattrs = sorted(os.listxattr(dr1.root / "sh"))
    if declared:
        assert mode == 0o6755 and xattrs == ["security.capability", "trusted.x", "user.a"]
    else:
        assert mode == 0o755 and xattrs == ["user.a"]
    assert stat.S_IMODE((dr1.root / "shared").stat().st_mode) == 0o2775


def test_the_sender_plans_and_verify_compares_what_the_standby_holds_without_privileges(tmp_path: Path) -> None:
    """With the default policy the sender ships no setuid bit (its picture of the replica stays true: nothing is
    sent again at every comparison) and `verify` compares the source as the replica holds it."""
    from tests.unit.replicating import Pipe
    from twinsite.apply.applier import Applier
    from twinsite.tree import entries

    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    (src / "helper").write_bytes(b"#!/bin/sh\n")
    (src / "helper").chmod(0o4755)
    os.setxattr(src / "helper", "trusted.x", b"t")
    pipe = Pipe(src, dst)
    pipe.applier = Applier(dst, drop_privileged=True)
    pipe.planner.drop_privileged = True
    records = list(pipe.planner.plan_all())
    assert all(r.meta is None or not r.meta.mode & 0o6000 for r in records), records
    pipe.ship(records)
    pipe.settled()  # (the file was read at once: read again once its mtime has settled)
    assert list(pipe.planner.plan_all()) == []  # nothing differs from what the planner believes
    replica, source = entries(dst), {k: e.unprivileged() for k, e in entries(src).items()}
    assert replica == source and stat.S_IMODE((dst / "helper").stat().st_mode) == 0o755


def test_a_standby_draining_the_active_host_reads_the_active_side_without_privileges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A planned switchover's drain runs on the standby and compares with the active host: there the source
    is the other side. A setuid file on the active host (never replicated with its bit) is equal, not a
    difference to wait for until the drain times out."""
    from twinsite import verify
    from twinsite.config.scenario import Root, Scenario
    from twinsite.tree import entries

    active, standby = tmp_path / "active", tmp_path / "standby"
    for d in (active, standby):
        d.mkdir()
        (d / "helper").write_bytes(b"#!/bin/sh\n")
        os.utime(d / "helper", ns=(1, 1))
    (active / "helper").chmod(0o4755)
    (standby / "helper").chmod(0o755)
    monkeypatch.setattr(verify, "remote_entries", lambda s, host, root, timeout=600: entries(active))
    s = Scenario(name="app", master="prod1", replicas=("dr1",), roots=(Root(path=str(standby)),))
    assert verify.compare(s, s.roots[0], "prod1", source_here=False)[1] == []
    _local, diffs = verify.compare(s, s.roots[0], "prod1")  # as if this host were the source: they differ
    assert diffs == [(b"helper", "differs: mode")], diffs

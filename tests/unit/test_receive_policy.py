"""Issue 18, item 2: the standby acts only on its own declaration. `twinsite receive` runs as the replication
key's forced command runs it, a real process reading frames on stdin; the stream names a scenario and a root,
and whatever else a (compromised) sender says is not policy."""

from __future__ import annotations

import json
import os
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

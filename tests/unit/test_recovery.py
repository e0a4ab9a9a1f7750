"""The parts of an assured-recovery test, on real files and real mounts: the overlay over a replica root
(the application's writes discarded, the replica untouched) with the receiver spooling meanwhile and
applying afterwards, even when it was started while the overlay was mounted; the spool applied without a
sender (a switchover's promote); what ends a test at once; the post-test archive and script; the
schedule's cron expressions. (The whole test, on the lab's PostgreSQL: tests/integration/test_recovery.py.)"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import stat
import tarfile
from pathlib import Path
from typing import Any

import pytest
import xxhash

from tests.unit.receiving import frames, hello, reference, serve, tree, workload
from twinsite.apply import overlay
from twinsite.config import cron
from twinsite.config.loader import validate_text
from twinsite.config.scenario import Cdp, Scenario
from twinsite.engine.receiver import Receiver, apply_here
from twinsite.engine.spool import Spool
from twinsite.errors import ConfigError, RecoveryError
from twinsite.ops.site import Site
from twinsite.recovery.actions import run_all
from twinsite.recovery.scheduler import due
from twinsite.recovery.steps import Test
from twinsite.state import schedule
from twinsite.state import spool as spool_marker
from twinsite.state.layout import ReceiverState, RecoveryState
from twinsite.transport.frames import Kind, pack_json

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting an overlay needs root (CI runs as root)")


@needs_root
def test_an_overlay_takes_the_applications_writes_and_leaves_the_replica_as_it_was(tmp_path: Path) -> None:
    root, scratch = tmp_path / "replica", RecoveryState(tmp_path / "state").overlay(0)
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_bytes(b"replica data\n")
    (root / "sub" / "b.txt").write_bytes(b"more\n")
    os.chmod(root, 0o700)  # (the merged root takes the upper layer's mode: it is copied from the replica)
    before = tree(root)
    assert overlay.mount(root, scratch) is True and overlay.mount(root, scratch) is False  # idempotent
    assert overlay.mounted(root) and oct(root.stat().st_mode & 0o777) == "0o700"
    (root / "a.txt").write_bytes(b"the test wrote this\n")  # what the application does on the replica
    (root / "sub" / "b.txt").unlink()
    (root / "new").mkdir()
    (root / "new" / "c.bin").write_bytes(os.urandom(1 << 20))
    assert (root / "a.txt").read_bytes() == b"the test wrote this\n"
    done = overlay.unmount(root, scratch)
    assert done["unmounted"] and not done["lazy"] and done["discarded"]
    assert not overlay.mounted(root) and not scratch.exists()
    assert tree(root) == before  # byte for byte, as before the test
    assert overlay.unmount(root, scratch) == {"unmounted": False, "lazy": False}  # nothing left to do


@needs_root
def test_a_busy_overlay_is_detached_lazily_so_that_replication_can_apply_again(tmp_path: Path) -> None:
    root, scratch = tmp_path / "replica", tmp_path / "scratch"
    root.mkdir()
    (root / "f").write_bytes(b"x")
    overlay.mount(root, scratch)
    holder = os.open(root / "f", os.O_RDONLY)  # a process of the test outlived it
    try:
        done = overlay.unmount(root, scratch, busy_wait=0.5)
    finally:
        os.close(holder)
    assert done["lazy"] and "busy" in str(done["busy"]) and not overlay.mounted(root)
    assert (root / "f").read_bytes() == b"x"


def test_an_overlay_refuses_a_scratch_directory_inside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "replica"
    root.mkdir()
    with pytest.raises(Exception, match="inside the root"):
        overlay.mount(root, root / "scratch")
    with pytest.raises(Exception, match="options cannot carry"):
        overlay.mount(tmp_path / "a,b", tmp_path / "s")


@needs_root
def test_the_receiver_spools_under_a_test_then_applies_below_it_even_if_it_started_during_it(
    tmp_path: Path,
) -> None:
    batches = workload(11, 30)
    root, state, scratch = tmp_path / "root", ReceiverState(tmp_path / "state"), tmp_path / "scratch"
    serve(root, state, frames(root, batches[:10]))
    before = tree(root)
    spool = Spool(state)
    spool.start(max_size=1 << 30, reason="test")
    overlay.mount(root, scratch)
    (root / "written-by-the-test").write_bytes(b"discarded")
    # A receiver that connects now (while the overlay is mounted) keeps what arrives in the spool, does not
    # list the root (what its path shows is the test's view), and holds nothing open that keeps the overlay.
    answers = serve(root, state, [*frames(root, batches[10:20]), pack_json(Kind.MANIFEST_REQ, {})])
    assert answers[-2] == (Kind.ACK, {"seq": batches[19][-1].seq, "diverged": 0})
    assert answers[-1][0] == Kind.ERROR and "spool" in str(answers[-1][1]["message"])
    rx_during = Receiver(root, state, io.BytesIO(b""), io.BytesIO())
    try:
        rx_during.serve()  # (connected, nothing sent yet: the overlay can still be unmounted)
        assert overlay.unmount(root, scratch, busy_wait=2)["lazy"] is False
    finally:
        rx_during.close()
    assert tree(root) == before  # the replica below did not change
    spool.stop()
    # The test is over: the next keep-alive applies the spool, into the replica, in order.
    answers = serve(root, state, [hello(root), pack_json(Kind.PING, {})])
    assert answers[-1][0] == Kind.PONG and not Spool(state).held()
    answers = serve(root, state, frames(root, batches[20:]))
    assert answers[-1][1]["seq"] == batches[-1][-1].seq
    assert tree(root) == reference(tmp_path, batches)


@needs_root
def test_the_spool_is_never_applied_into_a_mounted_overlay(tmp_path: Path) -> None:
    batches = workload(12, 8)
    root, state, scratch = tmp_path / "root", ReceiverState(tmp_path / "state"), tmp_path / "scratch"
    spool = Spool(state)
    spool.start(max_size=1 << 30, reason="test")
    serve(root, state, frames(root, batches))
    overlay.mount(root, scratch)
    try:
        spool.stop()  # (the order of a cleanup is unmount, then spool off: this is the wrong one)
        answers = serve(root, state, [hello(root)])
        assert answers[-1][0] == Kind.ERROR and "overlay is still mounted" in str(answers[-1][1]["message"])
        assert Spool(state).held()
    finally:
        overlay.unmount(root, scratch)
    answers = serve(root, state, [hello(root)])
    assert answers[0][1]["applied_seq"] == batches[-1][-1].seq and not Spool(state).held()
    assert tree(root) == reference(tmp_path, batches)


def test_a_spool_is_applied_without_a_sender_when_this_host_is_promoted(tmp_path: Path) -> None:
    batches = workload(13, 20)
    root, state = tmp_path / "root", ReceiverState(tmp_path / "state")
    serve(root, state, frames(root, batches[:5]))
    Spool(state).start(max_size=1 << 30, reason="test")
    serve(root, state, frames(root, batches[5:]))
    s = Scenario(name="t", master="prod1", replicas=("dr1",), roots=(), cdp=Cdp(enabled=True, max_size=1 << 30))
    assert apply_here(root, state, s) == batches[-1][-1].seq
    assert not Spool(state).held() and not Spool(state).spooling
    assert tree(root) == reference(tmp_path, batches)
    assert (state.rewind_log).is_dir()  # with CDP, as the receiver would have: the applied changes can be undone


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def test_cron_expressions_match_and_find_the_next_run() -> None:
    hourly = cron.parse("17 * * * *")
    assert hourly.matches(at("2026-12-01T05:17:40")) and not hourly.matches(at("2026-12-01T05:18:00"))
    assert hourly.next_after(at("2026-12-01T05:17:40")) == at("2026-12-01T06:17:00")
    assert cron.parse("@hourly").next_after(at("2026-12-01T05:00:00")) == at("2026-12-01T06:00:00")
    weekdays = cron.parse("*/20 8-17 * * 1-5")
    assert weekdays.next_after(at("2026-12-04T17:50:00")) == at("2026-12-07T08:00:00")  # Friday -> Monday
    either = cron.parse("0 3 1 * 0")  # the 1st, or a Sunday (cron's rule when both are restricted)
    assert either.next_after(at("2026-12-01T04:00:00")) == at("2026-12-06T03:00:00")
    assert cron.parse("0 0 * * 7").matches(at("2026-12-06T00:00:00"))  # 7 is Sunday too
    assert cron.parse("0 0 31 2 *").next_after(at("2026-01-01T00:00:00")) is None


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("17 * * *", "4 field"),
        ("61 * * * *", "minute field '61' is outside 0-59"),
        ("0 x * * *", "hour field 'x' is not a number"),
        ("*/0 * * * *", "step is below 1"),
        ("0 0 0 * *", "day of month field '0' is outside 1-31"),
    ],
)
def test_a_wrong_cron_expression_says_which_field_and_why(text: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        cron.parse(text)


def test_validate_names_the_line_and_key_of_a_wrong_schedule() -> None:
    text = """\
name: db
master: prod1
replicas: [dr1]
roots: [{path: /srv/db}]
assured_recovery:
  schedule: "70 * * * *"
"""
    _docs, problems = validate_text(text, "db.yml")
    assert [(p.line, p.path) for p in problems] == [(6, "assured_recovery.schedule")]
    assert "minute field '70' is outside 0-59" in problems[0].message


def test_a_scheduled_minute_is_due_once(tmp_path: Path) -> None:
    s = Scenario.from_document(
        {"name": "db", "master": "p", "replicas": ["d"], "roots": [{"path": "/srv/db"}],
         "assured_recovery": {"schedule": "17 * * * *"}}
    )  # fmt: skip
    kept = RecoveryState(tmp_path).schedule
    assert due(s, kept, at("2026-12-01T05:16:59")) is None
    assert due(s, kept, at("2026-12-01T05:17:01")) == "2026-12-01T05:17"
    schedule.store(kept, "2026-12-01T05:17")
    assert due(s, kept, at("2026-12-01T05:17:40")) is None  # started already this minute
    assert due(s, kept, at("2026-12-01T06:17:00")) == "2026-12-01T06:17"


def _test_here(tmp_path: Path, **ar: Any) -> Test:
    s = Scenario.from_document(
        {"name": "db", "master": "prod1", "replicas": ["dr1"], "roots": [{"path": str(tmp_path / "root")}],
         "assured_recovery": ar}
    )  # fmt: skip
    return Test(Site(s, "dr1", tmp_path / "state", tmp_path / "config", tmp_path / "plugins"))


def test_a_full_spool_or_a_request_ends_the_test_at_once(tmp_path: Path) -> None:
    t = _test_here(tmp_path, spool={"max_size": "1MiB"})
    t.interrupt_if_needed()  # nothing wrong: goes on
    sp = t.spools()[0]
    sp.start(max_size=1 << 20, reason="test")
    marker = sp.settings()
    assert marker is not None
    spool_marker.mark_full(sp.marker, marker)
    with pytest.raises(RecoveryError, match="reached its cap"):
        t.interrupt_if_needed()
    sp.stop()
    t.request_end("a switchover to this host")
    with pytest.raises(RecoveryError, match="ended: a switchover to this host"):
        t.interrupt_if_needed()


def test_an_archive_holds_the_tested_data_and_its_manifest_lists_every_digest(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "data").mkdir(parents=True)
    (root / "data" / "PG_VERSION").write_text("15\n")
    (root / "data" / "big").write_bytes(os.urandom(300_000))
    facts = {"id": "abc", "scenario": "db", "host": "dr1", "tested": [{"root": str(root), "seq": 7}]}
    spec = {"type": "archive", "directory": str(tmp_path / "backups"), "keep": 2}
    results = [run_all([spec], facts={**facts, "id": f"t{i}"}, roots=[root], plugins=tmp_path)[0] for i in range(3)]
    assert all(r["ok"] for r in results), results
    kept = sorted((tmp_path / "backups").glob("*.tar.gz"))
    assert len(kept) == 2 and results[-1]["removed"]  # keep: the oldest went, with its manifest
    manifest = json.loads(Path(results[-1]["manifest"]).read_text())
    archive = Path(results[-1]["archive"])
    assert manifest["sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest() and manifest["tested"][0]["seq"] == 7
    listed = {f["path"]: f for f in manifest["files"]}
    with tarfile.open(archive) as tar:
        member = tar.extractfile(str(root).lstrip("/") + "/data/big")
        assert member is not None
        content = member.read()
    assert content == (root / "data" / "big").read_bytes()
    assert listed["data/big"]["xxh3_128"] == xxhash.xxh3_128(content).hexdigest()
    inside = run_all([{**spec, "directory": str(root / "b")}], facts=facts, roots=[root], plugins=tmp_path)[0]
    assert not inside["ok"] and "inside the root" in inside["detail"]


def test_an_archive_and_its_manifest_are_readable_by_root_only(tmp_path: Path) -> None:
    """Copies of the replica's data (issue 18, item 12): not world-readable under the usual umask, nor in a
    directory that is (/var/backups)."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "secret").write_bytes(b"payroll")
    (tmp_path / "backups").mkdir(mode=0o755)
    facts = {"id": "t1", "scenario": "db", "host": "dr1", "tested": [{"root": str(root), "seq": 7}]}
    spec = {"type": "archive", "directory": str(tmp_path / "backups"), "keep": 2}
    old = os.umask(0o022)
    try:
        result = run_all([spec], facts=facts, roots=[root], plugins=tmp_path)[0]
    finally:
        os.umask(old)
    assert result["ok"], result
    for made in (Path(result["archive"]), Path(result["manifest"])):
        assert stat.S_IMODE(made.stat().st_mode) == 0o600, made


def test_a_script_after_a_pass_gets_the_tests_facts_and_its_failure_is_recorded(tmp_path: Path) -> None:
    (tmp_path / "recovery").mkdir()
    script = tmp_path / "recovery" / "tell"
    script.write_text(
        '#!/bin/sh\necho "$TWINSITE_SCENARIO $TWINSITE_TEST_ID $TWINSITE_TESTED_SEQ"\nexit "${FAIL:-0}"\n'
    )
    script.chmod(0o755)
    facts = {"id": "abc", "scenario": "db", "host": "dr1", "tested": [{"root": "/srv/db", "seq": 42}]}
    ok = run_all([{"type": "script", "name": "tell"}], facts=facts, roots=[], plugins=tmp_path)[0]
    assert ok["ok"] and ok["output"] == "db abc 42"
    os.environ["FAIL"] = "3"
    try:
        bad = run_all([{"type": "script", "name": "tell"}], facts=facts, roots=[], plugins=tmp_path)[0]
    finally:
        del os.environ["FAIL"]
    assert not bad["ok"] and "exit 3" in bad["detail"]
    escape = run_all([{"type": "script", "name": "../x"}], facts=facts, roots=[], plugins=tmp_path)[0]
    assert not escape["ok"] and "outside" in escape["detail"]

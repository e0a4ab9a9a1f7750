"""One home for on-disk state: every state file is named by state.layout and read and written by its one
module in twinsite/state/ (the library's other modules and the tests hold no path of their own into the
state directory, and read no file by hand but what this file lists), and each module's writer is durable and
its reader gives back what was written."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from twinsite.errors import ApplyError, RewindError, TwinsiteError
from twinsite.state import (
    applied,
    bookmarks,
    end_request,
    events,
    evidence,
    heard,
    monitor,
    reports,
    rewind,
    role,
    runs,
    schedule,
    sender_epoch,
    sender_status,
    set_aside,
    spool,
    stopped,
)
from twinsite.state.layout import ScenarioState
from twinsite.state.monitor import Condition, MonitorView
from twinsite.state.rewind import RewindPosition
from twinsite.state.role import Role
from twinsite.state.runs import RunState, StepState
from twinsite.state.sender_status import SenderStatus

REPO = Path(__file__).resolve().parents[2]
LIBRARY = REPO / "src" / "twinsite"

# A path joined with the name of something in the state directory (`place / "role.json"`), a root's directory
# (`root-0`) or a stopped marker: what only state.layout may spell out.
STATE_NAMES = (
    "role.json|monitor.json|switchover.json|switchover.lock|switchover.pid|switchover.log|switchovers|"
    "fence.jsonl|set-aside|recovery|run.json|test.lock|schedule.json|end|overlay|tests|status.json|epoch|journal|"
    "recv|applied_seq|heard|rewind|rewind.json|bookmarks.json|spool|spooling.json|records|apply.lock|"
    "events.jsonl|ssh|supervisor.pid|agent.pid|agent.log"
)
JOINED = re.compile(r'/\s*f?"(' + STATE_NAMES.replace(".", r"\.") + r')"' + r'|"root-|f"root-\{|\.stopped"')
# in the tests, only the names nothing else is called (a test's own run file or scratch directory is its own)
TEST_NAMES = (
    "role.json|monitor.json|switchover.json|switchover.lock|switchover.pid|fence.jsonl|set-aside|schedule.json|"
    "status.json|recv|applied_seq|heard|rewind.json|bookmarks.json|spooling.json|apply.lock|test.lock|"
    "events.jsonl|supervisor.pid|agent.pid|agent.log"
)
TEST_JOINED = re.compile(r'/\s*f?"(' + TEST_NAMES.replace(".", r"\.") + r')"|root-[0-9{]|\.stopped"')
RAW_READ = re.compile(r"\.read_text\(|\.read_bytes\(|json\.loads\(|[^_.\w]open\(")

# The library's modules outside state/ that read files by hand, and what they read: none of it is state.
READS_FILES = {
    "alerts/channels.py": "an SMTP password file, a webhook's URL and headers files (alerts[].*_file)",
    "apps/checks.py": "an application's log, its last lines when it did not start",
    "apps/builtin.py": "site application definitions (plugins/apps/*.yml), SQLite databases to check",
    "bundle.py": "the installed package it bundles, an unpacked release's VERSION and python",
    "site/inventory.py": "the settings Ansible wrote for it (a temporary directory of its own)",
    "site/console.py": "the console's users file (NAME:scrypt hash lines)",
    "cdp/log.py": "the rewind log's segments (its own format, docs/formats.md)",
    "cli/drill_cmd.py": "a drill report given on the command line",
    "cli/scenario_cmd.py": "a scenario definition given on stdin",
    "cli/vsphere_cmd.py": "a placement document given on the command line",
    "config/loader.py": "scenario files and the JSON Schema",
    "config/store.py": "the scenario declarations in the config directory",
    "sync/index.py": "the planner's picture of the replica kept by a sender (index.sqlite, its own database)",
    "durable.py": "what the state modules ask it to read (read_json): it is their reader and writer",
    "apply/overlay.py": "/proc/self/mountinfo",
    "journal/segments.py": "the journal's segments (its own format, docs/formats.md)",
    "proc.py": "pid files and /proc",
    "recovery/actions.py": "the archive it has just written (to hash it)",
    "redirect/dns.py": "a TSIG key file",
    "redirect/methods.py": "`ip -j` output and /sys/class/net",
    "transport/frames.py": "JSON frames on the wire",
    "transport/remote.py": "the answers of another host's CLI (JSON on stdout)",
    "vsphere/connection.py": "a vCenter password file",
    "vsphere/replica_vm.py": "JSON in a VM's advanced settings",
    "vsphere/vm_copy.py": "JSON in a VM's advanced settings (the twinsite.copy marker)",
}


def python_files(*dirs: Path) -> list[Path]:
    return sorted(p for d in dirs for p in d.rglob("*.py") if "__pycache__" not in p.parts)


def library_outside_state() -> list[Path]:
    skip = (LIBRARY / "state", LIBRARY / "lab")  # (the lab keeps its own state, /var/lib/twinsite-lab)
    return [p for p in python_files(LIBRARY) if not any(p.is_relative_to(d) for d in skip)]


def offending(files: list[Path], pattern: re.Pattern[str]) -> list[str]:
    return [
        f"{f.relative_to(REPO)}:{n}: {line.strip()}"
        for f in files
        for n, line in enumerate(f.read_text().splitlines(), 1)
        if pattern.search(line)
    ]


def test_only_the_state_package_spells_out_where_state_lives() -> None:
    assert offending(library_outside_state(), JOINED) == []


def test_the_tests_and_benchmarks_find_state_through_the_layout() -> None:
    mine = Path(__file__)
    files = [p for p in python_files(REPO / "tests", REPO / "harness", REPO / "bench") if p != mine]
    assert offending(files, TEST_JOINED) == []


def test_no_library_module_reads_a_state_file_by_hand() -> None:
    """A module outside state/ that reads files itself must be listed above with what it reads (a new one
    belongs in state/, or is added here with its reason)."""
    readers = {str(p.relative_to(LIBRARY)) for p in library_outside_state() if RAW_READ.search(p.read_text())}
    assert readers - set(READS_FILES) == set(), "read state through twinsite.state, or list the module"
    assert set(READS_FILES) - readers == set(), "listed, but reads no file any more: take it off the list"


# -- each module: what its writer wrote, its reader gives back; durably (no temporary file left) ----------------
@pytest.fixture
def place(tmp_path: Path) -> ScenarioState:
    return ScenarioState(tmp_path / "state", "db")


def left_over(place: ScenarioState) -> list[str]:
    """Temporary files a writer left behind (a durable write renames its temporary file over the target)."""
    return [str(p) for p in place.state_dir.rglob("*.tmp")]


def test_each_small_state_file_reads_back_what_was_written(place: ScenarioState) -> None:
    recv, snd, rec = place.receiver(0), place.sender(0, "dr1"), place.recovery
    assert role.current(place, "prod1") == Role("db", "prod1")  # none yet: the declared master
    role.store(place, Role("db", "dr1", 3, 10.5, "prod1", "r1"))
    assert role.current(place, "prod1") == Role("db", "dr1", 3, 10.5, "prod1", "r1")

    assert applied.read(recv.applied) == applied.AppliedPosition()
    applied.write(recv.applied, 42, 7.25, 3)
    assert applied.read(recv.applied) == applied.AppliedPosition(42, 7.25, 3)

    assert sender_status.read(snd.status) is None
    st = SenderStatus("db", "/srv/db", "dr1", state="replicating", acked_seq=9, sync={"files_done": 1})
    sender_status.write(snd.status, st)
    assert sender_status.read(snd.status) == st

    assert sender_epoch.read(snd.epoch) == 0
    sender_epoch.write(snd.epoch, 2)
    assert sender_epoch.read(snd.epoch) == 2

    assert rewind.read(recv.rewind) is None
    pos = RewindPosition(head=40, at=25, target=25)
    rewind.store(recv.rewind, pos)
    assert rewind.read(recv.rewind) == pos
    rewind.store(recv.rewind, replace(pos, at=40, target=40))  # at the head: not rewound, no file
    assert rewind.read(recv.rewind) is None and not recv.rewind.exists()

    assert heard.read(recv.heard) == 0.0
    heard.write(recv.heard, 1234.5)
    assert heard.read(recv.heard) == 1234.5

    view = MonitorView("db", "prod1", "dr1", 0.0, {"reachable": Condition(ok=False, misses=3, since=5.0)}, {"x": 1})
    monitor.write(place.monitor, view)
    kept = monitor.watching(place.monitor, "prod1")
    assert (kept.conditions, kept.automatic, kept.unreachable_since()) == (view.conditions, {"x": 1}, 5.0)
    assert monitor.watching(place.monitor, "dr9").conditions == {}  # about another active host: afresh

    run = RunState("r1", "switchover", {"unplanned": True}, 1.0, [StepState("preflight", runs.RUNNING, 1, 2.0)])
    runs.store(place.switchover_run, run)
    assert runs.load(place.switchover_run) == run
    assert runs.unfinished(place.switchover_run) and runs.interrupted(place.switchover_run)

    assert schedule.last(rec.schedule) is None
    schedule.store(rec.schedule, "2026-12-03T08:00")
    assert schedule.last(rec.schedule) == "2026-12-03T08:00"

    assert end_request.read(rec.end) is None
    end_request.request(rec.end, "a switchover")
    assert end_request.read(rec.end) == "a switchover"
    end_request.clear(rec.end)
    assert end_request.read(rec.end) is None

    assert bookmarks.add(recv.bookmarks, "before", 20, 3.0)[0] and not bookmarks.add(recv.bookmarks, "before", 1, 0)[0]
    assert bookmarks.load(recv.bookmarks)["before"]["seq"] == 20

    assert spool.start(recv.spool_marker, max_size=100, reason="t") and not spool.start(
        recv.spool_marker, max_size=1, reason="t"
    )
    marker = spool.read(recv.spool_marker)
    assert marker is not None and (marker.max_size, marker.full) == (100, False)
    spool.mark_full(recv.spool_marker, marker)
    marker = spool.read(recv.spool_marker)
    assert marker is not None and marker.full and marker.full_at
    assert spool.stop(recv.spool_marker) and spool.read(recv.spool_marker) is None

    events.append(place.fence_record, {"event": "fence", "vm": "prod1-vm"})
    events.append(place.fence_record, {"event": "fence", "vm": "prod2-vm"})
    assert [e["vm"] for e in events.read(place.fence_record)] == ["prod1-vm", "prod2-vm"]

    for i in range(3):
        evidence.write(rec.evidence, {"id": f"t{i}", "started_ts": 100.0 + i}, keep=2)
    assert [r["id"] for r in evidence.history(rec.evidence)] == ["t1", "t2"]  # the newest two kept
    assert evidence.find(rec.evidence, None) == {"id": "t2", "started_ts": 102.0}

    reports.write(place.reports, {"id": "r1", "kind": "switchover"}, "the text")
    assert reports.load(place.reports, None) == reports.load(place.reports, "r1") == {"id": "r1", "kind": "switchover"}
    assert reports.text_file(place.reports, "r1").read_text() == "the text\n"

    assert set_aside.read(place.set_aside("r1")) is None
    set_aside.write(place.set_aside("r1"), {"items": [], "summary": {"paths": 0}})
    assert set_aside.read(place.set_aside("r1")) == {"items": [], "summary": {"paths": 0}}

    config = place.state_dir.parent / "config"
    assert not stopped.is_stopped(config, "db")
    stopped.mark(config, "db", True)
    assert stopped.is_stopped(config, "db")
    stopped.mark(config, "db", False)
    assert not stopped.is_stopped(config, "db")
    assert left_over(place) == []


def test_a_damaged_state_file_is_an_error_that_says_where_and_what_to_do(place: ScenarioState) -> None:
    place.dir.mkdir(parents=True)
    place.role.write_text("{not json")
    with pytest.raises(TwinsiteError, match="role file is not readable") as bad_role:
        role.current(place, "prod1")
    assert bad_role.value.where == str(place.role) and bad_role.value.hint
    recv = place.receiver(0)
    applied.write(recv.applied, 5, 1.0, 0)
    raw = bytearray(recv.applied.read_bytes())
    raw[0] ^= 0xFF
    recv.applied.write_bytes(bytes(raw))
    with pytest.raises(ApplyError, match="corrupt") as bad_position:
        applied.read(recv.applied)
    assert "resync" in str(bad_position.value.hint)
    recv.rewind.write_text("[")
    with pytest.raises(RewindError, match="rewind position is not readable"):
        rewind.read(recv.rewind)


def test_the_durable_writer_leaves_no_temporary_file_when_threads_write_one_file(place: ScenarioState) -> None:
    """The monitor and the sender rewrite their files from several threads: each write is whole."""
    import threading

    snd = place.sender(0, "dr1")

    def write(n: int) -> None:
        for i in range(50):
            sender_status.write(snd.status, SenderStatus("db", "/srv/db", "dr1", acked_seq=n * 100 + i))

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    st = sender_status.read(snd.status)
    assert st is not None and st.acked_seq % 100 == 49
    assert [p.name for p in snd.dir.iterdir()] == [snd.status.name]

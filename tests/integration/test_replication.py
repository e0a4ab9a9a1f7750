"""Replication between the lab's real hosts: byte-exact after mixed workloads, crashes, cut links, full disks."""

from __future__ import annotations

import random
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from harness.cli import twinsite_cmd
from harness.hosts import events, wait_event
from harness.scenarios import Scenario, install
from harness.wait import eventually
from tests.fsops import extents, mutate, populate, same_bytes, sparse
from twinsite import lab as labmod
from twinsite.lab.topology import Lab
from twinsite.state.layout import ScenarioState

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def installed(lab: Lab) -> Lab:
    install(lab)
    return lab


@pytest.fixture
def scenario(installed: Lab, request: pytest.FixtureRequest) -> Iterator[Scenario]:
    name = "t" + request.node.name.split("[")[0].replace("test_", "")[:20].replace("_", "")
    sc = Scenario(installed, name)
    yield sc
    sc.kill()
    for h in installed.hosts:
        labmod.heal(installed, h.name)


def test_initial_sync_then_10000_mixed_operations_byte_exact(scenario: Scenario) -> None:
    # continuous mode is inotify capture plus the periodic rescan that covers what capture cannot see;
    # a short interval makes the rescan part of this test
    scenario.write_definition({**scenario.definition(), "replication": {"consistency": "file", "rescan_interval": 3}})
    rng = random.Random(20261124)
    populate(scenario.src, rng, files=400)
    scenario.start()
    scenario.wait_synced()
    scenario.assert_equal()
    done = 0
    while done < 10_000:
        done += len(mutate(scenario.src, rng, ops=200))
    rescans = scenario.status()["rescans"]
    eventually(lambda: scenario.status()["rescans"] >= rescans + 2, timeout=60, interval=0.2, what="two rescans")
    scenario.wait_synced()
    scenario.assert_equal()
    proc = twinsite_cmd(
        "lab",
        "exec",
        "prod1",
        "--",
        "/opt/twinsite/bin/twinsite",
        "verify",
        scenario.name,
        "--config-dir",
        scenario.config_dir,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"/srv/{scenario.name} -> dr1: equal"


def _workload(sc: Scenario, rng: random.Random, stop: threading.Event) -> None:
    while not stop.is_set():
        mutate(sc.src, rng, ops=20)
        time.sleep(0.01)


@pytest.mark.parametrize("victim", ["sender", "receiver"])
def test_kill_9_at_20_seeded_points_loses_nothing_and_needs_no_full_resync(scenario: Scenario, victim: str) -> None:
    rng = random.Random(42 if victim == "sender" else 43)
    populate(scenario.src, rng, files=300)
    scenario.start()
    scenario.wait_synced()
    stop = threading.Event()
    writer = threading.Thread(target=_workload, args=(scenario, random.Random(rng.random()), stop))
    writer.start()
    try:
        for _ in range(20):
            time.sleep(rng.uniform(0.05, 0.6))
            if victim == "sender":
                scenario.kill()
                scenario.start()
            else:
                scenario.kill_receiver()  # the sender notices, reconnects, resumes from the acknowledged seq
    finally:
        stop.set()
        writer.join()
    st = scenario.wait_synced()
    scenario.assert_equal()
    # after the last restart nothing was resent wholesale: a metadata rescan, then only what changed
    size = sum(f.stat().st_size for f in scenario.src.rglob("*") if f.is_file() and not f.is_symlink())
    if victim == "sender":
        scenario.kill()
        scenario.start()
        st = scenario.wait_synced()
        assert st["bytes_sent"] < max(size // 20, 200_000), f"restart resent {st['bytes_sent']} of {size} bytes"
        scenario.assert_equal()
    else:
        assert st["connects"] >= 2


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_a_restart_takes_the_kept_picture_and_replicates_what_changed_while_the_agent_was_down(
    scenario: Scenario, seed: int
) -> None:
    """The agent killed at rest, the tree changed while it is down (a random workload with files made again at
    their names, hard links, renamed directories; a directory moved in from outside the root, its files' times
    older than the picture; a directory replaced by another), then started: it starts from the picture it
    kept, compares only what changed (not every path), and the replica is the source byte for byte."""
    rng = random.Random(seed)
    populate(scenario.src, rng, files=600)
    outside = scenario.src.parent / f"{scenario.name}-outside"
    shutil.rmtree(outside, ignore_errors=True)
    populate(outside / "moved", random.Random(seed + 100), files=40)  # (made before the picture: older times)
    scenario.start()
    scenario.wait_synced()
    paths = sum(1 for _ in scenario.src.rglob("*"))
    scenario.kill()
    mutate(scenario.src, rng, 150, remakes=True)
    (outside / "moved").rename(scenario.src / "moved-in")
    victim = next(d for d in sorted(scenario.src.iterdir()) if d.is_dir() and d.name != "moved-in")
    shutil.rmtree(victim)
    populate(outside / "other", random.Random(seed + 200), files=20)
    (outside / "other").rename(victim)  # (at a path the picture holds a directory at: another directory)
    time.sleep(2.5)  # (past the margin of a ctime, sync.since: the restart after the next sees none of this)
    scenario.start()
    st = scenario.wait_synced()
    scenario.assert_equal()
    assert st["start"]["from"] == "kept picture", st["start"]
    assert 0 < st["start"]["compared"] < paths, (st["start"], paths)
    # and again with nothing changed: nearly nothing compared, nothing sent
    scenario.kill()
    scenario.start()
    again = scenario.wait_synced()
    assert again["start"]["from"] == "kept picture", again["start"]
    assert again["start"]["compared"] < 20, again["start"]
    assert again["bytes_sent"] == 0, again
    scenario.assert_equal()
    shutil.rmtree(outside, ignore_errors=True)


def test_a_picture_of_anything_else_is_not_taken(scenario: Scenario) -> None:
    """A kept picture of another selection of the root is refused: the replica's listing is asked, and the
    status says why; a standby whose state was lost is refused too (its replica may be anything), and so is a
    damaged picture."""
    rng = random.Random(9)
    populate(scenario.src, rng, files=100)
    scenario.start()
    scenario.wait_synced()
    scenario.kill()
    doc = scenario.definition()
    doc["roots"][0]["exclude"] = ["*.tmp"]
    scenario.write_definition(doc)
    scenario.start()
    st = scenario.wait_synced()
    assert st["start"]["from"] == "listing" and "selection" in st["start"]["why"], st["start"]
    scenario.kill()
    dr1 = ScenarioState(scenario.lab.host("dr1").private_dir("/var/lib/twinsite"), scenario.name)
    shutil.rmtree(dr1.dir)  # (the standby's position is gone: it says seq 0)
    (scenario.dst / "stray").write_bytes(b"not from the source")
    scenario.start()
    st = scenario.wait_synced()
    assert st["start"]["from"] == "listing" and "journal cannot bring it" in st["start"]["why"], st["start"]
    scenario.assert_equal()
    scenario.kill()  # and a damaged picture: said, and replaced by the sync that follows
    scenario.place.sender(0, "dr1").index.write_bytes(b"\xff" * 8192)
    scenario.start()
    st = scenario.wait_synced()
    assert st["start"]["from"] == "listing" and "cannot be read" in st["start"]["why"], st["start"]
    scenario.assert_equal()
    scenario.kill()
    scenario.start()
    assert scenario.wait_synced()["start"]["from"] == "kept picture"


def test_a_sparse_17_gib_file_travels_as_its_data_then_as_its_changed_blocks_and_holes_stay_holes(
    scenario: Scenario,
) -> None:
    """Issue 19's big file, reduced for CI (the benchmark `bigfile` has 200 GiB): 17 GiB, past the size where
    one file's signatures no longer fit a frame, holding 64 MiB of data in 16 places. It is synced through the
    lab's sender and receiver, then written in 200 scattered places (some in holes): only what changed
    travels, and the replica holds data exactly where the source does (the kernel's SEEK_DATA on both)."""
    rng = random.Random(17)
    size, piece = 17 << 30, 4 << 20
    places = sorted(rng.sample(range(size // piece), 16))
    big = scenario.src / "huge.img"
    sparse(big, size, {p * piece: rng.randbytes(piece) for p in places})
    scenario.start()
    first = scenario.wait_synced(timeout=300)
    replica = scenario.dst / "huge.img"
    assert extents(replica) == extents(big)
    same_bytes(big, replica)
    assert first["bytes_sent"] < 16 * piece * 1.05 + (1 << 20), first["bytes_sent"]
    changed = 0
    with open(big, "r+b") as f:
        for _ in range(200):
            f.seek(rng.randrange(0, size - 4096) // 4096 * 4096)
            changed += f.write(rng.randbytes(4096))
    st = scenario.wait_synced(timeout=300)
    assert extents(replica) == extents(big)
    same_bytes(big, replica)
    sent = st["bytes_sent"] - first["bytes_sent"]
    assert changed <= sent < changed * 1.2 + (1 << 20), (sent, changed)


def test_a_cut_link_mid_stream_resumes_after_heal(scenario: Scenario) -> None:
    rng = random.Random(7)
    populate(scenario.src, rng, files=200)
    scenario.start()
    scenario.wait_synced()
    labmod.cut(scenario.lab, "dr1")
    try:
        for _ in range(10):
            mutate(scenario.src, rng, ops=50)
            time.sleep(0.3)
        eventually(
            lambda: scenario.status().get("state") == "disconnected", timeout=20, interval=0.1, what="disconnected"
        )
        assert scenario.status()["state"] == "disconnected", scenario.status()
        assert scenario.status()["planned_seq"] > scenario.status()["acked_seq"]  # kept in the journal
    finally:
        labmod.heal(scenario.lab, "dr1")
    scenario.wait_synced(timeout=60)
    scenario.assert_equal()


def assert_same_digest(scenario: Scenario) -> None:
    """The replica's digest, taken on dr1 (its root may be a mount only dr1 sees), is the source's."""
    got = twinsite_cmd("lab", "exec", "dr1", "--", "/opt/twinsite/bin/twinsite", "digest", f"/srv/{scenario.name}")
    want = twinsite_cmd("lab", "exec", "prod1", "--", "/opt/twinsite/bin/twinsite", "digest", f"/srv/{scenario.name}")
    assert got.stdout.split()[0] == want.stdout.split()[0]


def test_replica_disk_full_stops_clearly_and_resumes_when_space_is_freed(scenario: Scenario) -> None:
    mount = [
        "twinsite",
        "lab",
        "exec",
        "dr1",
        "--",
        "mount",
        "-t",
        "tmpfs",
        "-o",
        "size=2m",
        "tw-full",
        f"/srv/{scenario.name}",
    ]
    scenario.dst.mkdir(parents=True)
    assert twinsite_cmd(*mount[1:]).returncode == 0
    try:
        (scenario.src / "small").write_bytes(b"x" * 1000)
        scenario.start()
        scenario.wait_synced()
        (scenario.src / "big").write_bytes(random.Random(1).randbytes(4 << 20))
        eventually(
            lambda: "No space left" in (scenario.status().get("last_error") or ""),
            timeout=30,
            interval=0.1,
            what="ENOSPC",
        )
        st = scenario.status()
        assert "No space left on device" in st["last_error"], st
        assert st["acked_seq"] < st["planned_seq"]
        grow = ["lab", "exec", "dr1", "--", "mount", "-o", "remount,size=64m", f"/srv/{scenario.name}"]
        assert twinsite_cmd(*grow).returncode == 0
        scenario.wait_synced(timeout=60)
        scenario.kill()  # before comparing: the replica is read through dr1's mount
        assert_same_digest(scenario)
    finally:
        subprocess.run(["ip", "netns", "exec", scenario.lab.host("dr1").netns, "true"], check=False)
        twinsite_cmd("lab", "exec", "dr1", "--", "umount", f"/srv/{scenario.name}")


def test_a_sync_that_can_never_finish_says_why_stays_degraded_and_alerts_until_it_does(scenario: Scenario) -> None:
    """Issue 19: every sync attempt fails the same way (here the standby's disk is too small for the first
    copy). Before, each reconnection wiped the error (`last_error: null`) and the state flipped between
    syncing and disconnected, so neither status nor the standby's monitor ever said so, and no alert went out."""
    mount = ["lab", "exec", "dr1", "--", "mount", "-t", "tmpfs", "-o", "size=2m", "tw-full", f"/srv/{scenario.name}"]
    scenario.dst.mkdir(parents=True)
    assert twinsite_cmd(*mount).returncode == 0
    since = time.time()
    try:
        (scenario.src / "big").write_bytes(random.Random(2).randbytes(4 << 20))
        scenario.start()
        alert = wait_event(scenario.lab, "prod1", "replication-failing", since, timeout=90)
        assert "No space left on device" in alert["what"], alert
        seen = []
        for _ in range(20):  # across reconnections, it stays said
            st = scenario.status()
            seen.append((st["state"], st["failures"], "No space left" in (st["last_error"] or "")))
            time.sleep(0.25)
        assert all(state == "degraded" and n >= 3 and said for state, n, said in seen), seen
        grow = ["lab", "exec", "dr1", "--", "mount", "-o", "remount,size=64m", f"/srv/{scenario.name}"]
        assert twinsite_cmd(*grow).returncode == 0
        scenario.wait_synced(timeout=90)
        st = scenario.status()
        assert (st["state"], st["failures"], st["last_error"]) == ("replicating", 0, None), st
        wait_event(scenario.lab, "prod1", "resolved-replication-failing", since, timeout=30)
        kinds = [e["kind"] for e in events(scenario.lab, "prod1", since) if "replication-failing" in e["kind"]]
        assert kinds == ["replication-failing", "resolved-replication-failing"], kinds  # once per streak
        scenario.kill()  # before comparing: the replica is read through dr1's mount
        assert_same_digest(scenario)
    finally:
        twinsite_cmd("lab", "exec", "dr1", "--", "umount", f"/srv/{scenario.name}")


def test_the_paramiko_transport_replicates_too(installed: Lab) -> None:
    sc = Scenario(installed, "tparamiko", transport="paramiko")
    try:
        rng = random.Random(5)
        populate(sc.src, rng, files=100)
        sc.start()
        sc.wait_synced()
        mutate(sc.src, rng, ops=300)
        sc.wait_synced()
        sc.assert_equal()
    finally:
        sc.kill()


def test_the_bandwidth_limit_holds_and_sync_progress_is_reported(installed: Lab) -> None:
    limit = 2 << 20
    sc = Scenario(installed, "tbwlimit", bandwidth_limit="2MiB")
    try:
        rng = random.Random(9)
        (sc.src / "big").write_bytes(rng.randbytes(8 << 20))  # incompressible: the wire carries all of it
        for i in range(50):
            (sc.src / f"small{i}").write_bytes(rng.randbytes(rng.randrange(1, 20_000)))
        total = sum(f.stat().st_size for f in sc.src.iterdir())
        sc.start()
        seen: list[dict[str, object]] = []
        began = ended = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            st = sc.status()
            if st.get("updated_at", 0) >= sc.started_at and st.get("state") == "syncing" and st.get("sync"):
                began = began or time.monotonic()
                seen.append(st["sync"])
            if began and st.get("state") == "replicating" and st.get("acked_seq") == st.get("planned_seq"):
                ended = time.monotonic()
                break
            time.sleep(0.1)
        assert began and ended, f"the sync did not finish: {sc.status()}"
        final = sc.wait_synced()
        sc.assert_equal()
        # the limit: a token bucket allows one second's burst, then at most `limit` bytes per second
        assert ended - began >= (total - limit) / limit * 0.9, f"{total} bytes in {ended - began:.1f} s"
        # progress while it ran: totals of the tree, a rising percentage, a rate and an ETA
        running = [p for p in seen if not p.get("finished_at")]
        assert len({p["percent"] for p in running}) >= 3, running
        assert all(p["bytes_total"] == total and p["files_total"] == 51 for p in running)
        assert [p["bytes_done"] for p in running] == sorted(p["bytes_done"] for p in running)  # type: ignore[type-var]
        assert any(p["eta_seconds"] and 0 < p["percent"] < 100 for p in running), running  # type: ignore[operator]
        done = final["sync"]
        assert done["finished_at"] and done["files_done"] == 51 and done["bytes_done"] == total
        assert total <= done["bytes_sent"] <= total * 1.01
    finally:
        sc.kill()


def test_an_unknown_host_key_is_refused_loudly(installed: Lab) -> None:
    sc = Scenario(installed, "thostkey", known_hosts="/etc/twinsite/empty_known_hosts")
    (installed.host("prod1").private_dir("/etc/twinsite") / "empty_known_hosts").write_text("")
    try:
        (sc.src / "f").write_text("x")
        sc.start()
        eventually(
            lambda: "Host key verification failed" in (sc.status().get("last_error") or ""),
            timeout=30,
            interval=0.1,
            what="the host key refused",
        )
        st = sc.status()
        assert st["state"] == "disconnected", st
        assert "Host key verification failed" in st["last_error"]
        assert not sc.dst.exists() or not list(sc.dst.iterdir())
    finally:
        sc.kill()


def test_the_journal_cap_holds_during_an_outage_and_nothing_is_lost(installed: Lab) -> None:
    cap = 1 << 20
    sc = Scenario(installed, "tjournalcap")
    sc.write_definition({**sc.definition(), "journal": {"max_size": cap, "segment_size": cap // 8}})
    journal = sc.place.sender(0, "dr1").journal
    try:
        (sc.src / "seed").write_text("seed")
        sc.start()
        sc.wait_synced()
        labmod.cut(installed, "dr1")
        rng = random.Random(3)
        peak = 0
        for i in range(40):
            (sc.src / f"chunk{i}").write_bytes(rng.randbytes(200_000))
            time.sleep(0.05)
            peak = max(peak, sum(f.stat().st_size for f in journal.glob("*.seg")))
        deadline = time.monotonic() + 20
        while not sc.status().get("journal_overflow") and time.monotonic() < deadline:
            peak = max(peak, sum(f.stat().st_size for f in journal.glob("*.seg")))
            time.sleep(0.1)
        st = sc.status()
        assert st["journal_overflow"] is True and st["state"] == "degraded", st
        assert peak <= cap, f"journal reached {peak} bytes, cap {cap}"
        labmod.heal(installed, "dr1")
        sc.wait_synced(timeout=90)
        sc.assert_equal()
        assert sc.status()["journal_overflow"] is False
    finally:
        labmod.heal(installed, "dr1")
        sc.kill()


def test_the_replication_key_can_run_twinsite_receive_and_nothing_else(db: Lab) -> None:
    """Issue 18, item 2, on real OpenSSH: the agent role gave prod1 a replication key that dr1 lets run only its
    forced command. prod1's sender uses it (dr1's receivers carry the forced command's --peer); a command asked
    for with it is not run, and a HELLO that lies about where it comes from is refused."""
    from harness.hosts import on_host
    from twinsite.lab import netns
    from twinsite.proc import argv_of
    from twinsite.transport.channels import REPLICATION_KEY
    from twinsite.transport.frames import Kind, pack_json

    def receivers() -> list[list[bytes]]:
        found = [argv_of(pid) or [] for pid in netns.pids(db.host("dr1").netns)]
        return [a for a in found if b"receive" in a]

    assert eventually(lambda: receivers() != [], timeout=30, what="a receiver on dr1")
    assert all(a[-2:] == [b"--peer", b"prod1"] for a in receivers()), receivers()
    marker = db.host("dr1").private_dir("/var/lib/twinsite") / "ran-a-command"  # /var/lib/twinsite/... on dr1
    marker.unlink(missing_ok=True)
    lying = pack_json(Kind.HELLO, {"scenario": "db", "root_index": 0, "root": "/srv/db", "host": "dr1"})
    db.host("prod1").private_dir("/var/lib/twinsite").joinpath("lying-hello").write_bytes(lying)
    ssh = f"ssh -T -i {REPLICATION_KEY} -o IdentitiesOnly=yes -o BatchMode=yes dr1"
    ask = f"{ssh} touch /var/lib/twinsite/ran-a-command < /var/lib/twinsite/lying-hello > /var/lib/twinsite/answer"
    asked = on_host(db, "prod1", "sh", "-c", ask)
    answer = db.host("prod1").private_dir("/var/lib/twinsite").joinpath("answer").read_bytes()
    assert not marker.exists()
    assert b"with prod1's key, saying it comes from dr1" in answer, (answer, asked.stderr)

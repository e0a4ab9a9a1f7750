"""Continuous data protection in the lab: a corruption on prod1 replicates to dr1; rewinding dr1 to the
bookmark made before it gives back the undamaged data; replication waits while the replica is rewound and
goes on after `--resume`. Real hosts, real SSH, the CLI on dr1 as an operator would run it."""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from harness.cli import VENV_BIN
from harness.scenarios import Scenario, install
from harness.wait import eventually
from tests.fsops import mutate, populate
from twinsite.lab.topology import Lab
from twinsite.state.layout import ScenarioState
from twinsite.tree import digest

pytestmark = pytest.mark.lab


def on_dr1(sc: Scenario, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(VENV_BIN / "twinsite"),
            "lab",
            "exec",
            "dr1",
            "--",
            "/opt/twinsite/bin/twinsite",
            *argv,
            "--config-dir",
            sc.config_dir,
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def ok(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)["result"]
    return result


def test_a_corruption_is_undone_by_rewinding_to_the_bookmark_before_it(lab: Lab) -> None:
    install(lab)
    sc = Scenario(lab, "tcdp")
    doc = sc.definition()
    doc["cdp"] = {"enabled": True, "retention": "1h", "max_size": "256MiB"}
    sc.write_definition(doc)
    standby_config = lab.host("dr1").private_dir("/etc/twinsite") / f"only-{sc.name}"
    shutil.rmtree(standby_config, ignore_errors=True)
    shutil.copytree(sc.config, standby_config)  # the standby knows the scenario too (configure.yml does this)
    rng = random.Random(21)
    populate(sc.src, rng, files=80)
    (sc.src / "db").mkdir()
    (sc.src / "db" / "data.db").write_bytes(rng.randbytes(3 << 20))
    (sc.src / "db" / "wal").mkdir()
    for i in range(5):
        (sc.src / "db" / "wal" / f"seg{i}").write_bytes(rng.randbytes(200_000))
    try:
        sc.start()
        sc.wait_synced()
        good = digest(sc.src)
        mark = ok(on_dr1(sc, "bookmark", sc.name, "before-damage"))
        assert mark["changed"] and mark["seq"] == sc.status()["acked_seq"]
        again = ok(on_dr1(sc, "bookmark", sc.name, "before-damage"))
        assert not again["changed"] and again["seq"] == mark["seq"]  # idempotent

        # the damage: a database file overwritten in place, a directory deleted; both replicate
        with open(sc.src / "db" / "data.db", "r+b") as f:
            f.seek(1 << 20)
            f.write(b"\xde\xad" * 300_000)
        shutil.rmtree(sc.src / "db" / "wal")
        sc.wait_synced()
        sc.assert_equal()
        damaged = digest(sc.dst)
        assert damaged != good

        pts = ok(on_dr1(sc, "rewind-points", sc.name))
        assert pts["oldest"]["seq"] <= mark["seq"] < pts["newest"]["seq"] == pts["head"]
        assert [b["name"] for b in pts["bookmarks"]] == ["before-damage"] and pts["bookmarks"][0]["reachable"]

        dry = ok(on_dr1(sc, "rewind", sc.name, "--to", "before-damage", "--dry-run"))
        assert "db/data.db" in dry["files"] and any(f.startswith("db/wal") for f in dry["files"])
        assert dry["bytes"] >= 600_000 and dry["to"] == mark["seq"]
        assert digest(sc.dst) == damaged  # a dry run changes nothing

        beyond = str(pts["head"] + 1000)  # (the log holds the initial sync too: its window starts at seq 0)
        refused = on_dr1(sc, "rewind", sc.name, "--to", beyond)
        assert refused.returncode == 14 and "outside the rewind window" in refused.stdout
        bad = on_dr1(sc, "rewind", sc.name, "--to", "yesterday-ish")
        assert bad.returncode == 3 and "not a bookmark" in bad.stdout

        done = ok(on_dr1(sc, "rewind", sc.name, "--to", "before-damage"))
        assert done["state"] == "rewound"
        assert digest(sc.dst) == good  # the undamaged data, byte for byte

        # while rewound, replication waits: new writes on prod1 do not reach dr1
        (sc.src / "after").write_bytes(b"written while the replica was rewound")
        eventually(
            lambda: "rewound" in (sc.status().get("last_error") or ""),
            timeout=30,
            interval=0.2,
            what="the rewound error",
        )
        assert "rewound" in (sc.status().get("last_error") or ""), sc.status()
        assert digest(sc.dst) == good
        assert not (sc.dst / "after").exists()

        back = ok(on_dr1(sc, "rewind", sc.name, "--resume"))
        assert back["state"] == "replicating" and back["to"] == back["head"]
        sc.wait_synced(timeout=120)
        sc.assert_equal()  # forward again, then the writes made meanwhile
        assert (sc.dst / "after").read_bytes() == b"written while the replica was rewound"
    finally:
        sc.kill()
        shutil.rmtree(standby_config, ignore_errors=True)


def _cdp_scenario(lab: Lab, name: str, **cdp: Any) -> tuple[Scenario, Path]:
    sc = Scenario(lab, name)
    doc = sc.definition()
    doc["cdp"] = {"enabled": True, **cdp}
    sc.write_definition(doc)
    standby_config = lab.host("dr1").private_dir("/etc/twinsite") / f"only-{sc.name}"
    shutil.rmtree(standby_config, ignore_errors=True)
    shutil.copytree(sc.config, standby_config)
    return sc, standby_config


def _rewind_killed(sc: Scenario, seq: int, after: float) -> None:
    """`twinsite rewind --to seq` on dr1, killed with SIGKILL after ``after`` seconds (if still running)."""
    proc = subprocess.Popen(
        [
            *(str(VENV_BIN / "twinsite"), "lab", "exec", "dr1", "--", "/opt/twinsite/bin/twinsite", "rewind"),
            *(sc.name, "--to", str(seq), "--config-dir", sc.config_dir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    time.sleep(after)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_kill_9_of_the_receiver_and_of_rewinds_keeps_every_point_reachable(lab: Lab) -> None:
    install(lab)
    sc, standby_config = _cdp_scenario(lab, "tcdpkill")
    rng = random.Random(33)
    populate(sc.src, rng, files=120)
    try:
        sc.start()
        sc.wait_synced()
        marks = {sc.status()["acked_seq"]: digest(sc.src)}
        for _ in range(6):  # changes while the receiver is killed at random moments
            writer = threading.Thread(target=mutate, args=(sc.src, random.Random(rng.random()), 40))
            writer.start()
            time.sleep(rng.uniform(0.05, 0.4))
            sc.kill_receiver()
            writer.join()
            st = sc.wait_synced()
            marks[st["acked_seq"]] = digest(sc.src)
        head = max(marks)
        sc.assert_equal()
        # rewinds to each point in random order, some killed part-way and then run again
        for seq in rng.sample(sorted(marks), len(marks)):
            _rewind_killed(sc, seq, rng.uniform(0.3, 0.9))
            ok(on_dr1(sc, "rewind", sc.name, "--to", str(seq)))
            assert digest(sc.dst) == marks[seq], f"rewound to {seq}"
        assert ok(on_dr1(sc, "rewind", sc.name, "--resume"))["to"] == head
        mutate(sc.src, rng, ops=20)
        sc.wait_synced()
        sc.assert_equal()
    finally:
        sc.kill()
        shutil.rmtree(standby_config, ignore_errors=True)


def test_the_rewind_log_stays_within_its_cap_under_load(lab: Lab) -> None:
    install(lab)
    cap = 6 << 20
    sc, standby_config = _cdp_scenario(lab, "tcdpcap", max_size=cap)
    log_dir = ScenarioState(lab.host("dr1").private_dir("/var/lib/twinsite"), sc.name).receiver(0).rewind_log
    rng = random.Random(8)
    try:
        sc.start()
        sc.wait_synced()
        peak = 0
        for i in range(48):  # 48 x 512 KiB of new data, over twice the cap... and rewrites of it
            (sc.src / f"f{i % 24}").write_bytes(rng.randbytes(512 << 10))
            time.sleep(0.05)
            peak = max(peak, sum(p.stat().st_size for p in log_dir.glob("*.rwl")))
        sc.wait_synced()
        peak = max(peak, sum(p.stat().st_size for p in log_dir.glob("*.rwl")))
        # the newest segment is never pruned: the cap holds within a segment (an eighth) plus one batch's group
        assert peak <= cap + cap // 8 + (2 << 20), f"rewind log reached {peak} bytes (cap {cap})"
        pts = ok(on_dr1(sc, "rewind-points", sc.name))
        assert pts["oldest"]["seq"] > 0  # the oldest points were pruned ...
        seq = pts["oldest"]["seq"]
        ok(on_dr1(sc, "rewind", sc.name, "--to", str(seq)))  # ... and what is left still rewinds
        ok(on_dr1(sc, "rewind", sc.name, "--resume"))
        sc.wait_synced()
        sc.assert_equal()
    finally:
        sc.kill()
        shutil.rmtree(standby_config, ignore_errors=True)

"""Continuous data protection in the lab: a corruption on prod1 replicates to dr1; rewinding dr1 to the
bookmark made before it gives back the undamaged data; replication waits while the replica is rewound and
goes on after `--resume`. Real hosts, real SSH, the CLI on dr1 as an operator would run it."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import time
from typing import Any

import pytest

from tests.conftest import VENV_BIN
from tests.fsops import populate
from tests.integration.replication_helpers import Scenario, install
from twinsite.lab.topology import Lab
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
        deadline = time.monotonic() + 30
        while "rewound" not in (sc.status().get("last_error") or "") and time.monotonic() < deadline:
            time.sleep(0.2)
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

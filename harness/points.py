"""dr1 held at its last complete point of a scenario, with prod1's snapshot of that point pinned, as `twinsite
verify` holds them: for a test to judge the replica from outside our code (rsync -c against the snapshot, a
copy started by the application itself). Used by tests/integration/test_consistency.py and test_lab_apps.py."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from harness.cli import VENV_BIN
from harness.hosts import TWINSITE
from twinsite.config.scenario import POINT_STORE
from twinsite.lab.topology import Lab
from twinsite.locks import held
from twinsite.state.layout import ScenarioState


@dataclass(frozen=True)
class Held:
    point: int  # the point's id
    snapshot: Path  # prod1's read-only snapshot of the point, as the controller sees it
    replica: Path  # dr1's replica of the root, at that point while held


@contextmanager
def held_point(lab: Lab, scenario: str, root: str) -> Iterator[Held]:
    """dr1 held at its last complete point of ``scenario`` (``twinsite point-hold``: it spools meanwhile) and
    prod1's snapshots pinned (they are not pruned), for the ``with`` block; ``root`` is the root's path."""
    prod1, dr1 = lab.host("prod1"), lab.host("dr1")
    pin = ScenarioState(prod1.private_dir("/var/lib/twinsite"), scenario).sender(0, "dr1").points_pin
    here = Path(root).relative_to("/srv")
    with held(pin):
        hold = subprocess.Popen(
            [str(VENV_BIN / "twinsite"), "lab", "exec", "dr1", "--", TWINSITE, "point-hold", scenario, "--json"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        if hold.stdin is None or hold.stdout is None:
            raise AssertionError("point-hold has no pipes")
        try:
            answer = json.loads(hold.stdout.readline())
            if not answer["ok"]:
                raise AssertionError(f"point-hold {scenario} on dr1: {answer}")
            point = int(answer["result"]["point"]["id"])
            snap = prod1.private_dir("/srv") / here / POINT_STORE / str(point)
            yield Held(point, snap, dr1.private_dir("/srv") / here)
        finally:
            hold.stdin.close()
            if hold.wait(timeout=60) != 0:
                raise AssertionError(f"point-hold {scenario} on dr1 exited {hold.returncode}")


def rsync_differences(h: Held, excluded: list[str]) -> list[str]:
    """What ``rsync -a -c`` would change to make the held replica equal prod1's snapshot (``excluded``: the
    scenario's exclusions, as rsync patterns anchored at the root); directories' own times are not replicated
    (docs/replication.md, Equality), so their lines are left out."""
    argv = ["rsync", "-a", "-c", "-n", "-i", "--delete", "--exclude=/" + POINT_STORE]
    argv += [f"--exclude={e}" for e in excluded] + [f"{h.snapshot}/", f"{h.replica}/"]
    listed = subprocess.run(argv, capture_output=True, text=True, check=True).stdout.splitlines()
    return [line for line in listed if not line.startswith(".d")]

"""Several standbys of one scenario (issue 20, item 4), on the lab's `share`: prod1 replicates /srv/share to dr1
and to dr2 (a third site), each standby with its own sender and journal on the active host. Judged from outside
our code: `rsync -c` finds nothing to change between the source and each replica."""

from __future__ import annotations

import random
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.hosts import TWINSITE, on_host, reset_roles, twinsite_on
from harness.scenarios import ensure_configured
from harness.wait import eventually
from tests.fsops import live_bytes, mutate, populate
from twinsite import lab as labmod
from twinsite.lab.topology import Lab
from twinsite.state import sender_status
from twinsite.state.layout import ScenarioState

SHARE = "share"
HOSTS = ("prod1", "dr1", "dr2")
CAP = 8 << 20  # the journal's max_size for `share` in inventories/lab


def root(lab: Lab, host: str) -> Path:
    return lab.host(host).private_dir("/srv") / SHARE


def differences(a: Path, b: Path) -> list[str]:
    """What `rsync -c` would change to make b equal to a: names, content (by checksum), links, modes, files'
    times. Not directories' times (replication keeps files' and links' only), and the source's set-id bits
    are left out, as a standby that drops privileged metadata (the default) holds them."""
    argv = ["rsync", "-rlptDcni", "--omit-dir-times", "--chmod=F-s", "--delete", f"{a}/", f"{b}/"]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    # (a tree changing under rsync, a replica being applied, ends it with 23 or 24: not equal yet, asked again)
    return done.stdout.splitlines() + (
        [f"rsync exit {done.returncode}: {done.stderr[-300:]}"] if done.returncode else []
    )


def same(lab: Lab, active: str, *standbys: str, timeout: float = 120) -> None:
    src = root(lab, active)
    left: dict[str, list[str]] = {}

    def equal() -> bool:
        left.clear()
        left.update({h: d for h in standbys if (d := differences(src, root(lab, h)))})
        return not left

    assert eventually(equal, timeout=timeout, interval=1, what=f"{', '.join(standbys)} equal to {active}"), {
        h: d[:10] for h, d in left.items()
    }


def rows(lab: Lab, host: str) -> dict[str, dict[str, Any]]:
    """`share`'s rows in ``host``'s status, by standby."""
    body = twinsite_on(lab, host, "status")
    return {r["replica"]: r for r in body["result"]["scenarios"] if r["scenario"] == SHARE and r["role"] == "active"}


def role(lab: Lab, host: str) -> dict[str, Any]:
    return dict(twinsite_on(lab, host, "role", SHARE)["result"])


def put_back(lab: Lab) -> None:
    """prod1 active for `share` on every host, whatever a failed test left."""
    for h in lab.hosts:
        labmod.heal(lab, h.name)
    views = [role(lab, h) for h in HOSTS]
    if all(v["active"] == "prod1" and v["epoch"] == views[0]["epoch"] for v in views):
        return
    reset_roles(lab, SHARE, HOSTS, "prod1")


@pytest.fixture
def share(lab: Lab) -> Iterator[Lab]:
    ensure_configured(lab)
    put_back(lab)
    try:
        yield lab
    finally:
        put_back(lab)
        ensure_configured(lab)


def test_two_standbys_both_equal_one_cut_at_its_cap_then_dr2_follows_an_unplanned_failover_by_delta(
    share: Lab,
) -> None:
    lab, rng = share, random.Random(20)
    src, d1 = root(lab, "prod1"), root(lab, "dr1")

    # 1. both standbys receive the stream, under a write load
    for p in src.iterdir():  # (what an earlier run left)
        shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    populate(src, rng, 300)
    for _ in range(5):
        mutate(src, rng, 60)
    same(lab, "prod1", "dr1", "dr2")
    now = rows(lab, "prod1")
    assert sorted(now) == ["dr1", "dr2"] and all(r["state"] == "replicating" for r in now.values()), now

    # 2. dr2 cut: its journal fills to the cap and it is degraded; dr1 goes on as before
    labmod.cut(lab, "dr2")
    try:
        for i in range(40):
            (src / f"burst{i}").write_bytes(rng.randbytes(400_000))
        mutate(src, rng, 60)
        same(lab, "prod1", "dr1")
        assert eventually(
            lambda: rows(lab, "prod1")["dr2"]["journal_overflow"], timeout=60, what="dr2's journal at its cap"
        ), rows(lab, "prod1")["dr2"]
        now = rows(lab, "prod1")
        assert now["dr2"]["state"] == "degraded" and now["dr1"]["state"] == "replicating", now
        journal = ScenarioState(lab.host("prod1").private_dir("/var/lib/twinsite"), SHARE).sender(0, "dr2").journal
        assert sum(f.stat().st_size for f in journal.glob("*.seg")) <= CAP
    finally:
        labmod.heal(lab, "dr2")
    same(lab, "prod1", "dr1", "dr2", timeout=180)  # dr2 resynced by itself
    assert eventually(lambda: not rows(lab, "prod1")["dr2"]["journal_overflow"], timeout=30, what="overflow over")

    # 3. prod1's site fails, and dr2 is out of reach at that moment: an unplanned failover to dr1 cannot tell
    # dr2; when dr2 is back, dr1's stream (of the new epoch) is its proof of the switchover and it follows dr1
    labmod.cut(lab, "prod1")
    labmod.cut(lab, "dr2")
    try:
        switched = twinsite_on(lab, "dr1", "switchover", SHARE, "--unplanned", timeout=300)
        assert switched["ok"], switched
        promote = next(s for s in switched["result"]["steps"] if s["step"] == "promote")["result"]
        assert promote["standbys"]["dr2"].startswith("not told"), promote
        for _ in range(3):
            mutate(d1, rng, 40)  # users go on writing on dr1
        labmod.heal(lab, "dr2")
        assert eventually(lambda: role(lab, "dr2")["active"] == "dr1", timeout=60, what="dr2 following dr1")
        assert role(lab, "dr2")["epoch"] == role(lab, "dr1")["epoch"]
        same(lab, "dr1", "dr2", timeout=180)
        sent = sender_status.read(
            ScenarioState(lab.host("dr1").private_dir("/var/lib/twinsite"), SHARE).sender(0, "dr2").status
        )
        data = live_bytes(d1)
        assert sent is not None and sent.bytes_sent < data / 2, (sent, data)  # by delta, never a full copy
        print(f"dr2 followed dr1 by itself: {sent.bytes_sent} bytes sent for {data} bytes of data")
    finally:
        labmod.heal(lab, "dr2")
        labmod.heal(lab, "prod1")

    # 4. prod1 back: it rejoins as a standby, then the scenario switches back to it; both standbys follow
    rejoined = twinsite_on(lab, "prod1", "rejoin", SHARE, timeout=300)
    assert rejoined["ok"], rejoined
    same(lab, "dr1", "prod1", "dr2", timeout=180)
    back = twinsite_on(lab, "prod1", "switchback", SHARE, timeout=300)
    assert back["ok"], back
    assert all(role(lab, h)["active"] == "prod1" for h in HOSTS)
    mutate(src, rng, 40)
    same(lab, "prod1", "dr1", "dr2", timeout=180)
    assert on_host(lab, "dr2", TWINSITE, "status").returncode == 0

"""Real ansible-playbook runs against the lab: reachability, a cut site, and the lab_info module."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from harness.cli import ansible, recap
from twinsite import lab as labmod
from twinsite.lab.topology import Lab

pytestmark = pytest.mark.lab
PLAYBOOKS = Path(__file__).parent / "playbooks"


def test_ping_every_lab_host(lab: Lab) -> None:
    proc = ansible("ansible", "all", "-m", "ansible.builtin.ping")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for h in ("prod1", "dr1", "client1", "dr2"):
        assert re.search(rf"^{h} \| SUCCESS", proc.stdout, re.M), proc.stdout


def test_a_cut_site_is_reported_unreachable_fast_and_the_play_finishes(healed: Lab) -> None:
    # warm the ControlPersist masters first: the dangerous case is a cached connection to a host that dies
    assert ansible("ansible-playbook", str(PLAYBOOKS / "ping_all.yml")).returncode == 0
    labmod.cut(healed, "prod1")
    t0 = time.monotonic()
    proc = ansible("ansible-playbook", str(PLAYBOOKS / "ping_all.yml"), timeout=120)
    elapsed = time.monotonic() - t0
    rows = recap(proc.stdout)
    assert proc.returncode == 4, proc.stdout  # 4: some hosts unreachable
    assert rows["prod1"]["unreachable"] == 1
    assert rows["dr1"]["ok"] == 1 and rows["dr1"]["unreachable"] == 0
    assert rows["client1"]["ok"] == 1 and rows["client1"]["unreachable"] == 0
    assert rows["dr2"]["ok"] == 1 and rows["dr2"]["unreachable"] == 0
    assert elapsed < 30, f"the play took {elapsed:.1f} s with prod1 cut"


@pytest.mark.parametrize("check_mode", [False, True], ids=["normal", "check"])
def test_lab_info_module(lab: Lab, tmp_path: Path, check_mode: bool) -> None:
    out = tmp_path / "result.json"
    args = [str(PLAYBOOKS / "lab_info.yml"), "-e", f"out={out}", "-e", "require_up=true"]
    proc = ansible("ansible-playbook", *args, *(["--check"] if check_mode else []))
    if check_mode:  # the copy task that hands the result over does not write in check mode
        assert proc.returncode == 0, proc.stdout
        assert recap(proc.stdout)["localhost"]["changed"] == 1  # the copy *would* change; lab_info does not
        assert not out.exists()
        return
    assert proc.returncode == 0, proc.stdout
    result = json.loads(out.read_text())
    assert result["changed"] is False
    assert result["lab"]["state"] == "up"
    assert [h["name"] for h in result["lab"]["hosts"]] == ["prod1", "dr1", "client1", "dr2"]
    assert result["lab"]["hosts"][0]["sshd_pid"] == labmod.status(lab)["hosts"][0]["sshd_pid"]


def test_lab_info_require_up_fails_with_the_reason(healed: Lab, tmp_path: Path) -> None:
    labmod.cut(healed, "dr1")
    proc = ansible(
        "ansible-playbook", str(PLAYBOOKS / "lab_info.yml"), "-e", f"out={tmp_path / 'r.json'}", "-e", "require_up=true"
    )
    assert proc.returncode == 2, proc.stdout
    assert "the lab is not fully up: dr1 link is cut (run `twinsite lab up`)" in proc.stdout


def test_lab_info_reports_a_missing_cli_clearly(lab: Lab) -> None:
    proc = ansible("ansible", "localhost", "-m", "twinsite.dr.lab_info", "-a", "twinsite_cli=/nonexistent/twinsite")
    assert proc.returncode != 0
    assert "twinsite_cli=/nonexistent/twinsite is not an executable file on this host" in proc.stdout

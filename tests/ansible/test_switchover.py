"""The switchover module through playbooks/switchover.yml and playbooks/switchback.yml, real ansible runs on
the lab's `db` scenario: check mode changes nothing and shows the diff, a run switches, a second run
reports no change; the same for the switch-back."""

from __future__ import annotations

import pytest

from harness.cli import ansible, recap
from harness.db import role, wait_replicating
from twinsite.lab.topology import Lab

pytestmark = pytest.mark.lab


def play(name: str, *extra: str) -> tuple[str, dict[str, dict[str, int]]]:
    proc = ansible("ansible-playbook", f"playbooks/{name}.yml", "-e", "scenario=db", *extra, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:]
    return proc.stdout, recap(proc.stdout)


def test_switchover_and_switchback_playbooks_check_mode_diff_and_idempotence(db: Lab) -> None:
    lab = db
    epoch = role(lab, "dr1")["epoch"]
    out, rc = play("switchover", "--check", "--diff")
    assert rc["dr1"]["changed"] == 1 and rc["prod1"]["changed"] == 0
    assert "prod1 -> dr1: planned" in out
    assert f"-active: prod1 (epoch {epoch})" in out and f"+active: dr1 (epoch {epoch + 1})" in out
    assert role(lab, "dr1")["active"] == "prod1"  # check mode changed nothing

    out, rc = play("switchover", "-e", "confirm=true")
    assert rc["dr1"]["changed"] == 1, out[-3000:]
    assert "RTO: users without the application for" in out and "RPO: 0 s" in out
    assert (role(lab, "dr1")["active"], role(lab, "prod1")["active"]) == ("dr1", "dr1")
    out, rc = play("switchover", "-e", "confirm=true")
    assert rc["dr1"]["changed"] == 0, out[-3000:]  # already active: nothing to do
    assert "dr1 is the active host; nothing to do" in out

    wait_replicating(lab, "dr1")
    out, rc = play("switchback", "--check", "--diff")
    assert rc["prod1"]["changed"] == 1 and "dr1 -> prod1: planned" in out
    assert role(lab, "prod1")["active"] == "dr1"
    out, rc = play("switchback", "-e", "confirm=true")
    assert rc["prod1"]["changed"] == 1, out[-3000:]
    assert (role(lab, "dr1")["active"], role(lab, "prod1")["active"]) == ("prod1", "prod1")
    assert role(lab, "prod1")["epoch"] == epoch + 2
    out, rc = play("switchback", "-e", "confirm=true")
    assert rc["prod1"]["changed"] == 0, out[-3000:]


def test_without_confirmation_nothing_is_switched(db: Lab) -> None:
    proc = ansible(
        "ansible-playbook", "playbooks/switchover.yml", "-e", "scenario=db", "-e", "confirm=false", timeout=300
    )  # (no terminal: the pause gets no answer, and the play stops)
    assert proc.returncode != 0 and "not confirmed" in proc.stdout, proc.stdout[-3000:]
    assert role(db, "dr1")["active"] == "prod1" and role(db, "prod1")["active"] == "prod1"

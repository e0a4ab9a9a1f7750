"""configure.yml, the agent role and the scenario modules through real ansible-playbook runs on the lab."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.ansible.test_playbooks import PLAYBOOKS, ansible, recap
from twinsite.lab.topology import Lab

pytestmark = pytest.mark.lab
DEFINITION = {"master": "prod1", "replicas": ["dr1"], "roots": [{"path": "/srv/anstest"}]}


def test_configure_installs_declares_is_idempotent_and_check_mode_changes_nothing(lab: Lab) -> None:
    first = ansible("ansible-playbook", "playbooks/configure.yml", timeout=600)
    assert first.returncode == 0, first.stdout[-3000:]
    second = ansible("ansible-playbook", "playbooks/configure.yml", timeout=600)
    assert second.returncode == 0, second.stdout[-3000:]
    assert all(r["changed"] == 0 for r in recap(second.stdout).values()), second.stdout[-3000:]
    # the agent runs on prod1 and dr1 and replicates the lab's scenario
    marker = lab.host("prod1").private_dir("/srv") / "app" / f"configure-{time.monotonic_ns()}"
    marker.write_text("from prod1")
    replica = lab.host("dr1").private_dir("/srv") / "app" / marker.name
    deadline = time.monotonic() + 20
    while not replica.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert replica.read_text() == "from prod1"
    # --check --diff after a change made by hand shows the drift and does not repair it
    cfg = lab.host("dr1").private_dir("/etc/twinsite") / "scenarios" / "app.yml"
    original = cfg.read_text()
    cfg.write_text(original.replace("/srv/app", "/srv/elsewhere"))
    try:
        check = ansible("ansible-playbook", "playbooks/configure.yml", "--check", "--diff", timeout=600)
        assert check.returncode == 0, check.stdout[-3000:]
        assert recap(check.stdout)["dr1"]["changed"] == 1
        assert recap(check.stdout)["prod1"]["changed"] == 0
        assert "/srv/elsewhere" in check.stdout and "/srv/app" in check.stdout  # before and after
        assert "/srv/elsewhere" in cfg.read_text()  # untouched
    finally:
        cfg.write_text(original)


def test_invalid_configuration_stops_before_any_host_is_touched(lab: Lab, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(
        json.dumps(
            {
                "twinsite_scenarios": [
                    {
                        "name": "app",
                        "master": "prod1",
                        "replicas": ["dr1"],
                        "roots": [{"path": "/srv/app"}],
                        "replication": {"mode": "sometimes"},
                    }
                ]
            }
        )
    )
    proc = ansible("ansible-playbook", "playbooks/configure.yml", "-e", f"@{bad}", timeout=300)
    assert proc.returncode == 2
    assert "'sometimes' is not one of 'continuous', 'periodic'" in proc.stdout
    rows = recap(proc.stdout)
    assert set(rows) == {"localhost"}  # no lab host was reached


def run_scenario(tmp_path: Path, *extra: str, **vars: object) -> tuple[int, dict[str, object], str]:
    out = tmp_path / f"r{time.monotonic_ns()}.json"
    args = ["-e", json.dumps({"out": str(out), "config_dir": "/etc/twinsite/test-scenarios", **vars})]
    proc = ansible("ansible-playbook", str(PLAYBOOKS / "scenario.yml"), *args, *extra)
    return proc.returncode, json.loads(out.read_text()) if out.exists() else {}, proc.stdout


def test_scenario_module_normal_check_second_run_and_diff(lab: Lab, tmp_path: Path) -> None:
    cfgdir = lab.host("prod1").private_dir("/etc/twinsite") / "test-scenarios"
    for f in cfgdir.glob("*"):
        f.unlink()
    rc, res, out = run_scenario(tmp_path, "--check", "--diff", scenario_name="anstest", definition=DEFINITION)
    assert rc == 0, out
    assert res["changed"] is True and res["before"] == {"state": "absent"}
    assert not (cfgdir / "anstest.yml").exists()  # check mode wrote nothing
    assert "/srv/anstest" in out  # the diff shows the new definition
    rc, res, out = run_scenario(tmp_path, scenario_name="anstest", definition=DEFINITION)
    assert rc == 0 and res["changed"] is True, out
    assert (cfgdir / "anstest.yml").exists()
    rc, res, out = run_scenario(tmp_path, scenario_name="anstest", definition=DEFINITION)
    assert rc == 0 and res["changed"] is False, out
    rc, res, out = run_scenario(tmp_path, scenario_name="anstest", scenario_state="stopped")
    assert rc == 0 and res["changed"] is True and res["after"]["state"] == "stopped", out
    assert (cfgdir / "anstest.stopped").exists()
    rc, res, out = run_scenario(tmp_path, scenario_name="anstest", scenario_state="absent")
    assert rc == 0 and res["changed"] is True, out
    assert not (cfgdir / "anstest.yml").exists()


def test_scenario_module_refuses_a_bad_definition_and_changes_nothing(lab: Lab, tmp_path: Path) -> None:
    bad = {**DEFINITION, "replicas": [], "roots": [{"path": "relative"}]}
    rc, _res, out = run_scenario(tmp_path, scenario_name="anstest2", definition=bad)
    assert rc == 2
    assert "replicas: [] should be non-empty" in out
    assert "roots[0].path: 'relative' does not match" in out
    assert not (lab.host("prod1").private_dir("/etc/twinsite") / "test-scenarios" / "anstest2.yml").exists()

"""configure.yml, the agent role and the scenario modules through real ansible-playbook runs on the lab."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from pyVim.connect import Disconnect

from harness.cli import ansible, recap
from harness.vcenter import Vc
from harness.wait import eventually
from twinsite.lab.topology import Lab
from twinsite.state import stopped

pytestmark = pytest.mark.lab
PLAYBOOKS = Path(__file__).parent / "playbooks"
DEFINITION = {
    "master": "prod1",
    "replicas": ["dr1"],
    "roots": [{"path": "/srv/anstest"}],
    "replication": {"consistency": "file"},  # (/srv/anstest is on an ordinary filesystem)
}


def test_configure_installs_declares_is_idempotent_and_check_mode_shows_drift_without_repairing_it(
    lab: Lab,
) -> None:
    first = ansible("ansible-playbook", "playbooks/configure.yml", timeout=600)
    assert first.returncode == 0, first.stdout[-3000:]
    # the agent runs on prod1 and dr1 and replicates the lab's scenario
    marker = lab.host("prod1").private_dir("/srv") / "app" / f"configure-{time.monotonic_ns()}"
    marker.write_text("from prod1")
    replica = lab.host("dr1").private_dir("/srv") / "app" / marker.name
    eventually(replica.exists, timeout=20, interval=0.05, what="the marker on dr1")
    assert replica.read_text() == "from prod1"
    # the replica VM dr1 exists as declared (running, prod1's size) in the DR cluster
    vc = Vc(lab)
    vm = vc.vms()["dr1"]
    assert vm.runtime.powerState == "poweredOn" and vm.resourcePool.owner.name == "DR-Cluster"
    assert vm.config.hardware.numCPU == os.cpu_count()  # sized from prod1's facts
    # drift: a scenario file changed and the replica VM powered off by hand; --check --diff shows both and
    # repairs neither
    cfg = lab.host("dr1").private_dir("/etc/twinsite") / "scenarios" / "app.yml"
    original = cfg.read_text()
    cfg.write_text(original.replace("/srv/app", "/srv/elsewhere"))
    vc.wait(vm.PowerOffVM_Task())
    try:
        check = ansible(
            "ansible-playbook", "playbooks/configure.yml", "--check", "--diff", "-e", "twinsite_fail_on_change=true",
            timeout=600,
        )  # fmt: skip
        assert check.returncode == 2, check.stdout[-3000:]  # the drift check fails the job
        rows = recap(check.stdout)
        assert rows["dr1"]["changed"] == 1 and rows["prod1"]["changed"] == 0, check.stdout[-3000:]
        assert rows["localhost"]["changed"] == 1, check.stdout[-3000:]  # the replica VM
        assert "/srv/elsewhere" in check.stdout and "/srv/app" in check.stdout  # the scenario, before and after
        assert "-    power_state: poweredoff" in check.stdout and "+    power_state: poweredon" in check.stdout
        said = " ".join(check.stdout.split())  # (the callback folds long messages over lines)
        assert "2 difference(s) from the declaration: replica VM dr1: power on; " in said, check.stdout[-3000:]
        assert "scenario app on dr1: changed" in said
        assert "/srv/elsewhere" in cfg.read_text() and vm.runtime.powerState == "poweredOff"  # untouched
        # a run puts both back; the next one changes nothing
        repair = ansible("ansible-playbook", "playbooks/configure.yml", timeout=600)
        assert repair.returncode == 0, repair.stdout[-3000:]
        assert cfg.read_text() == original and vm.runtime.powerState == "poweredOn"
        second = ansible("ansible-playbook", "playbooks/configure.yml", timeout=600)
        assert second.returncode == 0, second.stdout[-3000:]
        assert all(r["changed"] == 0 for r in recap(second.stdout).values()), second.stdout[-3000:]
        assert "nothing: everything is as declared" in second.stdout
    finally:
        cfg.write_text(original)
        if vm.runtime.powerState != "poweredOn":
            vc.wait(vm.PowerOnVM_Task())
        Disconnect(vc.si)


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
    assert stopped.is_stopped(cfgdir, "anstest")
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

"""The lab's vCenter simulator: verified HTTPS, one user, and a DR-shaped inventory."""

from __future__ import annotations

import json
import secrets
import ssl
from pathlib import Path
from typing import Any

import pytest
from pyVim.connect import Disconnect
from pyVmomi import vim

from harness.cli import twinsite_cmd
from harness.vcenter import by_name, connect, wait_task
from twinsite.lab.topology import VCENTER_USER, Lab
from twinsite.state import events as state_events
from twinsite.state.layout import ScenarioState

pytestmark = pytest.mark.lab


def test_pyvmomi_finds_the_dr_cluster_and_the_template(lab: Lab) -> None:
    si = connect(lab)
    try:
        content = si.RetrieveContent()
        view = content.viewManager.CreateContainerView(content.rootFolder, [vim.ClusterComputeResource], True)
        clusters = {c.name: c for c in view.view}
        dr = clusters["DR-Cluster"]
        assert dr.parent.parent.name == "DR"  # host folder -> datacenter
        assert sorted(h.name for h in dr.host) == ["esx-dr-1", "esx-dr-2", "esx-dr-3"]
        vms = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True).view
        by_name = {v.name: v for v in vms}
        assert by_name["linux-template"].config.template is True
        assert by_name["prod1-vm"].config.template is False
    finally:
        Disconnect(si)


def test_wrong_password_is_refused(lab: Lab) -> None:
    with pytest.raises(vim.fault.InvalidLogin):
        connect(lab, password="not-the-password")


def test_certificate_is_checked_against_the_lab_ca(lab: Lab) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        connect(lab, context=ssl.create_default_context())  # system CAs only: the lab CA is not among them


def test_ha_and_drs_settings_are_kept_and_merged(lab: Lab) -> None:
    si = connect(lab)
    try:
        cluster = by_name(si.RetrieveContent(), vim.ClusterComputeResource)["Prod-Cluster"]
        before = cluster.configurationEx
        try:
            ha = vim.cluster.DasConfigInfo(
                enabled=True,
                admissionControlEnabled=True,
                admissionControlPolicy=vim.cluster.FailoverLevelAdmissionControlPolicy(failoverLevel=1),
                hostMonitoring="enabled",
            )
            drs = vim.cluster.DrsConfigInfo(enabled=True, defaultVmBehavior="fullyAutomated", vmotionRate=3)
            spec = vim.cluster.ConfigSpecEx(dasConfig=ha, drsConfig=drs)
            wait_task(cluster.ReconfigureComputeResource_Task(spec=spec, modify=True))
            das = cluster.configurationEx.dasConfig
            assert (das.enabled, das.admissionControlEnabled, das.hostMonitoring) == (True, True, "enabled")
            assert das.admissionControlPolicy.failoverLevel == 1
            assert cluster.configurationEx.drsConfig.enabled is True
            assert cluster.configurationEx.drsConfig.defaultVmBehavior == "fullyAutomated"

            # modify=True merges: only what the spec sets changes, HA is left as it was.
            spec = vim.cluster.ConfigSpecEx(drsConfig=vim.cluster.DrsConfigInfo(defaultVmBehavior="manual"))
            wait_task(cluster.ReconfigureComputeResource_Task(spec=spec, modify=True))
            config = cluster.configurationEx
            assert (config.drsConfig.enabled, config.drsConfig.defaultVmBehavior) == (True, "manual")
            assert config.drsConfig.vmotionRate == 3
            assert (config.dasConfig.enabled, config.dasConfig.admissionControlEnabled) == (True, True)
            assert config.dasConfig.admissionControlPolicy.failoverLevel == 1
        finally:
            # modify=False replaces the stored HA and DRS configs with the ones read at the start.
            spec = vim.cluster.ConfigSpecEx(dasConfig=before.dasConfig, drsConfig=before.drsConfig)
            wait_task(cluster.ReconfigureComputeResource_Task(spec=spec, modify=False))
        after = cluster.configurationEx
        assert after.dasConfig.enabled == before.dasConfig.enabled
        assert after.dasConfig.admissionControlPolicy == before.dasConfig.admissionControlPolicy
        assert after.drsConfig.enabled == before.drsConfig.enabled
        assert after.drsConfig.defaultVmBehavior == before.drsConfig.defaultVmBehavior
    finally:
        Disconnect(si)


def test_anti_affinity_rules_are_still_stored(lab: Lab) -> None:
    si = connect(lab)
    try:
        content = si.RetrieveContent()
        cluster = by_name(content, vim.ClusterComputeResource)["Prod-Cluster"]
        vm = by_name(content, vim.VirtualMachine)["prod1-vm"]
        rule = vim.cluster.AntiAffinityRuleSpec(name="test-vcenter-anti", enabled=True, vm=[vm])
        spec = vim.cluster.ConfigSpecEx(
            rulesSpec=[vim.cluster.RuleSpec(operation="add", info=rule)],
            drsConfig=vim.cluster.DrsConfigInfo(enabled=True),  # a DRS change in the same spec
        )
        wait_task(cluster.ReconfigureComputeResource_Task(spec=spec, modify=True))
        stored = [r for r in cluster.configurationEx.rule if r.name == "test-vcenter-anti"]
        try:
            assert len(stored) == 1
            assert [v.name for v in stored[0].vm] == ["prod1-vm"]
        finally:
            for r in stored:
                spec = vim.cluster.ConfigSpecEx(rulesSpec=[vim.cluster.RuleSpec(operation="remove", removeKey=r.key)])
                wait_task(cluster.ReconfigureComputeResource_Task(spec=spec, modify=True))
        assert not [r for r in cluster.configurationEx.rule if r.name == "test-vcenter-anti"]
    finally:
        Disconnect(si)


@pytest.mark.parametrize(
    ("site", "cores", "gib"),
    [("dr", 32, 256), ("prod", 16, 128)],
)
def test_hosts_have_a_realistic_capacity(lab: Lab, site: str, cores: int, gib: int) -> None:
    si = connect(lab)
    try:
        hosts = {n: h for n, h in by_name(si.RetrieveContent(), vim.HostSystem).items() if n.startswith(f"esx-{site}-")}
        assert sorted(hosts) == [f"esx-{site}-{i}" for i in (1, 2, 3)]
        for host in hosts.values():
            summary, hardware = host.summary.hardware, host.hardware
            assert (summary.numCpuCores, summary.numCpuThreads, summary.memorySize) == (cores, 2 * cores, gib << 30)
            assert summary.cpuMhz >= 2000
            assert (hardware.cpuInfo.numCpuCores, hardware.cpuInfo.numCpuThreads) == (cores, 2 * cores)
            assert hardware.memorySize == gib << 30
            assert host.summary.config.name == host.name
    finally:
        Disconnect(si)


def test_prod_vm_is_sized_like_a_server(lab: Lab) -> None:
    si = connect(lab)
    try:
        vm = by_name(si.RetrieveContent(), vim.VirtualMachine)["prod1-vm"]
        assert (vm.config.hardware.numCPU, vm.config.hardware.memoryMB) == (4, 8192)
        assert (vm.summary.config.numCpu, vm.summary.config.memorySizeMB) == (4, 8192)
    finally:
        Disconnect(si)


def test_a_relocated_then_removed_vm_leaves_no_trace_in_host_lists_or_rules(lab: Lab) -> None:
    si = connect(lab)
    try:
        content = si.RetrieveContent()
        vms = by_name(content, vim.VirtualMachine)
        hosts = by_name(content, vim.HostSystem)
        cluster = by_name(content, vim.ClusterComputeResource)["DR-Cluster"]
        dc = cluster.parent.parent
        spec = vim.vm.CloneSpec(location=vim.vm.RelocateSpec(pool=cluster.resourcePool), powerOn=False)
        task = vms["linux-template"].CloneVM_Task(folder=dc.vmFolder, name="relocate-probe", spec=spec)
        wait_task(task)
        vm = task.info.result
        start = vm.runtime.host.name
        target = next(n for n in ("esx-dr-1", "esx-dr-2", "esx-dr-3") if n != start)
        wait_task(vm.RelocateVM_Task(spec=vim.vm.RelocateSpec(host=hosts[target], pool=cluster.resourcePool)))
        assert vm.runtime.host.name == target
        assert [v for v in hosts[target].vm if v == vm] and not [v for v in hosts[start].vm if v == vm]
        rule = vim.cluster.AntiAffinityRuleSpec(name="probe-rule", enabled=True, vm=[vm, vms["linux-template"]])
        wait_task(
            cluster.ReconfigureComputeResource_Task(
                spec=vim.cluster.ConfigSpecEx(rulesSpec=[vim.cluster.RuleSpec(operation="add", info=rule)]), modify=True
            )
        )
        wait_task(vm.Destroy_Task())
        view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
        names = [v.name for v in view.view]  # a stale reference would fail here (ManagedObjectNotFound)
        assert "relocate-probe" not in names and "linux-template" in names
        kept = next(r for r in cluster.configurationEx.rule if r.name == "probe-rule")
        assert [v.name for v in kept.vm] == ["linux-template"]  # the removed VM left the rule, as in vCenter
        wait_task(
            cluster.ReconfigureComputeResource_Task(
                spec=vim.cluster.ConfigSpecEx(rulesSpec=[vim.cluster.RuleSpec(operation="remove", removeKey=kept.key)]),
                modify=True,
            )
        )
    finally:
        Disconnect(si)


def test_fence_powers_a_vm_off_once_records_it_says_so_when_it_was_off_and_releases(lab: Lab, tmp_path: Path) -> None:
    si = connect(lab)
    env = {
        "TWINSITE_VCENTER_HOSTNAME": lab.ctl_address,
        "TWINSITE_VCENTER_USERNAME": VCENTER_USER,
        "TWINSITE_VCENTER_PASSWORD": lab.vcenter_password_file.read_text().strip(),
        "TWINSITE_VCENTER_CA_FILE": str(lab.ca_cert),
    }
    record = ScenarioState(tmp_path, "db").fence_record
    try:
        content = si.RetrieveContent()
        cluster = by_name(content, vim.ClusterComputeResource)["Prod-Cluster"]
        task = by_name(content, vim.VirtualMachine)["prod1-vm"].CloneVM_Task(
            folder=cluster.parent.parent.vmFolder,
            name="fence-probe",
            spec=vim.vm.CloneSpec(location=vim.vm.RelocateSpec(pool=cluster.resourcePool), powerOn=False),
        )
        wait_task(task)
        vm = task.info.result
        wait_task(vm.PowerOnVM_Task())
        first = twinsite_cmd("fence", "fence-probe", "--datacenter", "Prod", "--record", str(record), "--json", env=env)
        assert first.returncode == 0, first.stdout + first.stderr
        result = json.loads(first.stdout)["result"]
        assert (result["previous_state"], result["action"], result["changed"]) == ("poweredon", "powered off", True)
        assert vm.runtime.powerState == "poweredOff"
        again = twinsite_cmd("fence", "fence-probe", "--record", str(record), "--json", env=env)
        assert json.loads(again.stdout)["result"]["action"] == "already off"
        events = state_events.read(record)
        assert [(e["event"], e["vm"], e["changed"]) for e in events] == [
            ("fence", "fence-probe", True),
            ("fence", "fence-probe", False),
        ]
        released = twinsite_cmd("fence", "fence-probe", "--release", "--json", env=env)  # its site is repaired
        assert json.loads(released.stdout)["result"]["action"] == "powered on", released.stdout + released.stderr
        assert vm.runtime.powerState == "poweredOn"
        again = twinsite_cmd("fence", "fence-probe", "--release", "--json", env=env)
        assert json.loads(again.stdout)["result"]["action"] == "already on"
        wait_task(vm.PowerOffVM_Task())
        unknown = twinsite_cmd("fence", "no-such-vm", "--json", env=env)
        assert unknown.returncode == 15
        assert "no virtual machine named 'no-such-vm'" in json.loads(unknown.stdout)["error"]["message"]
        assert env["TWINSITE_VCENTER_PASSWORD"] not in first.stdout + again.stdout + unknown.stdout
        wait_task(vm.Destroy_Task())
    finally:
        Disconnect(si)


def test_the_after_pass_vm_copy_action_copies_the_replica_keeps_the_newest_and_records_it(
    lab: Lab, tmp_path: Path
) -> None:
    """The after-pass actions as a passing test runs them (recovery.actions.run_all) against the simulator: a
    vm_copy makes <vm>-copy-<test id>, powered off and marked with the test, and its evidence names it; the same
    test again reports it; a later test's copy from its own snapshot replaces the older copy (keep 1); a missing
    datastore is a failed action (recorded, with the datastore and the datacenter) that makes nothing. The
    source is a VM the test makes, not the lab's dr1 (another test may be using it). What the simulator cannot
    show (a copy from a snapshot's disks, another datastore or datacenter): docs/vsphere.md."""
    from harness.vcenter import Vc
    from twinsite.recovery.actions import run_all

    vc = Vc(lab)
    src = f"arsrc-{secrets.token_hex(3)}"
    conn = {
        "hostname": lab.ctl_address,
        "username": VCENTER_USER,
        "password_file": str(lab.vcenter_password_file),
        "ca_file": str(lab.ca_cert),
    }
    copy = {"type": "vm_copy", "vm": src, "datastore": "LocalDS_0", "keep": 1, **conn}

    def facts(test: str) -> dict[str, Any]:
        return {"id": test, "scenario": "db", "host": "dr1", "tested": [{"root": "/srv/db", "seq": 7}]}

    def run(specs: list[dict[str, Any]], test: str) -> list[dict[str, Any]]:
        return run_all(specs, facts=facts(test), roots=[tmp_path], plugins=tmp_path)

    try:
        vc.clone("linux-template", src)
        [first] = run([copy], "t1")
        assert first["ok"] is True, first
        assert {k: first[k] for k in ("type", "vm", "copy", "datastore", "datacenter", "made", "removed")} == {
            "type": "vm_copy", "vm": src, "copy": f"{src}-copy-t1", "datastore": "LocalDS_0", "datacenter": "DR",
            "made": True, "removed": [],
        }  # fmt: skip
        assert first["snapshot"] is None and first["seconds"] > 0
        made = vc.vms()[f"{src}-copy-t1"]
        assert made.runtime.powerState == "poweredOff" and [d.name for d in made.datastore] == ["LocalDS_0"]
        mark = json.loads(next(o.value for o in made.config.extraConfig if o.key == "twinsite.copy"))
        assert (mark["source"], mark["name"]) == (src, f"{src}-copy-t1")
        assert mark["label"] == "assured-recovery test t1 of db (/srv/db at seq 7)"

        [again] = run([copy], "t1")
        assert again["ok"] is True and again["made"] is False and again["removed"] == [], again

        snap = {"type": "snapshot", "vm": src, **conn}
        taken, second = run([snap, {**copy, "from_snapshot": True}], "t2")
        assert taken["ok"] is True and taken["snapshot"] == "twinsite-test-t2", taken
        assert second["ok"] is True, second
        assert (second["copy"], second["snapshot"], second["removed"]) == (
            f"{src}-copy-t2",
            "twinsite-test-t2",
            [f"{src}-copy-t1"],
        )
        assert sorted(n for n in vc.vms() if n.startswith(src)) == [src, f"{src}-copy-t2"]

        [failed] = run([{**copy, "datastore": "NoSuchDS"}], "t3")
        assert (
            failed["ok"] is False and f"the copy of {src}: no datastore named 'NoSuchDS' in DR" in failed["detail"]
        ), failed
        assert sorted(n for n in vc.vms() if n.startswith(src)) == [src, f"{src}-copy-t2"]
    finally:
        vc.remove_vms(src)
        left = [n for n in vc.vms() if n.startswith(src)]
        Disconnect(vc.si)
    assert left == []

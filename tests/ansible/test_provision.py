"""playbooks/provision_replicas.yml on the lab's vCenter simulator, with a site of its own: a two-node
production cluster (explicit sizes), a V2V replica of prod1-vm and a P2V replica sized from prod1's facts.
Check mode creates nothing; a run creates and places them as planned; a second run changes nothing."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest
import yaml
from pyVmomi import vim

from harness.cli import ansible, recap
from harness.vcenter import Vc
from twinsite.lab.topology import Lab

pytestmark = pytest.mark.lab


def site(suffix: str) -> dict[str, object]:
    net = {"networks": ["VM Network"]}
    return {
        "twinsite_replica_vms": [
            {"name": f"sqla-{suffix}", "cpus": 8, "memory_mb": 32768, "cluster": f"sql-{suffix}", **net},
            {"name": f"sqlb-{suffix}", "cpus": 8, "memory_mb": 32768, "cluster": f"sql-{suffix}", **net},
            {"name": f"web-{suffix}", "source_vm": "prod1-vm", "network_map": {"DC1_DVPG0": "VM Network"}},
            {"name": f"p2v-{suffix}", "server": "prod1", **net},
        ]
    }


def provision(tmp_path: Path, suffix: str, state: str, *extra: str) -> str:
    doc = site(suffix)
    for vm in doc["twinsite_replica_vms"]:  # type: ignore[attr-defined]
        vm["state"] = state
    varfile = tmp_path / f"site-{state}.yml"
    varfile.write_text(yaml.safe_dump(doc))
    proc = ansible("ansible-playbook", "playbooks/provision_replicas.yml", "-e", f"@{varfile}", *extra, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return proc.stdout


def test_provision_plans_creates_places_and_is_idempotent(lab: Lab, tmp_path: Path) -> None:
    vc = Vc(lab)
    suffix = secrets.token_hex(3)
    names = [f"sqla-{suffix}", f"sqlb-{suffix}", f"web-{suffix}", f"p2v-{suffix}"]
    try:
        out = provision(tmp_path, suffix, "poweredon", "--check", "--diff")
        assert "consolidation: 4 servers on 3 hosts = 1.33 servers per host" in out
        assert f"anti-affinity rule sql-{suffix}: sqla-{suffix}, sqlb-{suffix}" in out
        assert "+    cpus: 8" in out  # diff mode: the new VMs' settings
        assert not set(names) & set(vc.vms())  # check mode created nothing
        assert f"twinsite-sql-{suffix}" not in [r.name for r in vc.cluster().configurationEx.rule or []]

        out = provision(tmp_path, suffix, "poweredon")
        vms = vc.vms()
        hosts = {n: vms[n].runtime.host.name for n in names}
        for n in names:  # each where the plan put it
            assert f"{hosts[n]}" in next(line for line in out.splitlines() if f" {n}" in line and "esx-dr-" in line)
        assert hosts[names[0]] != hosts[names[1]]  # the cluster's nodes apart
        assert (vms[names[2]].config.hardware.numCPU, vms[names[2]].config.hardware.memoryMB) == (4, 8192)  # V2V
        nics = [d for d in vms[names[2]].config.hardware.device if isinstance(d, vim.vm.device.VirtualEthernetCard)]
        assert [n.backing.deviceName for n in nics] == ["VM Network"]  # mapped from prod1-vm's DC1_DVPG0
        meminfo = Path("/proc/meminfo").read_text().splitlines()
        mem_kib = int(next(x for x in meminfo if x.startswith("MemTotal")).split()[1])
        p2v = vms[names[3]].config.hardware
        assert p2v.numCPU == os.cpu_count()  # prod1 is a namespace of this machine: its facts show these CPUs
        assert p2v.memoryMB == -(-(mem_kib // 1024) // 4) * 4  # prod1's memory (its facts), to a multiple of 4 MB
        rule = next(r for r in vc.cluster().configurationEx.rule or [] if r.name == f"twinsite-sql-{suffix}")
        assert sorted(v.name for v in rule.vm) == sorted(names[:2])

        out = provision(tmp_path, suffix, "poweredon")
        assert recap(out)["localhost"]["changed"] == 0, out[-3000:]
    finally:
        provision(tmp_path, suffix, "absent")
        for r in vc.cluster().configurationEx.rule or []:
            if r.name == f"twinsite-sql-{suffix}":
                vc.reconfigure_cluster(
                    vim.cluster.ConfigSpecEx(rulesSpec=[vim.cluster.RuleSpec(operation="remove", removeKey=r.key)])
                )
    assert not set(names) & set(vc.vms())

"""playbooks/provision_replicas.yml on the lab's vCenter simulator, with a site of its own: a two-node
production cluster (explicit sizes), a V2V replica of prod1-vm with a data disk and a P2V replica sized from
prod1's facts, standing in for the lab's standby dr2. Check mode creates nothing; a run creates and places them
as planned, checking that their disks and dr2's room for journal, rewind log and spool fit on the datastore; a
second run changes nothing; a data disk larger than the datastore's free space is refused, by how much."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import pytest
import yaml
from pyVmomi import vim

from harness.cli import REPO, ansible, recap
from harness.vcenter import Vc
from twinsite.lab.topology import Lab
from twinsite.sync.progress import human_bytes

pytestmark = pytest.mark.lab


def site(suffix: str, web_disk: str = "1GiB") -> dict[str, object]:
    net = {"networks": ["VM Network"]}
    return {
        "twinsite_replica_vms": [
            {"name": f"sqla-{suffix}", "cpus": 8, "memory_mb": 32768, "cluster": f"sql-{suffix}", **net},
            {"name": f"sqlb-{suffix}", "cpus": 8, "memory_mb": 32768, "cluster": f"sql-{suffix}", **net},
            {"name": f"web-{suffix}", "source_vm": "prod1-vm", "network_map": {"DC1_DVPG0": "VM Network"},
             "disks": [{"size": web_disk, "provisioning": "thick"}]},
            {"name": f"p2v-{suffix}", "server": "prod1", "standby": "dr2", **net},
        ]
    }  # fmt: skip


def provision(tmp_path: Path, suffix: str, state: str, *extra: str, web_disk: str = "1GiB", ok: bool = True) -> str:
    doc = site(suffix, web_disk)
    for vm in doc["twinsite_replica_vms"]:  # type: ignore[attr-defined]
        vm["state"] = state
    varfile = tmp_path / f"site-{state}.yml"
    varfile.write_text(yaml.safe_dump(doc))
    proc = ansible("ansible-playbook", "playbooks/provision_replicas.yml", "-e", f"@{varfile}", *extra, timeout=300)
    assert (proc.returncode == 0) == ok, proc.stdout[-4000:] + proc.stderr[-2000:]
    return proc.stdout


SIZES = {"": 1, "B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}


def room_of(standby: str) -> int:
    """What the lab's scenarios declare for a standby, summed here from the inventory's text with the schema's
    defaults (journal 1GiB, rewind log 10GiB when CDP is on, spool 10GiB), not by the code under test."""
    doc = yaml.safe_load((REPO / "inventories/lab/group_vars/all.yml").read_text())

    def size(text: Any) -> int:
        if isinstance(text, int):
            return text
        number = text.rstrip("KMGTiB")
        return int(float(number) * SIZES[text[len(number) :]])

    total = 0
    for s in doc["twinsite_scenarios"]:
        if standby in s["replicas"]:
            total += size(s.get("journal", {}).get("max_size", "1GiB"))
            cdp = s.get("cdp", {})
            total += size(cdp.get("max_size", "10GiB")) if cdp.get("enabled") else 0
            total += size(s.get("assured_recovery", {}).get("spool", {}).get("max_size", "10GiB"))
    return total


def disk_bytes(vm: Any) -> int:
    return sum(
        d.capacityInBytes or d.capacityInKB * 1024
        for d in vm.config.hardware.device
        if isinstance(d, vim.vm.device.VirtualDisk)
    )


def test_provision_plans_creates_places_and_is_idempotent(lab: Lab, tmp_path: Path) -> None:
    vc = Vc(lab)
    suffix = secrets.token_hex(3)
    names = [f"sqla-{suffix}", f"sqlb-{suffix}", f"web-{suffix}", f"p2v-{suffix}"]
    try:
        # the datastore needs the template's disks thrice, prod1-vm's disks and the data disk, and dr2's room
        vms = vc.vms()
        need = 3 * disk_bytes(vms["linux-template"]) + disk_bytes(vms["prod1-vm"]) + 2**30 + room_of("dr2")
        assert room_of("dr2") > 10 * 2**30  # (dr2 is the standby of the share scenario: at least its spool)
        datastore = next(d for d in vms["linux-template"].datastore if d.name == "LocalDS_0")
        free = datastore.summary.freeSpace
        out = provision(tmp_path, suffix, "poweredon", "--check", web_disk="100TiB", ok=False)
        short = need - 2**30 + 100 * 2**40 - free
        assert f"datastore 'LocalDS_0' is short by {short} bytes (" in out, out[-3000:]
        assert f"and it has {free} bytes (" in out
        assert not set(names) & set(vc.vms())

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
        assert f"datastore LocalDS_0: {human_bytes(need)} needed of {human_bytes(free)} free" in out  # the plan
        data = [d for d in vms[names[2]].config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)][-1]
        assert (data.capacityInBytes, data.backing.thinProvisioned, data.backing.eagerlyScrub) == (2**30, False, False)
        rule = next(r for r in vc.cluster().configurationEx.rule or [] if r.name == f"twinsite-sql-{suffix}")
        assert sorted(v.name for v in rule.vm) == sorted(names[:2])

        out = provision(tmp_path, suffix, "poweredon")
        assert recap(out)["localhost"]["changed"] == 0, out[-3000:]
    finally:
        provision(tmp_path, suffix, "absent")
        vc.refresh_datastores()
        for r in vc.cluster().configurationEx.rule or []:
            if r.name == f"twinsite-sql-{suffix}":
                vc.reconfigure_cluster(
                    vim.cluster.ConfigSpecEx(rulesSpec=[vim.cluster.RuleSpec(operation="remove", removeKey=r.key)])
                )
    assert not set(names) & set(vc.vms())

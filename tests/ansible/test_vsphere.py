"""The vSphere modules through real ansible-playbook runs against the lab's vCenter simulator (HTTPS, the
lab's CA): check mode changes nothing, a run makes it so, a second run changes nothing, diff shows the
change, drift is put right, and bad input fails with a clear message. What vCenter holds is read back
independently with pyVmomi."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyVim.connect import Disconnect
from pyVmomi import vim

from harness.cli import ansible, recap
from harness.vcenter import Vc
from twinsite.lab.topology import VCENTER_USER, Lab

pytestmark = pytest.mark.lab
PLAYBOOKS = Path(__file__).parent / "playbooks"


@pytest.fixture
def vc(lab: Lab) -> Iterator[Vc]:
    v = Vc(lab)
    yield v
    Disconnect(v.si)


def play(tmp_path: Path, suffix: str, state: str, *extra: str) -> tuple[Any, dict[str, Any]]:
    out = tmp_path / f"{secrets.token_hex(4)}.json"
    proc = ansible(
        "ansible-playbook",
        str(PLAYBOOKS / "vsphere.yml"),
        *("-e", f"suffix={suffix}", "-e", f"test_state={state}", "-e", f"out={out}"),
        *("-e", f"test_folder=replicas-{suffix}/sql", "-e", f"test_pool=dr-{suffix}"),
        *extra,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return proc, json.loads(out.read_text())


def vcenter_env(lab: Lab, password: str | None = None) -> dict[str, str]:
    return {
        "TWINSITE_VCENTER_HOSTNAME": lab.ctl_address,
        "TWINSITE_VCENTER_USERNAME": VCENTER_USER,
        "TWINSITE_VCENTER_PASSWORD": password or lab.vcenter_password_file.read_text().strip(),
        "TWINSITE_VCENTER_CA_FILE": str(lab.ca_cert),
    }


def adhoc(
    lab: Lab, module: str, args: str, *extra: str, password: str | None = None
) -> tuple[int, dict[str, Any], str]:
    """One module run with the connection from the environment (the modules' fallback)."""
    saved = dict(os.environ)
    os.environ.update(vcenter_env(lab, password))
    try:
        proc = ansible("ansible", "localhost", "-m", f"twinsite.dr.{module}", "-a", args, "-o", *extra)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    body = proc.stdout.split("=>", 1)[1] if "=>" in proc.stdout else "{}"
    return proc.returncode, json.loads(body), proc.stdout + proc.stderr


def test_replica_vms_dr_cluster_and_snapshot_check_apply_idempotent_diff_drift(
    lab: Lab, vc: Vc, tmp_path: Path
) -> None:
    suffix = secrets.token_hex(3)
    names = [f"sql1-dr-{suffix}", f"sql2-dr-{suffix}"]
    rule = f"twinsite-sql-{suffix}"
    # start from a cluster without HA and DRS, so that the module has them to turn on
    vc.reconfigure_cluster(
        vim.cluster.ConfigSpecEx(
            dasConfig=vim.cluster.DasConfigInfo(enabled=False, admissionControlEnabled=False),
            drsConfig=vim.cluster.DrsConfigInfo(enabled=False),
        )
    )
    # a folder path and a resource pool to create the replicas in
    cluster = vc.cluster()
    top = cluster.parent.parent.vmFolder.CreateFolder(f"replicas-{suffix}")
    top.CreateFolder("sql")

    def share() -> Any:
        return vim.ResourceAllocationInfo(
            reservation=0, expandableReservation=True, limit=-1, shares=vim.SharesInfo(level="normal", shares=0)
        )

    pool = cluster.resourcePool.CreateResourcePool(
        name=f"dr-{suffix}", spec=vim.ResourceConfigSpec(cpuAllocation=share(), memoryAllocation=share())
    )
    try:
        _lifecycle(lab, vc, tmp_path, suffix, names, rule)
    finally:
        play(tmp_path, suffix, "absent")
        vc.wait(top.Destroy_Task())
        vc.wait(pool.Destroy_Task())
        cl = vc.cluster()
        for r in cl.configurationEx.rule or []:
            if r.name == rule:
                vc.reconfigure_cluster(
                    vim.cluster.ConfigSpecEx(rulesSpec=[vim.cluster.RuleSpec(operation="remove", removeKey=r.key)])
                )
    assert not set(names) & set(vc.vms())


def _lifecycle(lab: Lab, vc: Vc, tmp_path: Path, suffix: str, names: list[str], rule: str) -> None:
    # check mode: says what it would do, changes nothing
    proc, res = play(tmp_path, suffix, "poweredon", "--check", "--diff")
    assert [r["changed"] for r in res["vms"]["results"]] == [True, True]
    assert res["vms"]["results"][0]["actions"][0] == f"clone linux-template to {names[0]}"
    assert res["cluster"]["changed"] is True
    assert "+    memory_mb: 3004" in proc.stdout  # diff mode: the new VM's settings (memory rounded to 4 MB)
    assert not set(names) & set(vc.vms())
    das = vc.cluster().configurationEx.dasConfig
    assert not das.enabled
    assert "-    ha: false" in proc.stdout and "+    ha: true" in proc.stdout  # dr_cluster's diff
    assert "+        name: tested" in proc.stdout  # vm_snapshot's diff: the snapshot it would take
    assert rule not in [r.name for r in vc.cluster().configurationEx.rule or []]

    # the real run
    proc, res = play(tmp_path, suffix, "poweredon")
    assert recap(proc.stdout)["localhost"]["changed"] == 3
    vms = vc.vms()
    for name, host, ip in zip(names, ["esx-dr-1", "esx-dr-2"], ["10.77.1.31", "10.77.1.32"], strict=True):
        vm = vms[name]
        assert (vm.config.hardware.numCPU, vm.config.hardware.memoryMB) == (2, 3004)
        assert vm.runtime.host.name == host
        assert (vm.parent.parent.name, vm.parent.name) == (f"replicas-{suffix}", "sql")
        assert vm.resourcePool.name == f"dr-{suffix}"
        assert vm.runtime.powerState == "poweredOn"
        assert (vm.guest.hostName, vm.guest.ipAddress) == (name, ip)  # customized at power-on
        nics = [d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualEthernetCard)]
        assert [n.backing.deviceName for n in nics] == ["VM Network"]
    cfg = vc.cluster().configurationEx
    assert cfg.dasConfig.enabled and cfg.dasConfig.admissionControlEnabled
    assert cfg.dasConfig.admissionControlPolicy.failoverLevel == 1
    assert cfg.drsConfig.enabled and cfg.drsConfig.defaultVmBehavior == "fullyAutomated"
    ours = next(r for r in cfg.rule or [] if r.name == rule)
    assert sorted(v.name for v in ours.vm) == sorted(names)
    snaps = vms[names[0]].snapshot.rootSnapshotList
    assert [s.name for s in snaps] == ["tested"]
    assert res["snapshot"]["snapshot"]["name"] == "tested"

    # a second run changes nothing
    proc, res = play(tmp_path, suffix, "poweredon")
    assert recap(proc.stdout)["localhost"]["changed"] == 0, proc.stdout[-3000:]

    # drift: someone gave a replica 4 CPUs by hand. Taking CPUs away needs the VM off (vCenter's rule):
    # with the VM to stay on, the module refuses before changing anything, in check mode too; with
    # state poweredoff it powers off first, then resizes; check/diff shows it all and changes nothing
    vc.wait(vms[names[1]].ReconfigVM_Task(spec=vim.vm.ConfigSpec(numCPUs=4)))
    refused = ansible(
        "ansible-playbook",
        str(PLAYBOOKS / "vsphere.yml"),
        "-e",
        f"suffix={suffix}",
        "-e",
        "test_state=poweredon",
        "-e",
        f"out={tmp_path / 'refused.json'}",
        "--check",
    )
    assert refused.returncode != 0
    assert f"{names[1]} is running, and changing CPUs from 4 to 2 needs it powered off" in refused.stdout
    proc, res = play(tmp_path, suffix, "poweredoff", "--check", "--diff")
    assert [r["actions"] for r in res["vms"]["results"]] == [
        ["power off"],
        ["power off first", "size 2 CPU / 3004 MB", "power off"],
    ]
    assert "-    cpus: 4\n+    cpus: 2" in proc.stdout
    assert vc.vms()[names[1]].config.hardware.numCPU == 4
    assert vc.vms()[names[1]].runtime.powerState == "poweredOn"
    play(tmp_path, suffix, "poweredoff")
    assert vc.vms()[names[1]].config.hardware.numCPU == 2
    assert vc.vms()[names[1]].runtime.powerState == "poweredOff"
    proc, res = play(tmp_path, suffix, "poweredon")
    assert recap(proc.stdout)["localhost"]["changed"] == 1  # powered on again, nothing else
    assert [r["actions"] for r in res["vms"]["results"]] == [["power on"], ["power on"]]

    _snapshots(lab, vc, names[0])

    # absent: powered off and removed; a second time there is nothing to do
    proc, res = play(tmp_path, suffix, "absent")
    assert [r["actions"] for r in res["vms"]["results"]] == [["power off", "remove"]] * 2
    assert not set(names) & set(vc.vms())
    proc, res = play(tmp_path, suffix, "absent")
    assert recap(proc.stdout)["localhost"]["changed"] == 0


def _snapshots(lab: Lab, vc: Vc, name: str) -> None:
    """Names are ambiguous: a second snapshot called `tested` makes choosing by name an error; ids work."""
    vm = vc.vms()[name]
    vc.wait(vm.CreateSnapshot_Task(name="tested", description="made by hand", memory=False, quiesce=False))
    rc, out, text = adhoc(lab, "vm_snapshot", f"vm={name} name=tested state=absent")
    assert rc != 0 and "2 snapshots of" in out["msg"] and "called 'tested' (ids " in out["msg"], text
    ids = [s["id"] for s in _tree(vc.vms()[name])]
    assert len(ids) == 2
    rc, out, text = adhoc(lab, "vm_snapshot", f"vm={name} snapshot_id={ids[1]} state=absent")
    assert rc == 0 and out["changed"] is True, text
    assert [s["id"] for s in _tree(vc.vms()[name])] == ids[:1]
    rc, out, text = adhoc(lab, "vm_snapshot", f"vm={name} snapshot_id={ids[1]} state=absent")
    assert rc == 0 and out["changed"] is False, text  # removed already
    rc, out, text = adhoc(lab, "vm_snapshot", f"vm={name} snapshot_id={ids[1]} state=reverted")
    assert rc != 0 and f"has no snapshot with id {ids[1]}" in out["msg"], text
    rc, out, text = adhoc(lab, "vm_snapshot", f"vm={name} name=tested state=reverted")
    assert rc == 0 and out["changed"] is True and out["snapshot"]["current"] is True, text
    rc, out, text = adhoc(lab, "vm_snapshot", f"vm={name} name=tested state=absent")
    assert rc == 0 and out["changed"] is True and out["snapshots"] == [], text
    assert vc.vms()[name].snapshot is None


def _tree(vm: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def walk(trees: Any) -> None:
        for t in trees or []:
            out.append({"id": t.id, "name": t.name})
            walk(t.childSnapshotList)

    walk(vm.snapshot.rootSnapshotList if vm.snapshot else [])
    return out


@pytest.mark.parametrize(
    ("module", "args", "message"),
    [
        (
            "replica_vm",
            "name=x datacenter=DR cluster=DR-Cluster template=no-such-template",
            "no virtual machine named 'no-such-template' in datacenter DR",
        ),
        (
            "replica_vm",
            "name=x datacenter=DR cluster=No-Cluster template=linux-template",
            "no cluster named 'No-Cluster' in DR",
        ),
        ("dr_cluster", "datacenter=Nowhere cluster=DR-Cluster", "no datacenter named 'Nowhere'"),
        ("dr_cluster", "datacenter=DR cluster=DR-Cluster host_failures=3", "which has 3 host(s)"),
        ("vm_snapshot", "vm=no-such-vm name=x state=reverted", "no virtual machine named 'no-such-vm'"),
    ],
    ids=["unknown-template", "unknown-cluster", "unknown-datacenter", "too-many-failures", "unknown-vm"],
)
def test_unknown_objects_fail_clearly_even_in_check_mode(lab: Lab, module: str, args: str, message: str) -> None:
    rc, out, text = adhoc(lab, module, args, "--check")
    assert rc != 0 and message in out["msg"], text
    assert out.get("changed") is not True


def test_wrong_password_is_refused_and_never_shown(lab: Lab) -> None:
    wrong = "Wr0ng-" + secrets.token_hex(8)
    rc, out, text = adhoc(lab, "dr_cluster", "datacenter=DR cluster=DR-Cluster", "--check", password=wrong)
    assert rc != 0
    assert "vCenter refused the login of 'administrator@vsphere.local': wrong user name or password" in out["msg"]
    assert wrong not in text


def test_an_untrusted_certificate_is_refused_unless_validation_is_turned_off(lab: Lab) -> None:
    system_cas = "ca_file=/etc/ssl/certs/ca-certificates.crt"
    rc, out, text = adhoc(lab, "dr_cluster", f"datacenter=DR cluster=DR-Cluster {system_cas}", "--check")
    assert rc != 0 and "the certificate of vCenter is not trusted" in out["msg"], text
    rc, out, text = adhoc(
        lab, "dr_cluster", f"datacenter=DR cluster=DR-Cluster {system_cas} validate_certs=false", "--check"
    )
    assert rc == 0, text


@pytest.mark.parametrize("peer", ["refuses", "never-answers", "not-vcenter"])
def test_an_unreachable_vcenter_fails_in_time_with_the_address(lab: Lab, peer: str) -> None:
    with contextlib.ExitStack() as stack:
        port = 9  # (nothing listens there: refused at once)
        if peer != "refuses":
            srv = stack.enter_context(socket.socket())
            srv.bind(("127.0.0.1", 0))
            srv.listen(8)
            port = srv.getsockname()[1]
        if peer == "not-vcenter":  # answers, but not TLS nor the vSphere API
            stack.enter_context(_answers(srv, b"HTTP/1.0 200 OK\r\n\r\nhello\n"))
        t0 = time.monotonic()
        rc, out, text = adhoc(
            lab, "dr_cluster", f"datacenter=DR cluster=DR-Cluster hostname=127.0.0.1 port={port} timeout=3", "--check"
        )
        assert rc != 0 and f"127.0.0.1:{port}" in out["msg"], text
        assert "cannot reach vCenter" in out["msg"] or "no vCenter answers there" in out["msg"], text
        assert "Traceback" not in text
        assert time.monotonic() - t0 < 30


@contextlib.contextmanager
def _answers(srv: socket.socket, reply: bytes) -> Iterator[None]:
    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = srv.accept()
                with conn:
                    conn.recv(65536)
                    conn.sendall(reply)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield


def test_dr_cluster_without_admission_control_is_idempotent_too(lab: Lab, vc: Vc) -> None:
    try:
        rc, out, text = adhoc(lab, "dr_cluster", "datacenter=DR cluster=DR-Cluster host_failures=0")
        assert rc == 0, text  # (changed or not, depending on what an earlier test left)
        rc, out, text = adhoc(lab, "dr_cluster", "datacenter=DR cluster=DR-Cluster host_failures=0")
        assert rc == 0 and out["changed"] is False, text  # the old policy kept by vCenter does not count
        das = vc.cluster().configurationEx.dasConfig
        assert das.enabled and not das.admissionControlEnabled
        assert out["settings"]["host_failures"] == 0
    finally:
        rc, out, text = adhoc(lab, "dr_cluster", "datacenter=DR cluster=DR-Cluster host_failures=1")
        assert rc == 0, text
    assert vc.cluster().configurationEx.dasConfig.admissionControlPolicy.failoverLevel == 1


# --- data disks ------------------------------------------------------------------------------------------

GiB = 2**30
DISKS = [  # (size, provisioning) as the playbook gives them, and what vSphere should hold for each
    {"size": "2GiB", "provisioning": "thin"},
    {"size": "1GiB", "provisioning": "thick", "datastore": "LocalDS_0"},
    {"size": "512MiB", "provisioning": "eager_zeroed_thick"},
]


def disks_play(
    tmp_path: Path, name: str, disks: list[dict[str, str]] | None, *extra: str
) -> tuple[Any, dict[str, Any]]:
    out = tmp_path / f"{secrets.token_hex(4)}.json"
    given = ["-e", json.dumps({"test_disks": disks})] if disks is not None else ["-e", "test_state=absent"]
    proc = ansible(
        "ansible-playbook", str(PLAYBOOKS / "replica_disks.yml"), "-e", f"test_name={name}", "-e", f"out={out}",
        *given, *extra,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return proc, json.loads(out.read_text())


def data_disks(vc: Vc, name: str) -> list[tuple[int, bool, bool, str, str]]:
    """The VM's disks after the template's, read with pyVmomi: (capacityInBytes, thinProvisioned, eagerlyScrub,
    datastore, file name), in controller and unit order."""
    vms = vc.vms()

    def disks(vm: Any) -> list[Any]:
        found = [d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)]
        return sorted(found, key=lambda d: (d.controllerKey, d.unitNumber))

    template = len(disks(vms["linux-template"]))
    return [
        (d.capacityInBytes, d.backing.thinProvisioned, d.backing.eagerlyScrub, d.backing.datastore.name,
         d.backing.fileName)
        for d in disks(vms[name])[template:]
    ]  # fmt: skip


def test_replica_vm_data_disks_check_create_idempotent_grow_and_refusals(lab: Lab, vc: Vc, tmp_path: Path) -> None:
    """Data disks thin, thick and eager-zeroed thick: check mode and diff show them and change nothing, a run
    adds them with the asked size, provisioning and datastore (read back with pyVmomi), a second run changes
    nothing, a larger size grows a disk, and a smaller size, another provisioning, or a shorter list are refused
    with the reason, leaving the disks as they were.

    What the simulator cannot show: it allocates nothing (a thick or eager-zeroed disk is a file like any other,
    its free space is a counter it lowers by the full size of each disk added or edited, and it never refuses a
    disk for want of space), and the lab's DR datacenter has one datastore, so a disk on another datastore
    than the VM's is not shown."""
    name = f"disks-dr-{secrets.token_hex(3)}"
    try:
        proc, res = disks_play(tmp_path, name, DISKS, "--check", "--diff")
        assert res["changed"] is True, res
        assert res["actions"] == [
            f"clone linux-template to {name}",
            "add data disk 1: 2.0 GiB thin on LocalDS_0",
            "add data disk 2: 1.0 GiB thick on LocalDS_0",
            "add data disk 3: 512.0 MiB eager_zeroed_thick on LocalDS_0",
        ]
        assert "+        provisioning: eager_zeroed_thick" in proc.stdout  # diff mode: the planned disks
        assert f"+        size: {2 * GiB}" in proc.stdout
        assert name not in vc.vms()

        proc, res = disks_play(tmp_path, name, DISKS)
        assert res["changed"] is True, res
        wanted = [(2 * GiB, True, False), (GiB, False, False), (GiB // 2, False, True)]
        held = data_disks(vc, name)
        assert [d[:3] for d in held] == wanted
        assert {d[3] for d in held} == {"LocalDS_0"} and all(d[4].startswith("[LocalDS_0] ") for d in held)
        assert res["settings"]["disks"] == [
            {"size": 2 * GiB, "datastore": "LocalDS_0", "provisioning": "thin"},
            {"size": GiB, "datastore": "LocalDS_0", "provisioning": "thick"},
            {"size": GiB // 2, "datastore": "LocalDS_0", "provisioning": "eager_zeroed_thick"},
        ]

        proc, res = disks_play(tmp_path, name, DISKS, "--diff")
        assert res["changed"] is False and recap(proc.stdout)["localhost"]["changed"] == 0, res
        assert data_disks(vc, name) == held

        grown = [{**DISKS[0], "size": "3GiB"}, *DISKS[1:]]
        proc, res = disks_play(tmp_path, name, grown, "--check")
        assert res["changed"] is True and res["actions"] == ["grow data disk 1 from 2.0 GiB to 3.0 GiB"], res
        assert data_disks(vc, name) == held
        proc, res = disks_play(tmp_path, name, grown)
        assert res["changed"] is True, res
        held = data_disks(vc, name)
        assert [d[:3] for d in held] == [(3 * GiB, True, False), *wanted[1:]]
        proc, res = disks_play(tmp_path, name, grown)
        assert res["changed"] is False, res

        refusals = [
            (
                [{**DISKS[0], "size": "1GiB"}, *DISKS[1:]],
                f"data disk 1 of {name} is {3 * GiB} bytes (3.0 GiB), and {GiB} bytes (1.0 GiB) are asked for:"
                " shrinking a disk loses data, twinsite never does it",
            ),
            (
                [grown[0], {**DISKS[1], "provisioning": "thin"}, DISKS[2]],
                f"data disk 2 of {name} has provisioning thick, thin is asked for: vSphere cannot change a disk's"
                " provisioning in place",
            ),
            (grown[:2], f"{name} has 3 data disks, the list has 2: twinsite never removes a disk"),
            ([*grown, {"size": "1GiB", "datastore": "NoSuchDS"}], "no datastore named 'NoSuchDS' in DR"),
        ]
        for disks, message in refusals:
            for mode in (["--check"], []):
                proc, res = disks_play(tmp_path, name, disks, *mode)
                assert res.get("failed") is True and message in res["msg"], (mode, res)
                assert "Traceback" not in proc.stdout
                assert data_disks(vc, name) == held  # nothing changed
    finally:
        disks_play(tmp_path, name, None)
        vc.refresh_datastores()
    assert name not in vc.vms()


# --- copies of a replica VM on other storage ---------------------------------------------------------------


def copies_on(vc: Vc, prefix: str) -> dict[str, Any]:
    """The VMs whose names start with ``prefix``, read with pyVmomi: datastores, file path, disks' datastores,
    power state and the twinsite.copy marker (None without one)."""
    out = {}
    for name, vm in vc.vms().items():
        if not name.startswith(prefix):
            continue
        mark = next((o.value for o in vm.config.extraConfig or [] if o.key == "twinsite.copy"), None)
        disks = [d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)]
        out[name] = {
            "datastores": sorted(d.name for d in vm.datastore),
            "path": vm.config.files.vmPathName,
            "disk_datastores": sorted({d.backing.datastore.name for d in disks}),
            "power": vm.runtime.powerState,
            "mark": json.loads(mark) if mark else None,
        }
    return out


def test_vm_copy_check_idempotent_keeps_the_newest_and_never_removes_what_it_did_not_make(
    lab: Lab, vc: Vc, tmp_path: Path
) -> None:
    """A copy of a VM: check mode and diff say what would be made and change nothing; a run makes it, powered off,
    on the datastore asked for, marked as ours (read back with pyVmomi); a second run reports it; past keep the
    oldest copy goes, but not a VM with a similar name that twinsite did not make, nor a hand-made clone of a copy
    (it carries the marker, not its name), nor a copy someone powered on; a VM of the copy's name that is not
    ours, a missing datastore, snapshot or datacenter fail clearly and make and remove nothing.

    What the simulator cannot show (docs/vsphere.md): the lab's DR datacenter has one datastore, LocalDS_0, so
    the copy lands on the datastore its source is on (a datastore added with CreateLocalDatastore cannot be
    taken away cleanly: Datastore.Destroy leaves it in the ESX host's datastore list, and the simulator has no
    RemoveDatastore; and a clone to a datastore the source's host does not mount crashes the simulator's
    request); a copy of a snapshot (it copies the current configuration whatever snapshot is named); a copy in
    another datacenter (it refuses the clone); the annotation (it drops it); bytes copied (a copy's disks are
    new files)."""
    src, ds = f"copysrc-{secrets.token_hex(3)}", "LocalDS_0"
    try:
        _copies(lab, vc, tmp_path, src, ds)
    finally:
        vc.remove_vms(src)
        vc.refresh_datastores()
    assert not [n for n in vc.vms() if n.startswith(src)]


def copy_play(tmp_path: Path, vm: str, name: str, datastore: str, *extra: str) -> tuple[Any, dict[str, Any]]:
    out = tmp_path / f"{secrets.token_hex(4)}.json"
    proc = ansible(
        "ansible-playbook", str(PLAYBOOKS / "vm_copy.yml"), "-e", f"out={out}", "-e", f"test_vm={vm}",
        "-e", f"test_name={name}", "-e", f"test_datastore={datastore}", "-e", "test_keep=2", "-e", "test_label=one",
        *extra,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return proc, json.loads(out.read_text())


def _copies(lab: Lab, vc: Vc, tmp_path: Path, src: str, ds: str) -> None:
    base = f"vm={src} datastore={ds}"
    vc.clone("linux-template", src)
    vc.clone("linux-template", f"{src}-copy-0")  # a similar name, not made by twinsite

    proc, res = copy_play(tmp_path, src, f"{src}-copy-1", ds, "--check", "--diff")
    assert res["changed"] is True and res["made"] is True, res
    assert res["actions"] == [f"clone {src} to {src}-copy-1 on datastore {ds} in datacenter DR"]
    assert f"+        name: {src}-copy-1" in proc.stdout and "-    copies: []" in proc.stdout  # diff mode: the copies
    assert f"{src}-copy-1" not in vc.vms()

    proc, res = copy_play(tmp_path, src, f"{src}-copy-1", ds)
    assert res["changed"] is True and res["made"] is True, res
    held = copies_on(vc, f"{src}-copy-1")[f"{src}-copy-1"]
    assert held["datastores"] == [ds] and held["disk_datastores"] == [ds], held
    assert held["path"].startswith(f"[{ds}] "), held
    assert held["power"] == "poweredOff"
    mark = held["mark"]
    assert (mark["source"], mark["name"], mark["label"]) == (src, f"{src}-copy-1", "one"), mark
    assert mark["source_uuid"] == vc.vms()[src].config.instanceUuid
    assert res["copy"]["datastore"] == ds and res["copy"]["datacenter"] == "DR"

    rc, out, text = adhoc(lab, "vm_copy", f"{base} name={src}-copy-1 keep=2 label=one", "--diff")
    assert rc == 0 and out["changed"] is False and out["made"] is False and out["actions"] == [], text
    assert sorted(copies_on(vc, f"{src}-copy-")) == [f"{src}-copy-0", f"{src}-copy-1"]

    # a hand-made clone of a copy carries its advanced settings (vCenter copies them), marker included
    first = vc.vms()[f"{src}-copy-1"]
    vc.clone(f"{src}-copy-1", f"{src}-copy-1-byhand", extra_config=list(first.config.extraConfig))
    assert copies_on(vc, f"{src}-copy-1-byhand")[f"{src}-copy-1-byhand"]["mark"]["name"] == f"{src}-copy-1"

    rc, out, text = adhoc(lab, "vm_copy", f"{base} name={src}-copy-2 keep=2")
    assert rc == 0 and out["changed"] is True and out["removed"] == [], text
    rc, out, text = adhoc(lab, "vm_copy", f"{base} name={src}-copy-3 keep=2", "--check")
    assert rc == 0 and out["removed"] == [f"{src}-copy-1"], text
    assert f"{src}-copy-1" in vc.vms() and f"{src}-copy-3" not in vc.vms()  # check mode changed nothing
    rc, out, text = adhoc(lab, "vm_copy", f"{base} name={src}-copy-3 keep=2")
    assert rc == 0 and out["changed"] is True and out["removed"] == [f"{src}-copy-1"], text
    assert [c["name"] for c in out["copies"]] == [f"{src}-copy-2", f"{src}-copy-3"]
    assert sorted(copies_on(vc, f"{src}-copy-")) == [
        f"{src}-copy-0", f"{src}-copy-1-byhand", f"{src}-copy-2", f"{src}-copy-3"
    ]  # fmt: skip

    # a copy someone powered on is theirs while it runs
    vc.wait(vc.vms()[f"{src}-copy-2"].PowerOnVM_Task())
    rc, out, text = adhoc(lab, "vm_copy", f"{base} name={src}-copy-4 keep=1")
    assert rc == 0 and out["removed"] == [f"{src}-copy-3"] and out["in_use"] == [f"{src}-copy-2"], text
    assert sorted(copies_on(vc, f"{src}-copy-")) == [
        f"{src}-copy-0", f"{src}-copy-1-byhand", f"{src}-copy-2", f"{src}-copy-4"
    ]  # fmt: skip

    refusals = [
        (
            f"vm={src} datastore=NoSuchDS name={src}-copy-5 keep=1",
            f"the copy of {src}: no datastore named 'NoSuchDS' in DR",
        ),
        (
            f"{base} name={src}-copy-0 keep=1",
            f"a VM named '{src}-copy-0' is in datacenter DR, and it is not a copy twinsite made of {src}",
        ),
        (f"{base} name={src}-copy-5 snapshot=tested", f"{src} has no snapshot called 'tested'"),
        (f"{base} name={src}-copy-5 datacenter=Nowhere", f"the copy of {src}: no datacenter named 'Nowhere'"),
    ]
    before = copies_on(vc, f"{src}-copy-")
    for args, message in refusals:
        for mode in (["--check"], []):
            rc, out, text = adhoc(lab, "vm_copy", args, *mode)
            assert rc != 0 and message in out["msg"], (mode, text)
            assert "Traceback" not in text
            assert copies_on(vc, f"{src}-copy-") == before  # nothing made, nothing removed

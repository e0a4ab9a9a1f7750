"""The replica VM of a protected server: cloned from a template at the DR site, sized like production.

:func:`ensure` reads what exists, compares it with the wanted :class:`ReplicaVm`, and (unless ``check``)
makes it so: clone, size (CPUs, memory), connect NICs to the DR networks, customize the guest for its DR
identity, set the power state; or power off and remove it for ``state="absent"``. It returns what it did
(or would do) with the managed settings before and after, so that a second run reports no change.

Sizing: P2V takes ``cpus``/``memory_mb`` from the production server's facts; V2V reads them from
``source_vm`` (and maps its NICs' networks through ``network_map``). Explicit values win. Memory is
rounded up to a multiple of 4 MB (vSphere's rule).

Placement (``host``, ``datastore``, ``folder``, ``resource_pool``) applies when the VM is created: after
that, DRS moves VMs, and fighting it on every run would undo its balancing.

Guest customization runs at the next power-on and needs the VM off; the customization last applied is
recorded in the VM's ``extraConfig`` (``twinsite.customization``), which is how a second run knows it is
done.

Data disks (``disks``, when given): the VM's disks after its template's own (as many as the template has,
in controller and unit order) are its data disks, matched to the list by position. A missing disk is added
on the first SCSI controller (on its datastore, default the VM's, with its provisioning), a smaller one is
grown. Nothing that would lose data or that vSphere cannot do in place is attempted; these are refused
before anything changes (in check mode too): shrinking a disk, changing an existing disk's provisioning or
datastore (both need a Storage vMotion), growing a disk of a VM that has snapshots, and disks beyond the
list (twinsite never removes one: list it, or remove it in vCenter).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from pyVmomi import vim

from twinsite.config.units import size_of
from twinsite.errors import ConfigError, VSphereError
from twinsite.sync.progress import human_bytes
from twinsite.vsphere import Outcome
from twinsite.vsphere.connection import Session, datacenter_of

STATES = ("present", "poweredon", "poweredoff", "absent")
MARK = "twinsite.customization"
PROVISIONING = ("thin", "thick", "eager_zeroed_thick")
_BACKING = {"thin": (True, False), "thick": (False, False), "eager_zeroed_thick": (False, True)}  # thin, eager


@dataclass(frozen=True)
class Customization:
    """The replica's DR identity, applied by vCenter's guest customization (Linux)."""

    hostname: str
    domain: str = ""
    ip: str | None = None  # None: DHCP
    netmask: str | None = None
    gateway: str | None = None
    dns_servers: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["dns_servers"] = list(self.dns_servers)
        return d


@dataclass(frozen=True)
class DataDisk:
    """A data disk of the replica VM: its size in bytes (rounded up to whole KiB, vSphere's unit), its datastore
    (None: the VM's) and its provisioning (thin, thick, or eager_zeroed_thick)."""

    size: int
    datastore: str | None = None
    provisioning: str = "thin"


def disks_from(items: list[dict[str, Any]] | None) -> tuple[DataDisk, ...] | None:
    """Data disks from plain mappings (``size`` as bytes or "20GiB", ``datastore``, ``provisioning``), as the
    module gives them; None stays None (disks not managed). Errors name the item and key."""
    if items is None:
        return None
    disks = []
    for i, item in enumerate(items):
        where = f"disks[{i}]"
        n = size_of(item.get("size"), where, "size", minimum=1)
        provisioning = item.get("provisioning") or "thin"
        if provisioning not in PROVISIONING:
            raise ConfigError(f"provisioning {provisioning!r} is not one of {', '.join(PROVISIONING)}", where=where)
        disks.append(DataDisk(size=n, datastore=item.get("datastore") or None, provisioning=provisioning))
    return tuple(disks)


@dataclass(frozen=True)
class ReplicaVm:
    name: str
    datacenter: str
    cluster: str
    template: str
    datastore: str | None = None
    folder: str | None = None  # a path under the datacenter's VM folder, e.g. "replicas/db"
    resource_pool: str | None = None  # default: the cluster's root pool
    host: str | None = None  # the ESX host to create it on (a placement plan's choice)
    cpus: int | None = None
    memory_mb: int | None = None
    source_vm: str | None = None  # V2V: size (and networks) from this production VM
    networks: tuple[str, ...] = ()  # the DR network of each NIC, in order
    network_map: tuple[tuple[str, str], ...] = ()  # production network -> DR network (with source_vm)
    customization: Customization | None = None
    state: str = "present"
    disks: tuple[DataDisk, ...] | None = None  # the data disks, by position; None: not managed


def ensure(session: Session, spec: ReplicaVm, *, check: bool = False) -> Outcome:
    """Bring the replica VM to ``spec`` (or only say what that would take, with ``check``)."""
    if spec.state not in STATES:
        raise VSphereError(f"state {spec.state!r} is not one of {', '.join(STATES)}")
    dc = session.datacenter(spec.datacenter)
    vm = session.vm_or_none(spec.name, within=dc.vmFolder)
    if spec.state == "absent":
        return _absent(session, vm, check)
    if vm is None:
        return _create(session, dc, spec, check)
    return _update(session, dc, vm, spec, check)


# -- reading ----------------------------------------------------------------------------------------
def _nics(vm: Any) -> list[Any]:
    return [d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualEthernetCard)]


def _network_of(dc: Any, nic: Any) -> str:
    b = nic.backing
    if isinstance(b, vim.vm.device.VirtualEthernetCard.DistributedVirtualPortBackingInfo):
        key = b.port.portgroupKey
        for n in dc.network:
            if isinstance(n, vim.dvs.DistributedVirtualPortgroup) and n.key == key:
                return str(n.name)
        return f"portgroup:{key}"
    if isinstance(b, vim.vm.device.VirtualEthernetCard.NetworkBackingInfo):
        return str(b.deviceName)
    return type(b).__name__


def _recorded_customization(vm: Any) -> dict[str, Any] | None:
    for opt in vm.config.extraConfig or []:
        if opt.key == MARK:
            try:
                value: dict[str, Any] = json.loads(opt.value)
                return value
            except ValueError:
                return None
    return None


def _disks(vm: Any) -> list[Any]:
    """The VM's virtual disks in controller and unit order (the template's come first)."""
    disks = [d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)]
    return sorted(disks, key=lambda d: (d.controllerKey, d.unitNumber if d.unitNumber is not None else -1, d.key))


def _capacity(disk: Any) -> int:
    return int(disk.capacityInBytes or 0) or int(disk.capacityInKB) * 1024


def disk_bytes(vm: Any) -> int:
    """The provisioned size of all of a VM's disks (what a replica cloned or sized from it needs)."""
    return sum(_capacity(d) for d in _disks(vm))


def _provisioning(disk: Any) -> str:
    b = disk.backing
    if getattr(b, "thinProvisioned", False):
        return "thin"
    return "eager_zeroed_thick" if getattr(b, "eagerlyScrub", False) else "thick"


def _disk_settings(disk: Any) -> dict[str, Any]:
    ds = getattr(disk.backing, "datastore", None)
    return {
        "size": _capacity(disk),
        "datastore": ds.name if ds is not None else None,
        "provisioning": _provisioning(disk),
    }


def home_datastore(vm: Any) -> str:
    """The datastore of the VM's files (its .vmx): where its data disks go by default."""
    path = str(vm.config.files.vmPathName or "")
    return path[1 : path.index("]")] if path.startswith("[") and "]" in path else str(vm.datastore[0].name)


def settings(dc: Any, vm: Any, template_disks: int = 0) -> dict[str, Any]:
    """The managed settings of an existing VM (what diff mode shows); its disks after the first
    ``template_disks`` (its template's) are its data disks."""
    return {
        "cpus": int(vm.config.hardware.numCPU),
        "memory_mb": int(vm.config.hardware.memoryMB),
        "networks": [_network_of(dc, n) for n in _nics(vm)],
        "customization": _recorded_customization(vm),
        "power_state": str(vm.runtime.powerState).lower(),
        "disks": [_disk_settings(d) for d in _disks(vm)[template_disks:]],
    }


def facts(session: Session, vm: Any) -> dict[str, Any]:
    return {
        "name": vm.name,
        "moid": vm._moId,
        "uuid": vm.config.instanceUuid,
        "host": vm.runtime.host.name if vm.runtime.host else None,
        "power_state": str(vm.runtime.powerState).lower(),
    }


# -- wanted ------------------------------------------------------------------------------------------
def source_size(vm: Any) -> tuple[int, int]:
    """(vCPUs, memory MB) of a production VM: what its V2V replica is sized from."""
    return int(vm.config.hardware.numCPU), int(vm.config.hardware.memoryMB)


def _memory(mb: int) -> int:
    return -(-mb // 4) * 4


def _wanted(
    session: Session, dc: Any, spec: ReplicaVm, base: Any, current: dict[str, Any], home: str
) -> dict[str, Any]:
    """Managed settings wanted; ``current`` (the template's, or the VM's own settings) fills in what is not
    managed; ``home`` is the datastore of the VM's files (its data disks' default)."""
    cpus, memory, networks = spec.cpus, spec.memory_mb, list(spec.networks)
    if spec.source_vm:
        src: Any = session.vm(spec.source_vm, where="any datacenter")
        size = source_size(src)
        cpus, memory = cpus or size[0], memory or size[1]
        if not networks:
            mapping = dict(spec.network_map)
            src_dc = datacenter_of(src)
            names = [_network_of(src_dc, n) for n in _nics(src)]
            missing = [n for n in names if n not in mapping]
            if spec.network_map and missing:
                raise VSphereError(
                    f"network_map has no DR network for {', '.join(sorted(set(missing)))} (NICs of {spec.source_vm})",
                    hint="map every production network of the source VM to a network of the DR site",
                )
            networks = [mapping[n] for n in names] if spec.network_map else []
    if (cpus is not None and cpus < 1) or (memory is not None and memory < 4):
        raise VSphereError(f"replica VM {spec.name}: cpus must be >= 1 and memory_mb >= 4")
    for n in networks:
        _network(dc, n)  # unknown networks fail here, in check mode too
    want = {
        "cpus": cpus or current["cpus"],
        "memory_mb": _memory(memory) if memory else current["memory_mb"],
        "networks": networks or current["networks"],
        "customization": spec.customization.to_dict() if spec.customization else current["customization"],
        "power_state": current["power_state"],
        "disks": current["disks"] if spec.disks is None else _wanted_disks(session, dc, spec, home),
    }
    if spec.state in ("poweredon", "poweredoff"):
        want["power_state"] = spec.state
    return want


def _wanted_disks(session: Session, dc: Any, spec: ReplicaVm, home: str) -> list[dict[str, Any]]:
    disks = []
    for i, d in enumerate(spec.disks or ()):
        where = f"replica VM {spec.name}, disks[{i}]"
        if d.provisioning not in PROVISIONING:
            raise VSphereError(f"provisioning {d.provisioning!r} is not one of {', '.join(PROVISIONING)}", where=where)
        if d.size < 1:
            raise VSphereError(f"size must be positive, got {d.size}", where=where)
        if d.datastore:
            session.datastore(dc, d.datastore)  # an unknown datastore fails here, in check mode too
        size = -(-d.size // 1024) * 1024
        disks.append({"size": size, "datastore": d.datastore or home, "provisioning": d.provisioning})
    return disks


def _owner(pool: Any) -> Any:
    """The cluster (compute resource) a resource pool belongs to."""
    while pool is not None and not isinstance(pool, vim.ComputeResource):
        pool = pool.parent
    return pool


def _network(dc: Any, name: str) -> Any:
    for n in dc.network:
        if n.name == name:
            return n
    raise VSphereError(
        f"no network named {name!r} in datacenter {dc.name}",
        hint=f"networks there: {', '.join(sorted({n.name for n in dc.network}))}",
    )


# -- changes -----------------------------------------------------------------------------------------
def _nic_changes(dc: Any, vm: Any, networks: list[str]) -> list[Any]:
    changes = []
    nics = _nics(vm)
    for i, name in enumerate(networks):
        if i < len(nics):
            if _network_of(dc, nics[i]) == name:
                continue
            nic, op = nics[i], vim.vm.device.VirtualDeviceSpec.Operation.edit
        else:
            nic, op = vim.vm.device.VirtualVmxnet3(key=-100 - i), vim.vm.device.VirtualDeviceSpec.Operation.add
            nic.connectable = vim.vm.device.VirtualDevice.ConnectInfo(startConnected=True, allowGuestControl=True)
        nic.backing = _backing(dc, name)
        changes.append(vim.vm.device.VirtualDeviceSpec(operation=op, device=nic))
    for nic in nics[len(networks) :]:
        changes.append(
            vim.vm.device.VirtualDeviceSpec(operation=vim.vm.device.VirtualDeviceSpec.Operation.remove, device=nic)
        )
    return changes


def _backing(dc: Any, name: str) -> Any:
    net: Any = _network(dc, name)
    if isinstance(net, vim.OpaqueNetwork):
        raise VSphereError(f"{name!r} is an NSX (opaque) network, which replica_vm does not connect yet")
    if isinstance(net, vim.dvs.DistributedVirtualPortgroup):
        switch: Any = net.config.distributedVirtualSwitch
        port = vim.dvs.PortConnection(portgroupKey=net.key, switchUuid=switch.uuid)
        return vim.vm.device.VirtualEthernetCard.DistributedVirtualPortBackingInfo(port=port)
    return vim.vm.device.VirtualEthernetCard.NetworkBackingInfo(deviceName=name, network=net)


def _customization_spec(c: dict[str, Any], nics: int) -> Any:
    cust = vim.vm.customization
    ip = cust.FixedIp(ipAddress=c["ip"]) if c.get("ip") else cust.DhcpIpGenerator()
    first = cust.AdapterMapping(
        adapter=cust.IPSettings(
            ip=ip, subnetMask=c.get("netmask"), gateway=[c["gateway"]] if c.get("gateway") else None
        )
    )
    others = [cust.AdapterMapping(adapter=cust.IPSettings(ip=cust.DhcpIpGenerator())) for _ in range(nics - 1)]
    return cust.Specification(
        identity=cust.LinuxPrep(hostName=cust.FixedName(name=c["hostname"]), domain=c.get("domain") or ""),
        globalIPSettings=cust.GlobalIPSettings(dnsServerList=list(c.get("dns_servers") or [])),
        nicSettingMap=[first, *others],
    )


def _diff_actions(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    out = []
    if (before.get("cpus"), before.get("memory_mb")) != (after["cpus"], after["memory_mb"]):
        out.append(f"size {after['cpus']} CPU / {after['memory_mb']} MB")
    if before.get("networks") != after["networks"]:
        out.append(f"connect NICs to {', '.join(after['networks'])}")
    if before.get("customization") != after["customization"] and after["customization"]:
        out.append(f"customize the guest as {after['customization']['hostname']}")
    if before.get("power_state") != after["power_state"]:
        out.append("power on" if after["power_state"] == "poweredon" else "power off")
    had = before.get("disks") or []
    for i, want in enumerate(after["disks"]):
        if i >= len(had):
            out.append(
                f"add data disk {i + 1}: {human_bytes(want['size'])} {want['provisioning']} on {want['datastore']}"
            )
        elif want["size"] > had[i]["size"]:
            out.append(f"grow data disk {i + 1} from {human_bytes(had[i]['size'])} to {human_bytes(want['size'])}")
    return out


def _check_disks(vm: Any, before: list[dict[str, Any]], after: list[dict[str, Any]]) -> None:
    """Refuse, before anything changes, what would lose data or what vSphere cannot do in place."""
    name = vm.name
    if len(before) > len(after):
        raise VSphereError(
            f"{name} has {len(before)} data disks, the list has {len(after)}: twinsite never removes a disk"
            f" (data disk {len(after) + 1}: {human_bytes(before[len(after)]['size'])} on"
            f" {before[len(after)]['datastore']})",
            where=f"replica VM {name}, disks",
            hint="list the disks beyond (data disks are matched by position after the template's own), or remove"
            " them in vCenter if their data is not needed",
        )
    for i, (had, want) in enumerate(zip(before, after, strict=False)):
        where = f"replica VM {name}, disks[{i}]"
        if want["size"] < had["size"]:
            raise VSphereError(
                f"data disk {i + 1} of {name} is {had['size']} bytes ({human_bytes(had['size'])}), and"
                f" {want['size']} bytes ({human_bytes(want['size'])}) are asked for: shrinking a disk loses data,"
                " twinsite never does it",
                where=where,
                hint="give its current size or more; to make it smaller, copy the data to a new, smaller disk",
            )
        for key, how in (("provisioning", "a disk's provisioning"), ("datastore", "the datastore of a disk")):
            if want[key] != had[key]:
                raise VSphereError(
                    f"data disk {i + 1} of {name} has {key} {had[key]}, {want[key]} is asked for: vSphere cannot"
                    f" change {how} in place",
                    where=where,
                    hint=f"keep {key}: {had[key]}, or migrate the disk (Storage vMotion, with a new"
                    f" {'disk format' if key == 'provisioning' else 'datastore'}) and run again",
                )
        if want["size"] > had["size"] and vm.snapshot is not None:
            raise VSphereError(
                f"data disk {i + 1} of {name} is to grow, but the VM has snapshots: vSphere cannot extend a disk"
                " that has snapshots",
                where=where,
                hint="remove the VM's snapshots (twinsite.dr.vm_snapshot state: absent) and run again",
            )


def _scsi_slots(vm: Any, count: int) -> list[tuple[Any, int]]:
    """``count`` free (controller, unit) places on the VM's first SCSI controller."""
    controllers = sorted(
        (d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualSCSIController)),
        key=lambda c: c.busNumber,
    )
    if not controllers:
        raise VSphereError(f"{vm.name} has no SCSI controller to add data disks to", hint="give the template one")
    ctrl = controllers[0]
    taken = {d.unitNumber for d in vm.config.hardware.device if d.controllerKey == ctrl.key}
    taken.add(ctrl.scsiCtlrUnitNumber if ctrl.scsiCtlrUnitNumber is not None else 7)
    free = [u for u in range(16) if u not in taken]
    if len(free) < count:
        raise VSphereError(
            f"{vm.name}: SCSI controller {ctrl.busNumber} has {len(free)} free units, {count} data disks to add",
            hint="add a SCSI controller to the VM (or the template), or use fewer, larger disks",
        )
    return [(ctrl, u) for u in free[:count]]


def _disk_changes(session: Session, dc: Any, vm: Any, template_disks: int, after: list[dict[str, Any]]) -> list[Any]:
    op = vim.vm.device.VirtualDeviceSpec.Operation
    data = _disks(vm)[template_disks:]
    changes = []
    for i, want in enumerate(after[: len(data)]):
        disk = data[i]
        if want["size"] > _capacity(disk):
            disk.capacityInKB, disk.capacityInBytes = want["size"] // 1024, want["size"]
            changes.append(vim.vm.device.VirtualDeviceSpec(operation=op.edit, device=disk))
    new = after[len(data) :]
    for k, (want, (ctrl, unit)) in enumerate(zip(new, _scsi_slots(vm, len(new)) if new else [], strict=True)):
        ds: Any = session.datastore(dc, want["datastore"])
        thin, eager = _BACKING[want["provisioning"]]
        backing = vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
            fileName=f"[{ds.name}]", datastore=ds, diskMode="persistent", thinProvisioned=thin, eagerlyScrub=eager
        )
        disk = vim.vm.device.VirtualDisk(
            key=-200 - k,
            controllerKey=ctrl.key,
            unitNumber=unit,
            capacityInKB=want["size"] // 1024,
            capacityInBytes=want["size"],
            backing=backing,
        )
        changes.append(
            vim.vm.device.VirtualDeviceSpec(
                operation=op.add, fileOperation=vim.vm.device.VirtualDeviceSpec.FileOperation.create, device=disk
            )
        )
    return changes


def _needs_off(vm: Any, before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """What of the change vCenter does only on a powered-off VM: a customization, shrinking CPUs or
    memory, or growing them without hot-add."""
    why = []
    hw = vm.config
    if after["customization"] and before.get("customization") != after["customization"]:
        why.append("customizing the guest")
    cpus, mem = before.get("cpus"), before.get("memory_mb")
    if cpus is not None and after["cpus"] != cpus and (after["cpus"] < cpus or not hw.cpuHotAddEnabled):
        why.append(f"changing CPUs from {cpus} to {after['cpus']}")
    if mem is not None and after["memory_mb"] != mem and (after["memory_mb"] < mem or not hw.memoryHotAddEnabled):
        why.append(f"changing memory from {mem} to {after['memory_mb']} MB")
    return why


def _precheck(vm: Any, before: dict[str, Any], after: dict[str, Any]) -> bool:
    """Whether the VM must be powered off first; refuses (before anything changes) when it runs and is
    to stay on but the change needs it off."""
    why = _needs_off(vm, before, after)
    if not why or before.get("power_state") == "poweredoff":
        return False
    if after["power_state"] == "poweredoff":
        return True
    raise VSphereError(
        f"{vm.name} is running, and {' and '.join(why)} needs it powered off",
        hint="run with state: poweredoff (the VM is powered off first), then with state: poweredon",
    )


def _reconfigure(
    session: Session, dc: Any, vm: Any, before: dict[str, Any], after: dict[str, Any], template_disks: int
) -> None:
    disks = _disk_changes(session, dc, vm, template_disks, after["disks"]) if before["disks"] != after["disks"] else []
    if _precheck(vm, before, after):
        _power(session, vm, "poweredoff")
    spec = vim.vm.ConfigSpec()
    dirty = False
    if before.get("cpus") != after["cpus"]:
        spec.numCPUs, dirty = after["cpus"], True
    if before.get("memory_mb") != after["memory_mb"]:
        spec.memoryMB, dirty = after["memory_mb"], True
    devices = _nic_changes(dc, vm, after["networks"]) + disks
    if devices:
        spec.deviceChange, dirty = devices, True
    if dirty:
        session.call(f"resizing {vm.name}", vm.ReconfigVM_Task, spec=spec)
    if after["customization"] and before.get("customization") != after["customization"]:
        spec_c = _customization_spec(after["customization"], len(_nics(vm)))
        session.call(f"customizing {vm.name}", vm.CustomizeVM_Task, spec=spec_c)
        mark = vim.option.OptionValue(key=MARK, value=json.dumps(after["customization"], sort_keys=True))
        session.call(
            f"recording the customization of {vm.name}", vm.ReconfigVM_Task, spec=vim.vm.ConfigSpec(extraConfig=[mark])
        )
    if str(vm.runtime.powerState).lower() != after["power_state"]:
        _power(session, vm, after["power_state"])


def _power(session: Session, vm: Any, state: str) -> None:
    if state == "poweredon":
        session.call(f"powering on {vm.name}", vm.PowerOnVM_Task)
    else:
        session.call(f"powering off {vm.name}", vm.PowerOffVM_Task)


# -- the three cases ---------------------------------------------------------------------------------
def _absent(session: Session, vm: Any, check: bool) -> Outcome:
    if vm is None:
        return Outcome(False, (), {}, {})
    dc = datacenter_of(vm)
    before = settings(dc, vm)
    on = before["power_state"] != "poweredoff"
    actions = (["power off"] if on else []) + ["remove"]
    gone = facts(session, vm)
    if not check:
        if on:
            _power(session, vm, "poweredoff")
        session.call(f"removing {vm.name}", vm.Destroy_Task)
    return Outcome(True, tuple(actions), before, {}, gone)


@dataclass(frozen=True)
class _Place:
    cluster: Any
    template: Any
    pool: Any
    datastore: Any
    host: Any
    folder: Any


def _locate(session: Session, dc: Any, spec: ReplicaVm) -> _Place:
    """Every object the spec names, looked up (unknown names fail here, in check mode too)."""
    cluster: Any = session.cluster(dc, spec.cluster)
    template = session.vm(spec.template, within=dc.vmFolder, where=f"datacenter {dc.name}")
    pool = cluster.resourcePool
    if spec.resource_pool:
        pool = session.find(
            vim.ResourcePool, spec.resource_pool, within=cluster, what="resource pool", where=cluster.name
        )
    datastore = (
        session.find(vim.Datastore, spec.datastore, within=dc.datastoreFolder, what="datastore", where=dc.name)
        if spec.datastore
        else None
    )
    host = (
        session.find(vim.HostSystem, spec.host, within=cluster, what="ESX host", where=cluster.name)
        if spec.host
        else None
    )
    return _Place(cluster, template, pool, datastore, host, session.folder(dc, spec.folder))


def _create(session: Session, dc: Any, spec: ReplicaVm, check: bool) -> Outcome:
    place = _locate(session, dc, spec)
    template, pool, host = place.template, place.pool, place.host
    skip = len(_disks(template))
    fresh = {**settings(dc, template, skip), "customization": None, "power_state": "poweredoff"}
    home = spec.datastore or home_datastore(template)
    after = _wanted(session, dc, spec, template, fresh, home)
    if spec.state == "present":
        after["power_state"] = "poweredoff"  # a new VM starts off unless asked otherwise
    actions = [f"clone {spec.template} to {spec.name}", *_diff_actions(fresh, after)]
    if check:
        return Outcome(True, tuple(actions), {}, after)
    location = vim.vm.RelocateSpec(pool=pool, datastore=place.datastore, host=host)
    clone = vim.vm.CloneSpec(location=location, powerOn=False, template=False)
    vm = session.call(
        f"cloning {spec.template} to {spec.name}",
        template.CloneVM_Task,
        folder=place.folder,
        name=spec.name,
        spec=clone,
    )
    if host is not None and vm.runtime.host != host:
        session.call(
            f"placing {spec.name} on {spec.host}", vm.RelocateVM_Task, spec=vim.vm.RelocateSpec(host=host, pool=pool)
        )
    _reconfigure(session, dc, vm, settings(dc, vm, skip), after, skip)
    return Outcome(True, tuple(actions), {}, settings(dc, vm, skip), facts(session, vm))


def _update(session: Session, dc: Any, vm: Any, spec: ReplicaVm, check: bool) -> Outcome:
    place = _locate(session, dc, spec)
    if vm.resourcePool is not None and _owner(vm.resourcePool) != place.cluster:
        raise VSphereError(
            f"{vm.name} exists, but not in cluster {spec.cluster}",
            hint="move it there, or give the cluster it is in",
        )
    skip = len(_disks(place.template))
    before = settings(dc, vm, skip)
    after = _wanted(session, dc, spec, vm, before, home_datastore(vm))
    _check_disks(vm, before["disks"], after["disks"])  # (refuses in check mode too)
    actions = _diff_actions(before, after)
    if not actions:
        return Outcome(False, (), before, before, facts(session, vm))
    if _precheck(vm, before, after):  # (refuses in check mode too)
        actions.insert(0, "power off first")
    if check:
        return Outcome(True, tuple(actions), before, after, facts(session, vm))
    _reconfigure(session, dc, vm, before, after, skip)
    return Outcome(True, tuple(actions), before, settings(dc, vm, skip), facts(session, vm))

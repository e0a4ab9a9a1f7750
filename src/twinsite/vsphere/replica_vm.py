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
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from pyVmomi import vim

from twinsite.errors import VSphereError
from twinsite.vsphere import Outcome
from twinsite.vsphere.connection import Session

STATES = ("present", "poweredon", "poweredoff", "absent")
MARK = "twinsite.customization"


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


def settings(dc: Any, vm: Any) -> dict[str, Any]:
    """The managed settings of an existing VM (what diff mode shows)."""
    return {
        "cpus": int(vm.config.hardware.numCPU),
        "memory_mb": int(vm.config.hardware.memoryMB),
        "networks": [_network_of(dc, n) for n in _nics(vm)],
        "customization": _recorded_customization(vm),
        "power_state": str(vm.runtime.powerState).lower(),
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


def _wanted(session: Session, dc: Any, spec: ReplicaVm, base: Any) -> dict[str, Any]:
    """Managed settings wanted; ``base`` (the template, or the VM itself) fills in what is not managed."""
    cpus, memory, networks = spec.cpus, spec.memory_mb, list(spec.networks)
    if spec.source_vm:
        src: Any = session.vm(spec.source_vm, where="any datacenter")
        size = source_size(src)
        cpus, memory = cpus or size[0], memory or size[1]
        if not networks:
            mapping = dict(spec.network_map)
            src_dc = _datacenter_of(src)
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
    current = settings(dc, base)
    for n in networks:
        _network(dc, n)  # unknown networks fail here, in check mode too
    want = {
        "cpus": cpus or current["cpus"],
        "memory_mb": _memory(memory) if memory else current["memory_mb"],
        "networks": networks or current["networks"],
        "customization": spec.customization.to_dict() if spec.customization else current["customization"],
        "power_state": current["power_state"],
    }
    if spec.state in ("poweredon", "poweredoff"):
        want["power_state"] = spec.state
    return want


def _owner(pool: Any) -> Any:
    """The cluster (compute resource) a resource pool belongs to."""
    while pool is not None and not isinstance(pool, vim.ComputeResource):
        pool = pool.parent
    return pool


def _datacenter_of(obj: Any) -> Any:
    while obj is not None and not isinstance(obj, vim.Datacenter):
        obj = obj.parent
    return obj


def _network(dc: Any, name: str) -> Any:
    for n in dc.network:
        if n.name == name:
            return n
    raise VSphereError(
        f"no network named {name!r} in datacenter {dc.name}",
        hint=f"networks there: {', '.join(sorted({n.name for n in dc.network}))}",
    )


def _folder(session: Session, dc: Any, path: str | None) -> Any:
    folder = dc.vmFolder
    for part in [p for p in (path or "").split("/") if p]:
        children = {c.name: c for c in folder.childEntity if isinstance(c, vim.Folder)}
        if part not in children:
            raise VSphereError(
                f"no VM folder {path!r} in datacenter {dc.name} (missing: {part!r})",
                hint=f"folders at that level: {', '.join(sorted(children)) or 'none'}",
            )
        folder = children[part]
    return folder


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
    return out


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


def _reconfigure(session: Session, dc: Any, vm: Any, before: dict[str, Any], after: dict[str, Any]) -> None:
    if _precheck(vm, before, after):
        _power(session, vm, "poweredoff")
    spec = vim.vm.ConfigSpec()
    dirty = False
    if before.get("cpus") != after["cpus"]:
        spec.numCPUs, dirty = after["cpus"], True
    if before.get("memory_mb") != after["memory_mb"]:
        spec.memoryMB, dirty = after["memory_mb"], True
    devices = _nic_changes(dc, vm, after["networks"])
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
    dc = _datacenter_of(vm)
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
    return _Place(cluster, template, pool, datastore, host, _folder(session, dc, spec.folder))


def _create(session: Session, dc: Any, spec: ReplicaVm, check: bool) -> Outcome:
    place = _locate(session, dc, spec)
    template, pool, host = place.template, place.pool, place.host
    after = _wanted(session, dc, spec, template)
    if spec.state == "present":
        after["power_state"] = "poweredoff"  # a new VM starts off unless asked otherwise
    fresh = {**settings(dc, template), "customization": None, "power_state": "poweredoff"}
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
    _reconfigure(session, dc, vm, settings(dc, vm), after)
    return Outcome(True, tuple(actions), {}, settings(dc, vm), facts(session, vm))


def _update(session: Session, dc: Any, vm: Any, spec: ReplicaVm, check: bool) -> Outcome:
    place = _locate(session, dc, spec)
    if vm.resourcePool is not None and _owner(vm.resourcePool) != place.cluster:
        raise VSphereError(
            f"{vm.name} exists, but not in cluster {spec.cluster}",
            hint="move it there, or give the cluster it is in",
        )
    before = settings(dc, vm)
    after = _wanted(session, dc, spec, vm)
    actions = _diff_actions(before, after)
    if not actions:
        return Outcome(False, (), before, before, facts(session, vm))
    if _precheck(vm, before, after):  # (refuses in check mode too)
        actions.insert(0, "power off first")
    if check:
        return Outcome(True, tuple(actions), before, after, facts(session, vm))
    _reconfigure(session, dc, vm, before, after)
    return Outcome(True, tuple(actions), before, settings(dc, vm), facts(session, vm))

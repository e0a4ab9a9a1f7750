"""Where the DR replicas run: a deterministic placement of protected servers onto the DR site's ESX hosts.

Pure computation: no vCenter, no Ansible, no I/O. :func:`plan` places every server's replica VM on a DR
host under these rules, or raises :class:`~twinsite.vsphere.PlacementError` saying exactly why it cannot:

* anti-affinity: the replicas of the nodes of one production cluster run on different DR hosts, so that one
  DR host failure never takes down two nodes of a cluster. The DR cluster gets one VM-VM anti-affinity rule
  per production cluster of two or more nodes (:attr:`Plan.anti_affinity`).
* capacity, per host: placed memory <= (memory_mb - reserve_memory_mb) x memory_overcommit, and placed
  vCPUs <= cores x cpu_overcommit (both rounded down).
* failure reserve: for every combination of ``host_failures`` hosts, the VMs of those hosts can be restarted
  on the remaining hosts within the same capacity limits, checked by first-fit decreasing (by memory, then
  vCPUs, hosts in their given order). This is what vSphere HA admission control "tolerate N host failures"
  guarantees. Anti-affinity is *not* required while hosts are down: the planner assumes vSphere HA restarts
  the failed hosts' VMs wherever they fit, so a restarted node may share a host with its partner until the
  failed host is back and DRS separates them again. (A DR cluster set to make HA respect VM-VM
  anti-affinity rules during failover needs a stricter reserve, which is not checked here.)

The algorithm is greedy and deterministic; it aims to be simple and correct, not optimal:

0. Refuse at once what no placement could satisfy: no hosts, a cluster with more nodes than hosts, a server
   larger than any host, more memory or vCPUs than the hosts left after some failure case allow.
1. Production clusters first (largest total memory first), their nodes largest first, then the standalone
   servers (largest first). Each VM goes to the host, among those that satisfy anti-affinity and capacity,
   with the most free memory after placing it (ties: more free vCPUs, then the host listed first). The input
   order of the servers does not matter; the order of the hosts breaks ties.
2. If the result has no failure reserve (or a VM found no host), the same is tried with two other orders
   (all VMs by size regardless of clusters; by vCPUs, balancing vCPUs). Then the best placement so far is
   improved one VM move at a time (off a host whose failure is not absorbed, else off any host) while that
   lowers what the failure cases cannot restart. If a failure case still cannot be absorbed, :func:`plan`
   refuses, naming it.

Storage, when datastores are given (optional: without them nothing about storage is checked): each replica VM
needs on its ``datastore`` its template's or source VM's disks (``disk_size``) and, as the standby host of the
scenarios it receives, room for their journal (``journal.max_size``: it becomes the active host after a
switchover), rewind log (``cdp.max_size``, when CDP is on) and assured-recovery spool
(``assured_recovery.spool.max_size``); each data disk needs its size on its own datastore (default: the VM's).
Sizes are counted in full, thin disks too (a thin disk grows to its size). A datastore whose free space is less
than what is put on it is refused, naming it and by how many bytes it is short (:func:`storage`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from twinsite.config.scenario import Scenario
from twinsite.config.units import size_of
from twinsite.errors import ConfigError, PlacementError
from twinsite.sync.progress import human_bytes

_MAX_MOVES = 200  # improvement steps after the greedy passes; each strictly lowers the failure deficit
_NO_RESERVE_HINT = "; host_failures=0 drops the reserve (a DR host failure then leaves replicas down)"
_Deficit = tuple[int, int, int]  # memory, vCPUs and VMs that failure cases cannot restart, summed


# --- inputs -------------------------------------------------------------------------------------------------


def _text(value: object, where: str, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{key} must be a non-empty string, got {value!r}", where=where)
    return value


def _int(value: object, where: str, key: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key} must be an integer, got {type(value).__name__} {value!r}", where=where)
    if value < minimum:
        bound = "positive" if minimum == 1 else f"at least {minimum}"
        raise ConfigError(f"{key} must be {bound}, got {value}", where=where)
    return value


def _ratio(value: object, where: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{key} must be a number, got {type(value).__name__} {value!r}", where=where)
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{key} must be a positive number, got {value}", where=where)
    return float(value)


@dataclass(frozen=True)
class Server:
    """A protected production server, whose replica VM is to be placed. ``cluster`` names its production
    cluster (the nodes of one cluster share it), or is None for a standalone server."""

    name: str
    cpus: int
    memory_mb: int
    cluster: str | None = None
    # storage (checked only when plan() is given datastores):
    datastore: str | None = None  # where the VM's files, its template's disks and the standby's room go
    disk_size: int = 0  # bytes of the disks it gets from its template or source VM
    disks: tuple[Disk, ...] = ()  # its data disks
    standby: str | None = None  # its host name in the scenarios (their ``replicas``); default: ``name``

    def __post_init__(self) -> None:
        where = f"server {_text(self.name, 'server', 'name')!r}"
        _int(self.cpus, where, "cpus", minimum=1)
        _int(self.memory_mb, where, "memory_mb", minimum=1)
        for key in ("cluster", "datastore", "standby"):
            if getattr(self, key) is not None:
                _text(getattr(self, key), where, key)
        _int(self.disk_size, where, "disk_size", minimum=0)

    @property
    def standby_host(self) -> str:
        return self.standby or self.name


@dataclass(frozen=True)
class Disk:
    """A data disk of a replica VM: its size in bytes and its datastore (None: the VM's)."""

    size: int
    datastore: str | None = None

    def __post_init__(self) -> None:
        _int(self.size, "disk", "size", minimum=1)
        if self.datastore is not None:
            _text(self.datastore, "disk", "datastore")


@dataclass(frozen=True)
class Datastore:
    """A datastore of the DR site: its capacity and the space free for the plan (bytes; None: all of it)."""

    name: str
    capacity: int
    free: int | None = None

    def __post_init__(self) -> None:
        where = f"datastore {_text(self.name, 'datastore', 'name')!r}"
        _int(self.capacity, where, "capacity", minimum=1)
        if self.free is not None and _int(self.free, where, "free", minimum=0) > self.capacity:
            raise ConfigError(f"free ({self.free}) is more than capacity ({self.capacity})", where=where)

    @property
    def available(self) -> int:
        return self.capacity if self.free is None else self.free


@dataclass(frozen=True)
class Host:
    """An ESX host of the DR cluster."""

    name: str
    cores: int
    memory_mb: int

    def __post_init__(self) -> None:
        where = f"host {_text(self.name, 'host', 'name')!r}"
        _int(self.cores, where, "cores", minimum=1)
        _int(self.memory_mb, where, "memory_mb", minimum=1)


@dataclass(frozen=True)
class Rules:
    """Capacity rules: vCPUs per core, memory overcommit (1.0: none), host failures to tolerate, and memory
    kept per host for the hypervisor."""

    cpu_overcommit: float = 4.0
    memory_overcommit: float = 1.0
    host_failures: int = 1
    reserve_memory_mb: int = 0

    def __post_init__(self) -> None:
        _ratio(self.cpu_overcommit, "rules", "cpu_overcommit")
        _ratio(self.memory_overcommit, "rules", "memory_overcommit")
        _int(self.host_failures, "rules", "host_failures", minimum=0)
        _int(self.reserve_memory_mb, "rules", "reserve_memory_mb", minimum=0)


DEFAULT_RULES = Rules()

_SERVER_KEYS = {  # key -> required
    "name": True,
    "cpus": True,
    "memory_mb": True,
    "cluster": False,
    "datastore": False,
    "disk_size": False,
    "disks": False,
    "standby": False,
}
_HOST_KEYS = {"name": True, "cores": True, "memory_mb": True}
_DISK_KEYS = {"size": True, "datastore": False, "provisioning": False}  # (provisioning: as replica_vm takes it)
_DATASTORE_KEYS = {"name": True, "capacity": True, "free": False}
_RULE_KEYS = {"cpu_overcommit": False, "memory_overcommit": False, "host_failures": False, "reserve_memory_mb": False}


def _items(items: object, what: str) -> list[Any]:
    if not isinstance(items, list | tuple):
        raise ConfigError(f"must be a list of mappings, got {type(items).__name__}", where=what)
    return list(items)


def _fields(item: object, where: str, keys: Mapping[str, bool]) -> dict[str, Any]:
    """``item`` as a dict, once it is a mapping with only known keys and every required one."""
    if not isinstance(item, Mapping):
        raise ConfigError(f"must be a mapping, got {type(item).__name__} {item!r}", where=where)
    unknown = sorted(repr(k) for k in item if k not in keys)
    if unknown:
        raise ConfigError(f"unknown key {', '.join(unknown)} (known keys: {', '.join(keys)})", where=where)
    missing = [repr(k) for k, required in keys.items() if required and k not in item]
    if missing:
        raise ConfigError(f"missing key {', '.join(missing)}", where=where)
    return dict(item)


def _unique(name: str, index: int, seen: dict[str, int], what: str) -> None:
    if name in seen:
        raise ConfigError(f"name {name!r} is already used by {what}[{seen[name]}]", where=f"{what}[{index}]")
    seen[name] = index


def servers_from(items: Sequence[Mapping[str, Any]]) -> tuple[Server, ...]:
    """Servers from plain mappings (as YAML, JSON or an Ansible module give them): ``name``, ``cpus``,
    ``memory_mb`` and optionally ``cluster``. Errors name the item's index and the key."""
    servers: list[Server] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(_items(items, "servers")):
        where = f"servers[{i}]"
        d = _fields(item, where, _SERVER_KEYS)
        text = {k: None if d.get(k) is None else _text(d[k], where, k) for k in ("cluster", "datastore", "standby")}
        server = Server(
            name=_text(d["name"], where, "name"),
            cpus=_int(d["cpus"], where, "cpus", minimum=1),
            memory_mb=_int(d["memory_mb"], where, "memory_mb", minimum=1),
            disk_size=size_of(d.get("disk_size", 0), where, "disk_size", minimum=0),
            disks=_disks(d.get("disks") or [], f"{where}.disks"),
            **text,
        )
        _unique(server.name, i, seen, "servers")
        servers.append(server)
    return tuple(servers)


def _disks(items: object, what: str) -> tuple[Disk, ...]:
    disks = []
    for i, item in enumerate(_items(items, what)):
        where = f"{what}[{i}]"
        d = _fields(item, where, _DISK_KEYS)
        datastore = d.get("datastore")
        disks.append(
            Disk(
                size=size_of(d["size"], where, "size", minimum=1),
                datastore=None if datastore is None else _text(datastore, where, "datastore"),
            )
        )
    return tuple(disks)


def datastores_from(items: Sequence[Mapping[str, Any]]) -> tuple[Datastore, ...]:
    """Datastores from plain mappings: ``name``, ``capacity`` and optionally ``free`` (bytes, or sizes such as
    "2TiB"). Errors name the item's index and the key."""
    datastores: list[Datastore] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(_items(items, "datastores")):
        where = f"datastores[{i}]"
        d = _fields(item, where, _DATASTORE_KEYS)
        capacity = size_of(d["capacity"], where, "capacity", minimum=1)
        free = None if d.get("free") is None else size_of(d["free"], where, "free", minimum=0)
        if free is not None and free > capacity:
            raise ConfigError(f"free ({free}) is more than capacity ({capacity})", where=where)
        datastore = Datastore(name=_text(d["name"], where, "name"), capacity=capacity, free=free)
        _unique(datastore.name, i, seen, "datastores")
        datastores.append(datastore)
    return tuple(datastores)


def hosts_from(items: Sequence[Mapping[str, Any]]) -> tuple[Host, ...]:
    """DR hosts from plain mappings: ``name``, ``cores``, ``memory_mb``. Errors name the item's index and key."""
    hosts: list[Host] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(_items(items, "hosts")):
        where = f"hosts[{i}]"
        d = _fields(item, where, _HOST_KEYS)
        host = Host(
            name=_text(d["name"], where, "name"),
            cores=_int(d["cores"], where, "cores", minimum=1),
            memory_mb=_int(d["memory_mb"], where, "memory_mb", minimum=1),
        )
        _unique(host.name, i, seen, "hosts")
        hosts.append(host)
    return tuple(hosts)


def rules_from(data: Mapping[str, Any] | None) -> Rules:
    """Rules from a plain mapping; missing keys keep their defaults, None means all defaults."""
    return Rules(**_fields({} if data is None else data, "rules", _RULE_KEYS))


# --- the result ---------------------------------------------------------------------------------------------


def _gib(mb: int) -> str:
    return f"{mb / 1024:.1f} GiB"


def _percent(used: int, capacity: int) -> float:
    return round(100.0 * used / capacity, 1)


@dataclass(frozen=True)
class HostUsage:
    """What one DR host carries; the capacities are the rules' limits (after overcommit and reserve)."""

    host: str
    vms: tuple[str, ...]
    cpus: int
    cpu_capacity: int
    memory_mb: int
    memory_capacity_mb: int

    @property
    def cpu_percent(self) -> float:
        return _percent(self.cpus, self.cpu_capacity)

    @property
    def memory_percent(self) -> float:
        return _percent(self.memory_mb, self.memory_capacity_mb)

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "vms": list(self.vms),
            "vm_count": len(self.vms),
            "cpus": self.cpus,
            "cpu_capacity": self.cpu_capacity,
            "cpu_percent": self.cpu_percent,
            "memory_mb": self.memory_mb,
            "memory_capacity_mb": self.memory_capacity_mb,
            "memory_percent": self.memory_percent,
        }


@dataclass(frozen=True)
class FailureCheck:
    """The failure of ``failed_hosts``: where vSphere HA would restart their VMs (first-fit decreasing), the
    VMs that fit nowhere (``stranded``), and the memory and vCPUs left free on the surviving hosts."""

    failed_hosts: tuple[str, ...]
    restarts: tuple[tuple[str, str], ...]  # (server, host), in restart order
    stranded: tuple[str, ...]
    spare_memory_mb: int
    spare_cpus: int

    @property
    def ok(self) -> bool:
        return not self.stranded

    def to_dict(self) -> dict[str, Any]:
        return {
            "failed_hosts": list(self.failed_hosts),
            "restarts": dict(sorted(self.restarts)),
            "stranded": list(self.stranded),
            "spare_memory_mb": self.spare_memory_mb,
            "spare_cpus": self.spare_cpus,
        }


@dataclass(frozen=True)
class StandbyRoom:
    """The disk a standby host needs for the scenarios it receives (bytes, their ``max_size`` keys summed):
    their journals (it is the active host after a switchover), rewind logs (CDP on only) and spools."""

    host: str
    scenarios: tuple[str, ...]
    journal: int
    rewind_log: int
    spool: int

    @property
    def total(self) -> int:
        return self.journal + self.rewind_log + self.spool


def standby_room(scenarios: Iterable[Scenario], host: str) -> StandbyRoom:
    """The room ``host`` needs as the standby (a ``replicas`` entry) of ``scenarios``."""
    mine = [s for s in scenarios if host in s.replicas]
    return StandbyRoom(
        host=host,
        scenarios=tuple(sorted(s.name for s in mine)),
        journal=sum(s.journal.max_size for s in mine),
        rewind_log=sum(s.cdp.max_size for s in mine if s.cdp.enabled),
        spool=sum(s.assured_recovery.spool_max_size for s in mine),
    )


@dataclass(frozen=True)
class DatastoreUsage:
    """What the plan puts on one datastore: ``parts`` are (replica VM, what, bytes), in the servers' order."""

    datastore: str
    capacity: int
    free: int
    parts: tuple[tuple[str, str, int], ...]

    @property
    def needed(self) -> int:
        return sum(n for _, _, n in self.parts)

    @property
    def short(self) -> int:
        """Bytes missing for the plan to fit (0: it fits)."""
        return max(0, self.needed - self.free)

    def to_dict(self) -> dict[str, Any]:
        return {
            "datastore": self.datastore,
            "capacity": self.capacity,
            "free": self.free,
            "needed": self.needed,
            "left": self.free - self.needed,
            "parts": [{"vm": vm, "what": what, "bytes": n} for vm, what, n in self.parts],
        }

    def describe(self) -> str:
        vms = ", ".join(dict.fromkeys(vm for vm, _, _ in self.parts)) or "-"
        return (
            f"datastore {self.datastore}: {human_bytes(self.needed)} needed of {human_bytes(self.free)} free"
            f" ({human_bytes(self.capacity)} capacity), {human_bytes(self.free - self.needed)} left: {vms}"
        )


def _parts_text(parts: Sequence[tuple[str, str, int]]) -> str:
    by_vm: dict[str, list[str]] = {}
    for vm, what, n in parts:
        by_vm.setdefault(vm, []).append(f"{what} {human_bytes(n)}")
    return "; ".join(f"{vm}: {', '.join(items)}" for vm, items in by_vm.items())


def storage(
    servers: Sequence[Server], datastores: Sequence[Datastore], scenarios: Iterable[Scenario] = ()
) -> tuple[DatastoreUsage, ...]:
    """What each datastore carries under the plan (in the datastores' order), or PlacementError naming every
    datastore that is short and by how many bytes. A server without a datastore, or naming an unknown one, is
    a ConfigError naming it."""
    scenarios = tuple(scenarios)
    seen: dict[str, int] = {}
    for i, d in enumerate(datastores):
        _unique(d.name, i, seen, "datastores")
    known = {d.name: d for d in datastores}
    parts: dict[str, list[tuple[str, str, int]]] = {d: [] for d in known}

    def put(datastore: str | None, server: Server, key: str, what: str, n: int) -> None:
        if datastore not in known:
            raise ConfigError(
                f"{key} {datastore!r} is not one of the datastores ({', '.join(map(repr, known))})"
                if datastore is not None
                else "datastore is missing: with datastores given, every replica VM needs the one its files go on",
                where=f"server {server.name!r}",
                hint="name one of the DR site's datastores, or list it under datastores",
            )
        if n:
            parts[datastore].append((server.name, what, n))

    for s in servers:
        room = standby_room(scenarios, s.standby_host)
        put(s.datastore, s, "datastore", "template disks", s.disk_size)
        for what, n in (("journal", room.journal), ("rewind log", room.rewind_log), ("spool", room.spool)):
            put(s.datastore, s, "datastore", what, n)
        for i, disk in enumerate(s.disks):
            put(disk.datastore or s.datastore, s, f"disks[{i}].datastore", f"data disk {i + 1}", disk.size)
    usage = tuple(DatastoreUsage(d.name, d.capacity, d.available, tuple(parts[d.name])) for d in datastores)
    short = [u for u in usage if u.short]
    if short:
        raise PlacementError(
            "; ".join(
                f"datastore {u.datastore!r} is short by {u.short} bytes ({human_bytes(u.short)}): the replicas need"
                f" {u.needed} bytes ({human_bytes(u.needed)}) there ({_parts_text(u.parts)}), and it has {u.free}"
                f" bytes ({human_bytes(u.free)}) free"
                for u in short
            ),
            where=", ".join(f"datastore {u.datastore!r}" for u in short),
            hint="add space to the datastore, put data disks or replicas on another datastore, or lower the"
            " scenarios' journal.max_size, cdp.max_size or assured_recovery.spool.max_size",
        )
    return usage


def _storage_without_datastores(servers: Sequence[Server]) -> None:
    for s in servers:
        if s.datastore is not None or s.disks or s.disk_size:
            raise ConfigError(
                "storage (datastore, disk_size, disks) is given, but no datastores to check it against",
                where=f"server {s.name!r}",
                hint="list the DR site's datastores (name, capacity, free), or leave the storage keys out",
            )


@dataclass(frozen=True)
class Plan:
    """A placement that satisfies the rules.

    ``assignment`` maps each server to its DR host (sorted by server); ``hosts`` lists the hosts in their given
    order; ``anti_affinity`` maps each production cluster of two or more nodes to its replicas (the DR
    cluster's VM-VM anti-affinity rules); ``worst_failure`` is the checked failure that leaves the least spare
    memory (None when ``rules.host_failures`` is 0); ``failures_checked`` counts the failure cases checked.
    """

    assignment: Mapping[str, str]
    hosts: tuple[HostUsage, ...]
    anti_affinity: Mapping[str, tuple[str, ...]]
    consolidation_ratio: float
    worst_failure: FailureCheck | None
    failures_checked: int
    rules: Rules
    datastores: tuple[DatastoreUsage, ...] = ()  # when plan() was given datastores

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-serialisable values in a deterministic order (``datastores`` only when checked)."""
        storage = {"datastores": [d.to_dict() for d in self.datastores]} if self.datastores else {}
        return {
            "assignment": dict(sorted(self.assignment.items())),
            "hosts": [h.to_dict() for h in self.hosts],
            "anti_affinity": {c: list(vms) for c, vms in sorted(self.anti_affinity.items())},
            "server_count": len(self.assignment),
            "host_count": len(self.hosts),
            "consolidation_ratio": round(self.consolidation_ratio, 2),
            "failure_check": {
                "host_failures": self.rules.host_failures,
                "cases_checked": self.failures_checked,
                "worst": None if self.worst_failure is None else self.worst_failure.to_dict(),
            },
            "rules": asdict(self.rules),
            **storage,
        }

    def describe(self) -> list[str]:
        """Human-readable lines: the hosts with their VMs and usage, the consolidation ratio, the failure check."""
        width = max([len("DR host"), *(len(h.host) for h in self.hosts)])
        lines = [f"{'DR host':<{width}}  VMs  {'vCPUs (limit)':>19}  {'memory (limit)':>29}  servers"]
        for h in self.hosts:
            cpu = f"{h.cpus}/{h.cpu_capacity} ({h.cpu_percent:.0f}%)"
            mem = f"{_gib(h.memory_mb)}/{_gib(h.memory_capacity_mb)} ({h.memory_percent:.0f}%)"
            lines.append(f"{h.host:<{width}}  {len(h.vms):>3}  {cpu:>19}  {mem:>29}  {', '.join(h.vms) or '-'}")
        lines.append(
            f"consolidation: {len(self.assignment)} servers on {len(self.hosts)} hosts"
            f" = {self.consolidation_ratio:.2f} servers per host"
        )
        for cluster, vms in sorted(self.anti_affinity.items()):
            lines.append(f"anti-affinity rule {cluster}: {', '.join(vms)}")
        lines.append(self._failure_line())
        lines += [d.describe() for d in self.datastores]
        return lines

    def _failure_line(self) -> str:
        n = self.rules.host_failures
        if self.worst_failure is None:
            return f"failure reserve: not checked (host_failures={n})"
        w = self.worst_failure
        what = "any single host failure" if n == 1 else f"any {n} host failures"
        return (
            f"failure reserve: {what} can be absorbed ({self.failures_checked} cases checked);"
            f" worst case: {', '.join(w.failed_hosts)} down leaves {_gib(w.spare_memory_mb)}"
            f" memory and {w.spare_cpus} vCPUs spare"
        )


# --- planning -----------------------------------------------------------------------------------------------


class _Site:
    """The servers, hosts and rules, checked, with each host's capacity under the rules."""

    def __init__(self, servers: Sequence[Server], hosts: Sequence[Host], rules: Rules) -> None:
        self.servers = tuple(servers)
        self.hosts = tuple(hosts)
        self.rules = rules
        _check_names(self.servers, self.hosts)
        self.cpu_cap = tuple(math.floor(h.cores * rules.cpu_overcommit + 1e-9) for h in self.hosts)
        self.mem_cap = tuple(
            math.floor((h.memory_mb - rules.reserve_memory_mb) * rules.memory_overcommit + 1e-9) for h in self.hosts
        )
        self.clusters: dict[str, list[int]] = {}
        for i, s in enumerate(self.servers):
            if s.cluster is not None:
                self.clusters.setdefault(s.cluster, []).append(i)

    def size(self, i: int) -> str:
        s = self.servers[i]
        of = f", node of cluster {s.cluster!r}" if s.cluster else ""
        return f"{s.cpus} vCPUs, {s.memory_mb} MiB{of}"


def _check_names(servers: tuple[Server, ...], hosts: tuple[Host, ...]) -> None:
    for what, names in (("servers", [s.name for s in servers]), ("hosts", [h.name for h in hosts])):
        seen: dict[str, int] = {}
        for i, name in enumerate(names):
            _unique(name, i, seen, what)
    if not hosts:
        raise PlacementError("no DR hosts to place the replicas on", where="hosts", hint="list the DR site's ESX hosts")


def _check_hosts(site: _Site) -> None:
    for host, mem in zip(site.hosts, site.mem_cap, strict=True):
        if mem <= 0:
            raise PlacementError(
                f"reserve_memory_mb {site.rules.reserve_memory_mb} leaves no memory of its {host.memory_mb} MiB",
                where=f"host {host.name!r}",
                hint="lower rules.reserve_memory_mb, or correct the host's memory_mb",
            )
    n = site.rules.host_failures
    if n >= len(site.hosts):
        raise PlacementError(
            f"host_failures={n} cannot be tolerated with {len(site.hosts)} DR hosts: no host would be left",
            where="rules",
            hint=f"add DR hosts (at least {n + 1}), or lower rules.host_failures",
        )


def _check_clusters(site: _Site) -> None:
    for cluster, nodes in sorted(site.clusters.items()):
        if len(nodes) > len(site.hosts):
            raise PlacementError(
                f"cluster {cluster!r} has {len(nodes)} nodes but the DR site has {len(site.hosts)} hosts:"
                " anti-affinity needs a separate host for each node's replica",
                where=f"cluster {cluster!r}",
                hint=f"add DR hosts (at least {len(nodes)}), or protect fewer nodes of {cluster!r}",
            )


def _check_sizes(site: _Site) -> None:
    """Refuse a server that no single host could carry even when empty."""
    big_mem = max(range(len(site.hosts)), key=lambda h: (site.mem_cap[h], -h))
    big_cpu = max(range(len(site.hosts)), key=lambda h: (site.cpu_cap[h], -h))
    for i, s in enumerate(site.servers):
        fits = (s.memory_mb <= site.mem_cap[h] and s.cpus <= site.cpu_cap[h] for h in range(len(site.hosts)))
        if any(fits):
            continue
        if s.memory_mb > site.mem_cap[big_mem]:
            limit = site.mem_cap[big_mem]
            why = f"the largest DR host ({site.hosts[big_mem].name}) has {limit} MiB usable memory"
            why += f", missing {s.memory_mb - limit} MiB"
        elif s.cpus > site.cpu_cap[big_cpu]:
            limit = site.cpu_cap[big_cpu]
            why = f"the DR host with most vCPUs ({site.hosts[big_cpu].name}) allows {limit}"
            why += f" (cores x cpu_overcommit {site.rules.cpu_overcommit}), missing {s.cpus - limit} vCPUs"
        else:
            why = "no DR host has both that much usable memory and that many vCPUs"
        raise PlacementError(
            f"server {s.name!r} ({site.size(i)}) fits on no DR host: {why}",
            where=f"server {s.name!r}",
            hint="a VM cannot span hosts: give the replica fewer vCPUs or less memory, or add a bigger DR host",
        )


def _check_totals(site: _Site) -> None:
    """Refuse when the servers exceed what the hosts left after some failure case allow, whatever the placement
    (the failed hosts' VMs must fit into the survivors' capacity, so all VMs must)."""
    need_mem = sum(s.memory_mb for s in site.servers)
    need_cpu = sum(s.cpus for s in site.servers)
    everything = range(len(site.hosts))
    for failed in itertools.combinations(everything, site.rules.host_failures):
        mem = sum(site.mem_cap[h] for h in everything if h not in failed)
        cpu = sum(site.cpu_cap[h] for h in everything if h not in failed)
        missing = [f"missing {need_mem - mem} MiB memory"] if need_mem > mem else []
        missing += [f"missing {need_cpu - cpu} vCPUs"] if need_cpu > cpu else []
        if not missing:
            continue
        down = _down([site.hosts[h].name for h in failed])
        kinds = {"memory"} if need_mem > mem else set()
        kinds |= {"cpu"} if need_cpu > cpu else set()
        hint = _hint(kinds, site.rules)
        if failed:
            left, where, hint = (
                f"if {down} the remaining hosts",
                f"failure: {down}",
                hint + _NO_RESERVE_HINT,
            )
        else:
            left, where = f"the {len(site.hosts)} hosts", "hosts"
        raise PlacementError(
            f"the {len(site.servers)} servers need {need_mem} MiB memory and {need_cpu} vCPUs, but {left} allow"
            f" {mem} MiB and {cpu} vCPUs ({'; '.join(missing)})",
            where=where,
            hint=hint,
        )


def _by_size(site: _Site, i: int) -> tuple[int, int, str]:
    s = site.servers[i]
    return (-s.memory_mb, -s.cpus, s.name)


def _by_cpus(site: _Site, i: int) -> tuple[int, int, str]:
    s = site.servers[i]
    return (-s.cpus, -s.memory_mb, s.name)


def _clusters_first(site: _Site, key: Callable[[_Site, int], tuple[int, int, str]]) -> list[int]:
    """Clusters (largest total first, as ``key`` measures), each node by ``key``, then standalone by ``key``."""

    def total(cluster: str) -> tuple[int, int, str]:
        keys = [key(site, i) for i in site.clusters[cluster]]
        return (sum(k[0] for k in keys), sum(k[1] for k in keys), cluster)

    order = [i for c in sorted(site.clusters, key=total) for i in sorted(site.clusters[c], key=lambda i: key(site, i))]
    standalone = [i for i, s in enumerate(site.servers) if s.cluster is None]
    return order + sorted(standalone, key=lambda i: key(site, i))


@dataclass(frozen=True)
class _Strategy:
    order: Callable[[_Site], list[int]]
    balance_cpus: bool  # choose the host with most free vCPUs (then memory) instead of most free memory


_STRATEGIES = (
    _Strategy(lambda site: _clusters_first(site, _by_size), balance_cpus=False),
    _Strategy(lambda site: sorted(range(len(site.servers)), key=lambda i: _by_size(site, i)), balance_cpus=False),
    _Strategy(lambda site: _clusters_first(site, _by_cpus), balance_cpus=True),
)


class _Load:
    """Per-host used memory, vCPUs and VMs for an assignment (server index -> host index)."""

    def __init__(self, site: _Site, assign: Sequence[int | None]) -> None:
        self.site = site
        self.mem = [0] * len(site.hosts)
        self.cpu = [0] * len(site.hosts)
        self.vms: list[list[int]] = [[] for _ in site.hosts]
        for i, h in enumerate(assign):
            if h is not None:
                self.add(i, h)

    def add(self, i: int, h: int) -> None:
        s = self.site.servers[i]
        self.mem[h] += s.memory_mb
        self.cpu[h] += s.cpus
        self.vms[h].append(i)

    def free_mem(self, h: int) -> int:
        return self.site.mem_cap[h] - self.mem[h]

    def free_cpu(self, h: int) -> int:
        return self.site.cpu_cap[h] - self.cpu[h]

    def partner(self, i: int, h: int) -> int | None:
        """A node of server ``i``'s cluster already on host ``h`` (anti-affinity), if any."""
        cluster = self.site.servers[i].cluster
        return next((j for j in self.vms[h] if j != i and cluster and self.site.servers[j].cluster == cluster), None)

    def allows(self, i: int, h: int) -> bool:
        s = self.site.servers[i]
        return s.memory_mb <= self.free_mem(h) and s.cpus <= self.free_cpu(h) and self.partner(i, h) is None


def _place(site: _Site, strategy: _Strategy) -> list[int]:
    """One greedy pass; raises PlacementError naming the first VM that finds no host."""
    assign: list[int | None] = [None] * len(site.servers)
    load = _Load(site, assign)
    for placed, i in enumerate(strategy.order(site)):
        candidates = [h for h in range(len(site.hosts)) if load.allows(i, h)]
        if not candidates:
            raise _stuck(site, load, i, placed)
        if strategy.balance_cpus:
            h = max(candidates, key=lambda h: (load.free_cpu(h), load.free_mem(h), -h))
        else:
            h = max(candidates, key=lambda h: (load.free_mem(h), load.free_cpu(h), -h))
        assign[i] = h
        load.add(i, h)
    return [h for h in assign if h is not None]


def _why_not(load: _Load, i: int, h: int) -> tuple[str, set[str]]:
    """Why host ``h`` cannot take server ``i``, and which kinds of shortage (memory, cpu, anti-affinity)."""
    site, s, name = load.site, load.site.servers[i], load.site.hosts[h].name
    partner = load.partner(i, h)
    if partner is not None:
        return f"{name} holds {site.servers[partner].name!r} of the same cluster", {"anti-affinity"}
    parts, kinds = [], set()
    if s.memory_mb > load.free_mem(h):
        parts.append(f"{load.free_mem(h)} MiB memory free (missing {s.memory_mb - load.free_mem(h)} MiB)")
        kinds.add("memory")
    if s.cpus > load.free_cpu(h):
        parts.append(f"{load.free_cpu(h)} vCPUs free (missing {s.cpus - load.free_cpu(h)})")
        kinds.add("cpu")
    return f"{name} has {' and '.join(parts)}", kinds


def _down(names: Sequence[str]) -> str:
    """'DR host 'esx1' fails' or 'DR hosts 'esx1', 'esx2' fail'."""
    listed = ", ".join(repr(n) for n in names)
    return f"DR host {listed} fails" if len(names) == 1 else f"DR hosts {listed} fail"


def _hint(kinds: set[str], rules: Rules) -> str:
    hints = []
    if "fragmented" in kinds:
        hints.append("add a DR host (the spare capacity is split into pieces too small for the largest VMs)")
    if "memory" in kinds:
        hints.append("add a DR host or host memory, or give the replicas less memory")
    if "cpu" in kinds:
        hints.append(f"raise cpu_overcommit (now {rules.cpu_overcommit}) if the workload allows, or add a DR host")
    if not hints:  # anti-affinity alone
        hints.append("add a DR host")
    return "; ".join(hints)


def _totals(site: _Site) -> str:
    mem = sum(s.memory_mb for s in site.servers)
    cpu = sum(s.cpus for s in site.servers)
    return (
        f"all servers need {mem} MiB and {cpu} vCPUs;"
        f" the {len(site.hosts)} hosts allow {sum(site.mem_cap)} MiB and {sum(site.cpu_cap)} vCPUs"
    )


def _stuck(site: _Site, load: _Load, i: int, placed: int) -> PlacementError:
    reasons = [_why_not(load, i, h) for h in range(len(site.hosts))]
    kinds = set().union(*(k for _, k in reasons))
    name = site.servers[i].name
    return PlacementError(
        f"found no DR host for server {name!r} ({site.size(i)}) after placing {placed} of {len(site.servers)}"
        " servers, largest first: " + "; ".join(r for r, _ in reasons) + f" ({_totals(site)})",
        where=f"server {name!r}",
        hint=_hint(kinds, site.rules),
    )


def _failure(site: _Site, load: _Load, failed: tuple[int, ...]) -> FailureCheck:
    """Restart the failed hosts' VMs on the others, first-fit decreasing by memory then vCPUs."""
    free_mem = {h: load.free_mem(h) for h in range(len(site.hosts)) if h not in failed}
    free_cpu = {h: load.free_cpu(h) for h in free_mem}
    victims = sorted((i for h in failed for i in load.vms[h]), key=lambda i: _by_size(site, i))
    restarts: list[tuple[str, str]] = []
    stranded: list[str] = []
    for i in victims:
        s = site.servers[i]
        to = next((h for h in free_mem if free_mem[h] >= s.memory_mb and free_cpu[h] >= s.cpus), None)
        if to is None:
            stranded.append(s.name)
            continue
        free_mem[to] -= s.memory_mb
        free_cpu[to] -= s.cpus
        restarts.append((s.name, site.hosts[to].name))
    return FailureCheck(
        failed_hosts=tuple(site.hosts[h].name for h in failed),
        restarts=tuple(restarts),
        stranded=tuple(stranded),
        spare_memory_mb=sum(free_mem.values()),
        spare_cpus=sum(free_cpu.values()),
    )


def _failures(site: _Site, load: _Load) -> list[FailureCheck]:
    n = site.rules.host_failures
    if n == 0:
        return []
    return [_failure(site, load, failed) for failed in itertools.combinations(range(len(site.hosts)), n)]


def _deficit(site: _Site, assign: Sequence[int]) -> _Deficit:
    """What the failure cases cannot restart, summed over all of them: (memory, vCPUs, VMs); zero is good."""
    sizes = {s.name: s for s in site.servers}
    stranded = [sizes[name] for check in _failures(site, _Load(site, assign)) for name in check.stranded]
    return (sum(s.memory_mb for s in stranded), sum(s.cpus for s in stranded), len(stranded))


def _best_move(site: _Site, assign: list[int], sources: Sequence[int], deficit: _Deficit) -> tuple[list[int], _Deficit]:
    """The single move of a VM off one of the ``sources`` hosts that lowers the deficit most (or none)."""
    load = _Load(site, assign)
    best = (assign, deficit)
    for h in sources:
        for i in sorted(load.vms[h]):
            for to in range(len(site.hosts)):
                if to == h or not load.allows(i, to):
                    continue
                moved = [*assign[:i], to, *assign[i + 1 :]]
                d = _deficit(site, moved)
                if d < best[1]:
                    best = (moved, d)
    return best


def _improve(site: _Site, assign: list[int]) -> list[int]:
    """Move single VMs while that lowers the failure deficit: off the hosts whose failure is not absorbed
    first, off any host when that does not help (making room where the stranded VMs would restart)."""
    deficit = _deficit(site, assign)
    everywhere = range(len(site.hosts))
    for _ in range(_MAX_MOVES):
        if deficit == (0, 0, 0):
            break
        names = {h.name: k for k, h in enumerate(site.hosts)}
        failing = sorted({names[n] for c in _failures(site, _Load(site, assign)) if not c.ok for n in c.failed_hosts})
        moved, better = _best_move(site, assign, failing, deficit)
        if better == deficit:
            moved, better = _best_move(site, assign, everywhere, deficit)
        if better == deficit:
            break
        assign, deficit = moved, better
    return assign


def _shortage(site: _Site, load: _Load, check: FailureCheck) -> tuple[str, set[str]]:
    """What the failed hosts' VMs need against what the surviving hosts have free, and what is missing."""
    failed = [k for k, h in enumerate(site.hosts) if h.name in check.failed_hosts]
    victims = [site.servers[i] for h in failed for i in load.vms[h]]
    need_mem, need_cpu = sum(s.memory_mb for s in victims), sum(s.cpus for s in victims)
    survivors = [h for h in range(len(site.hosts)) if h not in failed]
    free_mem, free_cpu = sum(load.free_mem(h) for h in survivors), sum(load.free_cpu(h) for h in survivors)
    missing, kinds = [], set()
    if need_mem > free_mem:
        missing.append(f"missing {need_mem - free_mem} MiB memory")
        kinds.add("memory")
    if need_cpu > free_cpu:
        missing.append(f"missing {need_cpu - free_cpu} vCPUs")
        kinds.add("cpu")
    if not missing:
        missing.append(f"enough in total, but no single remaining host has room for {check.stranded[0]!r}")
        kinds.add("fragmented")
    text = (
        f"vSphere HA cannot restart {len(check.stranded)} of the {len(victims)} VMs that ran there"
        f" ({', '.join(check.stranded)}):"
        f" they need {need_mem} MiB and {need_cpu} vCPUs, the remaining hosts have {free_mem} MiB and {free_cpu}"
        f" vCPUs free ({'; '.join(missing)})"
    )
    return text, kinds


def _no_reserve(site: _Site, assign: list[int]) -> PlacementError:
    """The refusal for a placement with failure cases that cannot be absorbed (naming the one stranding most memory)."""
    load = _Load(site, assign)
    checks = _failures(site, load)
    failing = [c for c in checks if not c.ok]
    sizes = {s.name: s.memory_mb for s in site.servers}
    worst = max(failing, key=lambda c: sum(sizes[n] for n in c.stranded))  # the first on ties
    text, kinds = _shortage(site, load, worst)
    down = _down(worst.failed_hosts)
    n = site.rules.host_failures
    return PlacementError(
        f"found no placement with a reserve for {n} host failure{'s' if n > 1 else ''} (the servers fit without"
        f" one): in the best placement found, if {down}, {text}; {len(failing)} of {len(checks)} failure cases fail",
        where=f"failure: {down}",
        hint=_hint(kinds, site.rules) + _NO_RESERVE_HINT,
    )


def _result(site: _Site, assign: list[int]) -> Plan:
    load = _Load(site, assign)
    usage = tuple(
        HostUsage(
            host=host.name,
            vms=tuple(sorted(site.servers[i].name for i in load.vms[h])),
            cpus=load.cpu[h],
            cpu_capacity=site.cpu_cap[h],
            memory_mb=load.mem[h],
            memory_capacity_mb=site.mem_cap[h],
        )
        for h, host in enumerate(site.hosts)
    )
    checks = _failures(site, load)
    return Plan(
        assignment=dict(sorted((s.name, site.hosts[h].name) for s, h in zip(site.servers, assign, strict=True))),
        hosts=usage,
        anti_affinity={
            c: tuple(sorted(site.servers[i].name for i in nodes))
            for c, nodes in sorted(site.clusters.items())
            if len(nodes) > 1
        },
        consolidation_ratio=len(site.servers) / len(site.hosts),
        worst_failure=min(checks, key=lambda c: (c.spare_memory_mb, c.spare_cpus)) if checks else None,
        failures_checked=len(checks),
        rules=site.rules,
    )


def plan(
    servers: Sequence[Server],
    hosts: Sequence[Host],
    rules: Rules = DEFAULT_RULES,
    *,
    datastores: Sequence[Datastore] = (),
    scenarios: Iterable[Scenario] = (),
) -> Plan:
    """Place every server's replica on a DR host under ``rules``, or raise PlacementError saying why not.

    With ``datastores``, the servers' storage must fit on them too (:func:`storage`; ``scenarios`` give each
    standby's room for journal, rewind log and spool). Malformed input (duplicate names) raises ConfigError.
    The result depends only on the servers (not on their order), the hosts and their order, the rules, the
    datastores and the scenarios.
    """
    if datastores:
        usage = storage(servers, datastores, scenarios)
    else:
        _storage_without_datastores(servers)
        usage = ()
    return replace(_plan_hosts(_Site(servers, hosts, rules)), datastores=usage)


def _plan_hosts(site: _Site) -> Plan:
    _check_hosts(site)
    _check_clusters(site)
    _check_sizes(site)
    _check_totals(site)
    placed: list[list[int]] = []
    errors: list[PlacementError] = []
    for strategy in _STRATEGIES:
        try:
            assign = _place(site, strategy)
        except PlacementError as e:
            errors.append(e)
            continue
        if _deficit(site, assign) == (0, 0, 0):
            return _result(site, assign)
        placed.append(assign)
    if not placed:
        raise errors[0]  # the first (default) strategy's view of why
    best = _improve(site, min(placed, key=lambda a: _deficit(site, a)))
    if _deficit(site, best) == (0, 0, 0):
        return _result(site, best)
    raise _no_reserve(site, best)

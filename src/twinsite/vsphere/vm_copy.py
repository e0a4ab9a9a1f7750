"""Copies of a replica VM on independent storage (the white paper's "copy, save and move virtual machines").

:func:`ensure` clones a VM (its current state, or one of its snapshots) to a datastore of the DR site, into
its datacenter or another one (a VM folder, a cluster or resource pool there), powered off, and then keeps
only the newest ``keep`` copies of that VM, removing older ones. It reads what exists first, so a second run
with the same name finds the copy and makes nothing, and in check mode it only says what it would do.

Ours, and only ours: a copy carries a marker in its advanced settings (``extraConfig`` key ``twinsite.copy``,
JSON: the source VM, its instance UUID, the copy's own name, a label such as the test id, the snapshot it was
made from, and its UTC creation time), set in the clone itself so that no copy exists without it; and an
annotation saying the same in words for whoever looks in the vSphere Client. A VM is one of the copies of a
source only when its marker names that source *and its own name* (vCenter copies advanced settings when
someone clones a copy by hand: that clone is not ours and is never removed). The newest copies are chosen by
the creation time in the marker; a copy that is powered on is someone's work (a restore, a look inside) and
is left alone, reported, whatever its age. A VM that has the copy's name but not our marker is refused, never
taken over.

Copies are looked for, and older ones removed, in every datacenter of the vCenter: moving the copies to
another datacenter later still keeps the count.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from pyVmomi import vim

from twinsite.errors import VSphereError
from twinsite.vsphere.connection import Session, datacenter_of
from twinsite.vsphere.replica_vm import home_datastore
from twinsite.vsphere.snapshot import snapshots

MARK = "twinsite.copy"


@dataclass(frozen=True)
class CopySpec:
    vm: str  # the VM to copy, looked up in every datacenter
    name: str  # the copy's name
    datastore: str  # where the copy's files and disks go
    datacenter: str | None = None  # the copy's datacenter; default: the VM's
    folder: str | None = None  # a VM folder path there, e.g. "copies/db"
    cluster: str | None = None  # the copy's cluster (its root resource pool), needed in another datacenter
    resource_pool: str | None = None  # a resource pool (in ``cluster`` when given); default: the VM's
    snapshot: str | None = None  # clone this snapshot of the VM; default: its current state
    keep: int | None = None  # copies of the VM kept, the newest by creation time; None: none removed
    label: str = ""  # what the copy is of (an assured-recovery test's id): in its marker and annotation
    timeout: float = 3600.0  # how long the clone may take


@dataclass(frozen=True)
class Copy:
    """One of our copies of a VM, as found in vCenter."""

    name: str
    source: str
    label: str
    created: str  # ISO 8601, UTC
    snapshot: str | None
    datacenter: str
    datastore: str
    power_state: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CopyOutcome:
    changed: bool
    actions: tuple[str, ...]
    copy: dict[str, Any]  # the copy made, found, or (check mode) to be made
    made: bool  # the copy was (or would be) made by this run
    removed: tuple[str, ...]  # older copies removed (or that would be)
    in_use: tuple[str, ...]  # older copies left because they are powered on
    before: list[dict[str, Any]]  # the VM's copies before, oldest first
    after: list[dict[str, Any]]  # and after


def marker(source: str, source_uuid: str | None, name: str, label: str, created: str, snapshot: str | None) -> str:
    return json.dumps(
        {
            "source": source,
            "source_uuid": source_uuid,
            "name": name,
            "label": label,
            "created": created,
            "snapshot": snapshot,
        },
        sort_keys=True,
    )


def read_marker(name: str, extra_config: Sequence[Any] | None) -> dict[str, Any] | None:
    """The marker of a VM called ``name`` (from its ``config.extraConfig``), or None when it is not one of our
    copies: no marker, one that is not ours, or one that names another VM (a hand-made clone of a copy)."""
    for opt in extra_config or []:
        if opt.key != MARK:
            continue
        try:
            value = json.loads(opt.value)
        except (TypeError, ValueError):
            return None
        if isinstance(value, dict) and value.get("name") == name and isinstance(value.get("source"), str):
            return value
        return None
    return None


def to_remove(copies: Sequence[Copy], keep: int) -> tuple[list[Copy], list[Copy]]:
    """(removed, left in use): the copies beyond the newest ``keep`` (by creation time, then name), those that
    are powered off to remove and those that are on to leave alone."""
    if keep < 1:
        raise VSphereError(f"keep must be at least 1, got {keep}")
    ordered = sorted(copies, key=lambda c: (c.created, c.name))
    old = ordered[:-keep]
    return [c for c in old if c.power_state == "poweredoff"], [c for c in old if c.power_state != "poweredoff"]


def copies_of(session: Session, source: str) -> list[tuple[Copy, Any]]:
    """Our copies of the VM called ``source`` anywhere in vCenter, oldest first, with their VM objects."""
    found = []
    for vm, props in session.properties(vim.VirtualMachine, ["name", "config.extraConfig"]):
        name = props.get("name", "")
        mark = read_marker(name, props.get("config.extraConfig"))
        if mark is None or mark["source"] != source:
            continue
        copy = Copy(
            name=name,
            source=source,
            label=str(mark.get("label") or ""),
            created=str(mark.get("created") or ""),
            snapshot=mark.get("snapshot"),
            datacenter=str(datacenter_of(vm).name),
            datastore=home_datastore(vm),
            power_state=str(vm.runtime.powerState).lower(),
        )
        found.append((copy, vm))
    found.sort(key=lambda cv: (cv[0].created, cv[0].name))
    return found


@dataclass(frozen=True)
class _Place:
    source: Any
    dc: Any
    datastore: Any
    folder: Any
    pool: Any
    snapshot: Any
    host: Any


def choose_host(hosts: Sequence[tuple[str, bool]], mounting: set[str], prefer: str | None) -> str | None:
    """The ESX host a copy is made on, from its cluster's hosts (name, usable: connected and not in maintenance)
    and the names of those that mount the datastore: ``prefer`` (the source's host, so that vCenter need not
    move the data twice) when it can, else the first that can; None when none can."""
    able = [name for name, usable in hosts if usable and name in mounting]
    return prefer if prefer in able else (able[0] if able else None)


def _host(session: Session, spec: CopySpec, pool: Any, datastore: Any, source: Any) -> Any:
    """A host of the pool's cluster that reaches the datastore (vCenter picks one only in a cluster with DRS on:
    elsewhere a clone without a host is refused)."""
    owner: Any = pool.owner
    hosts = {str(h.name): h for h in owner.host}
    state = [
        (name, str(h.runtime.connectionState) == "connected" and not h.runtime.inMaintenanceMode)
        for name, h in hosts.items()
    ]
    mounting = {
        str(m.key.name) for m in datastore.host or [] if m.mountInfo.accessible is not False and m.mountInfo.mounted
    }
    prefer = str(source.runtime.host.name) if source.runtime.host is not None else None
    chosen = choose_host(state, mounting, prefer)
    if chosen is None:
        raise VSphereError(
            f"the copy of {spec.vm} cannot be made on datastore {datastore.name}: no ESX host of {owner.name} that"
            " is connected and not in maintenance mounts it",
            where=session.creds.where,
            hint=f"hosts that mount it: {', '.join(sorted(mounting)) or 'none'}; give a cluster or resource pool"
            " whose hosts reach it, or mount it on the cluster's hosts",
        )
    return hosts[chosen]


def _pool(session: Session, dc: Any, spec: CopySpec, source: Any) -> Any:
    within = session.cluster(dc, spec.cluster) if spec.cluster else None
    if spec.resource_pool:
        where = spec.cluster or f"datacenter {dc.name}"
        return session.find(
            vim.ResourcePool, spec.resource_pool, within=within or dc.hostFolder, what="resource pool", where=where
        )
    if within is not None:
        return within.resourcePool
    if source.resourcePool is not None and datacenter_of(source) == dc:
        return source.resourcePool
    clusters = sorted(c.name for c in session.all(vim.ClusterComputeResource, dc.hostFolder))
    raise VSphereError(
        f"the copy of {spec.vm} goes to datacenter {dc.name}, where {spec.vm} has no resource pool",
        where=session.creds.where,
        hint=f"give a cluster (or a resource pool) of {dc.name}: {', '.join(clusters) or 'it has none'}",
    )


def _snapshot(spec: CopySpec, source: Any) -> Any:
    if spec.snapshot is None:
        return None
    found = [obj for s, obj in snapshots(source) if s["name"] == spec.snapshot]
    if len(found) != 1:
        names = sorted({s["name"] for s, _obj in snapshots(source)})
        raise VSphereError(
            f"{spec.vm} has {len(found) or 'no'} snapshot{'s' if len(found) > 1 else ''} called {spec.snapshot!r}",
            hint=f"its snapshots: {', '.join(names) or 'none'}"
            + (" (give a name only one of them has)" if found else ""),
        )
    return found[0]


def _locate(session: Session, spec: CopySpec) -> _Place:
    """Every object the spec names, looked up (unknown names fail here, in check mode too, before any change)."""
    if not spec.name or not spec.datastore:
        raise VSphereError(f"a copy of {spec.vm} needs a name and a datastore")
    source: Any = session.vm(spec.vm, where="any datacenter")
    try:
        dc = session.datacenter(spec.datacenter) if spec.datacenter else datacenter_of(source)
        datastore = session.datastore(dc, spec.datastore)
        folder = session.folder(dc, spec.folder)
        pool = _pool(session, dc, spec, source)
        host = _host(session, spec, pool, datastore, source)
    except VSphereError as exc:
        if exc.message.startswith(f"the copy of {spec.vm}"):
            raise
        raise VSphereError(f"the copy of {spec.vm}: {exc.message}", where=exc.where, hint=exc.hint) from exc
    return _Place(source, dc, datastore, folder, pool, _snapshot(spec, source), host)


def _new(spec: CopySpec, place: _Place, created: str) -> Copy:
    return Copy(
        name=spec.name,
        source=spec.vm,
        label=spec.label,
        created=created,
        snapshot=spec.snapshot,
        datacenter=str(place.dc.name),
        datastore=str(place.datastore.name),
        power_state="poweredoff",
    )


def ensure(session: Session, spec: CopySpec, *, check: bool = False) -> CopyOutcome:
    """Make the copy unless it is there, then remove the VM's copies beyond the newest ``keep`` (or, with
    ``check``, only say what that would take)."""
    place = _locate(session, spec)
    ours = copies_of(session, spec.vm)
    before = [c for c, _vm in ours]
    existing = session.vm_or_none(spec.name, within=place.dc.vmFolder)
    mine = next((c for c in before if c.name == spec.name and c.datacenter == place.dc.name), None)
    if existing is not None and mine is None:
        raise VSphereError(
            f"a VM named {spec.name!r} is in datacenter {place.dc.name}, and it is not a copy twinsite made of"
            f" {spec.vm}",
            where=session.creds.where,
            hint="give the copy another name; twinsite never takes over or removes a VM it did not make",
        )
    actions = []
    copy = mine
    if copy is None:
        copy = _new(spec, place, dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"))
        of = f"snapshot {spec.snapshot!r} of {spec.vm}" if spec.snapshot else spec.vm
        actions.append(f"clone {of} to {spec.name} on datastore {copy.datastore} in datacenter {copy.datacenter}")
    kept = [*before, copy] if mine is None else before
    old, in_use = to_remove(kept, spec.keep) if spec.keep is not None else ([], [])
    if copy in old:  # (an older copy's name given again: it stays, it was asked for)
        old.remove(copy)
    actions += [f"remove the older copy {c.name} ({c.created}, on {c.datastore} in {c.datacenter})" for c in old]
    after = [c for c in kept if c not in old]
    if not check:
        if mine is None:
            _clone(session, spec, place, copy)
        objs = {(c.name, c.datacenter): vm for c, vm in ours}
        for c in old:
            session.call(f"removing the older copy {c.name} of {spec.vm}", objs[(c.name, c.datacenter)].Destroy_Task)
    return CopyOutcome(
        changed=bool(actions),
        actions=tuple(actions),
        copy=copy.to_dict(),
        made=mine is None,
        removed=tuple(c.name for c in old),
        in_use=tuple(c.name for c in in_use),
        before=[c.to_dict() for c in before],
        after=[c.to_dict() for c in after],
    )


def _clone(session: Session, spec: CopySpec, place: _Place, copy: Copy) -> None:
    source = place.source
    uuid = source.config.instanceUuid if source.config else None
    note = (
        f"A copy twinsite made of {spec.vm}"
        + (f" (snapshot {spec.snapshot})" if spec.snapshot else "")
        + (f" for {spec.label}" if spec.label else "")
        + f" at {copy.created}. twinsite removes it when newer copies of {spec.vm} replace it."
    )
    mark = vim.option.OptionValue(
        key=MARK, value=marker(spec.vm, uuid, spec.name, spec.label, copy.created, spec.snapshot)
    )
    clone = vim.vm.CloneSpec(
        location=vim.vm.RelocateSpec(datastore=place.datastore, pool=place.pool, host=place.host),
        snapshot=place.snapshot,
        powerOn=False,
        template=False,
        config=vim.vm.ConfigSpec(annotation=note, extraConfig=[mark]),
    )
    session.call(
        f"copying {spec.vm} to {spec.name} on datastore {copy.datastore} in datacenter {copy.datacenter}",
        source.CloneVM_Task,
        folder=place.folder,
        name=spec.name,
        spec=clone,
        timeout=spec.timeout,
    )

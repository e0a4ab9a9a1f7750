"""Snapshots of a replica VM: create, revert, remove, by name or by id (names are not unique in vSphere).

A snapshot is chosen by ``id`` when given, else by ``name``; a name shared by several snapshots is an
error that lists their ids. ``present`` creates a snapshot only when none has that name (in check mode
also for a VM that does not exist yet: the playbook being checked may create it first); ``absent``
removes the chosen one (its children stay); ``reverted`` goes back to it, which always counts as a change
(vCenter cannot tell whether the VM moved on since).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from twinsite.errors import VSphereError
from twinsite.vsphere.connection import Session

STATES = ("present", "absent", "reverted")


@dataclass(frozen=True)
class SnapshotSpec:
    vm: str
    datacenter: str | None = None
    name: str | None = None
    id: int | None = None
    state: str = "present"
    description: str = ""
    memory: bool = False  # include the VM's memory (a running VM resumes where it was)
    quiesce: bool = False  # ask VMware Tools to flush the guest's file systems first


@dataclass(frozen=True)
class Outcome:
    changed: bool
    actions: tuple[str, ...]
    before: list[dict[str, Any]]
    after: list[dict[str, Any]]
    snapshot: dict[str, Any] | None


def _walk(trees: Any, current: Any, parent: int | None = None) -> Iterator[tuple[dict[str, Any], Any]]:
    for t in trees or []:
        yield (
            {
                "id": int(t.id),
                "name": str(t.name),
                "description": str(t.description or ""),
                "created": t.createTime.isoformat() if t.createTime else None,
                "parent_id": parent,
                "current": current is not None and t.snapshot == current,
            },
            t.snapshot,
        )
        yield from _walk(t.childSnapshotList, current, int(t.id))


def snapshots(vm: Any) -> list[tuple[dict[str, Any], Any]]:
    """(description, snapshot object) of every snapshot of ``vm``, parents before children."""
    info = vm.snapshot
    if info is None:
        return []
    return list(_walk(info.rootSnapshotList, info.currentSnapshot))


def _choose(vm: Any, spec: SnapshotSpec, snaps: list[tuple[dict[str, Any], Any]]) -> tuple[dict[str, Any], Any] | None:
    if spec.id is not None:
        found = [s for s in snaps if s[0]["id"] == spec.id]
        if not found and spec.state == "absent":
            return None  # removed already
        if not found:
            ids = ", ".join(str(s[0]["id"]) for s in snaps) or "none"
            raise VSphereError(f"{vm.name} has no snapshot with id {spec.id}", hint=f"its snapshot ids: {ids}")
        if spec.name is not None and found[0][0]["name"] != spec.name:
            raise VSphereError(
                f"snapshot {spec.id} of {vm.name} is called {found[0][0]['name']!r}, not {spec.name!r}",
                hint="give the id alone, or the name that goes with it",
            )
        return found[0]
    if spec.name is None:
        raise VSphereError("a snapshot is chosen by name or by id: give one")
    found = [s for s in snaps if s[0]["name"] == spec.name]
    if len(found) > 1:
        ids = ", ".join(str(s[0]["id"]) for s in found)
        raise VSphereError(
            f"{len(found)} snapshots of {vm.name} are called {spec.name!r} (ids {ids})",
            hint="choose one by its id",
        )
    return found[0] if found else None


def ensure(session: Session, spec: SnapshotSpec, *, check: bool = False) -> Outcome:
    if spec.state not in STATES:
        raise VSphereError(f"state {spec.state!r} is not one of {', '.join(STATES)}")
    within = session.datacenter(spec.datacenter).vmFolder if spec.datacenter else None
    if check and spec.state == "present" and session.vm_or_none(spec.vm, within=within) is None:
        # a check run of a playbook that would create the VM first (its run fails if it still is not there)
        action = f"create snapshot {spec.name!r} of {spec.vm} (not created yet)"
        return Outcome(True, (action,), [], _foreseen(spec, [], None), None)
    vm: Any = session.vm(spec.vm, within=within, where=spec.datacenter or "")
    snaps = snapshots(vm)
    before = [s[0] for s in snaps]
    chosen = _choose(vm, spec, snaps)
    if (spec.state == "present") == (chosen is not None) and spec.state != "reverted":
        return Outcome(False, (), before, before, chosen[0] if chosen else None)  # there, or already gone
    action, run = _step(session, vm, spec, chosen)
    if check:
        return Outcome(True, (action,), before, _foreseen(spec, before, chosen), chosen[0] if chosen else None)
    run()
    after = [s[0] for s in snapshots(vm)]
    current = None if spec.state == "absent" else next((s for s in after if s["current"]), None)
    return Outcome(True, (action,), before, after, current if current else (chosen[0] if chosen else None))


def _foreseen(
    spec: SnapshotSpec, before: list[dict[str, Any]], chosen: tuple[dict[str, Any], Any] | None
) -> list[dict[str, Any]]:
    """The snapshot list a run would leave (what check mode's diff shows)."""
    if spec.state == "absent" and chosen:
        return [s for s in before if s["id"] != chosen[0]["id"]]
    if spec.state == "reverted" and chosen:
        return [{**s, "current": s["id"] == chosen[0]["id"]} for s in before]
    parent = next((s["id"] for s in before if s["current"]), None)
    new = {"id": None, "name": spec.name, "description": spec.description, "created": None}
    return [{**s, "current": False} for s in before] + [{**new, "parent_id": parent, "current": True}]


def _step(session: Session, vm: Any, spec: SnapshotSpec, chosen: tuple[dict[str, Any], Any] | None) -> tuple[str, Any]:
    """What to do, and a function that does it."""
    if spec.state == "present":
        if spec.id is not None:
            raise VSphereError("a snapshot's id is given by vCenter: create it by name")
        action = f"create snapshot {spec.name!r} of {vm.name}"
        kw: dict[str, Any] = {
            "name": spec.name,
            "description": spec.description,
            "memory": spec.memory,
            "quiesce": spec.quiesce,
        }
        return action, lambda: session.call(action, vm.CreateSnapshot_Task, **kw)
    if chosen is None:
        raise VSphereError(f"{vm.name} has no snapshot called {spec.name!r} to revert to")
    desc, snap = chosen
    if spec.state == "absent":
        action = f"remove snapshot {desc['name']!r} (id {desc['id']}) of {vm.name}"
        return action, lambda: session.call(action, snap.RemoveSnapshot_Task, removeChildren=False)
    action = f"revert {vm.name} to snapshot {desc['name']!r} (id {desc['id']})"
    return action, lambda: session.call(action, snap.RevertToSnapshot_Task)

"""Fencing: power off the old active host's VM so that it cannot come back and write as a second active.

The fence step of an unplanned switchover. Idempotent: a VM already off is reported as such and counts
as fenced. The result says what was found and done, and when; with ``record`` it is also appended to a
JSON-lines file and fsynced (state.events: the switchover keeps its evidence there). ``release`` powers the VM on again
once its site is repaired, before the switch-back.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from twinsite.errors import VSphereError
from twinsite.state import events
from twinsite.vsphere.connection import Session


def _find(session: Session, vm_name: str, datacenter: str | None) -> Any:
    """The VM by name, in ``datacenter`` when given (else anywhere in vCenter)."""
    within = session.datacenter(datacenter).vmFolder if datacenter else None
    return session.vm(vm_name, within=within, where=datacenter or "")


def fence(
    session: Session, vm_name: str, *, datacenter: str | None = None, record: Path | None = None
) -> dict[str, Any]:
    """Hard power-off of ``vm_name`` (no guest shutdown: a host being fenced may not answer)."""
    vm = _find(session, vm_name, datacenter)
    previous = str(vm.runtime.powerState)
    if previous != "poweredOff":
        try:
            session.call(f"fencing (powering off) {vm_name}", vm.PowerOffVM_Task)
        except VSphereError:
            if str(vm.runtime.powerState) != "poweredOff":
                raise
            previous = "poweredOff"  # it went off meanwhile (HA, or someone else): fenced all the same
    now = str(vm.runtime.powerState)
    if now != "poweredOff":
        raise VSphereError(f"{vm_name} is still {now} after the power-off", where=session.creds.where)
    result = {
        "vm": vm_name,
        "moid": vm._moId,
        "host": vm.runtime.host.name if vm.runtime.host else None,
        "vcenter": session.creds.where,
        "previous_state": previous.lower(),
        "action": "powered off" if previous != "poweredOff" else "already off",
        "changed": previous != "poweredOff",
        "fenced": True,
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    if record is not None:
        events.append(record, {"event": "fence", **result})
    return result


def release(session: Session, vm_name: str, *, datacenter: str | None = None) -> dict[str, Any]:
    """Power ``vm_name`` on again (the fence lifted, its site repaired); a VM already on is left as it is."""
    vm = _find(session, vm_name, datacenter)
    previous = str(vm.runtime.powerState)
    if previous != "poweredOn":
        session.call(f"powering on {vm_name}", vm.PowerOnVM_Task)
    return {
        "vm": vm_name,
        "moid": vm._moId,
        "vcenter": session.creds.where,
        "previous_state": previous.lower(),
        "action": "powered on" if previous != "poweredOn" else "already on",
        "changed": previous != "poweredOn",
        "fenced": False,
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }

"""The DR cluster: vSphere HA with admission control for host failures, DRS, and anti-affinity rules.

The replicas of one production cluster's nodes must not share an ESX host, or one DR host failure takes
the whole cluster down at the DR site: each production cluster gets a VM anti-affinity rule. Standalone
servers need none (the white paper's Figure 9 keeps production's cluster/standalone layout).

Only the settings and rules named here are managed; other rules of the cluster are left alone. In check
mode, a rule may name replica VMs that the same run would create: they are shown as they are named.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyVmomi import vim

from twinsite.errors import VSphereError
from twinsite.vsphere import Outcome
from twinsite.vsphere.connection import Session, name_of

DRS_BEHAVIORS = ("fullyAutomated", "partiallyAutomated", "manual")


@dataclass(frozen=True)
class AntiAffinityRule:
    name: str
    vms: tuple[str, ...]


@dataclass(frozen=True)
class DrCluster:
    datacenter: str
    cluster: str
    ha: bool = True
    host_failures: int = 1  # HA admission control: capacity kept to restart the VMs of this many hosts
    drs: bool = True
    drs_behavior: str = "fullyAutomated"
    rules: tuple[AntiAffinityRule, ...] = ()


def settings(cluster: Any) -> dict[str, Any]:
    """HA, DRS and anti-affinity rules as vCenter has them."""
    cfg = cluster.configurationEx
    das, drs = cfg.dasConfig, cfg.drsConfig
    policy = das.admissionControlPolicy if das else None
    rules = {}
    for r in cfg.rule or []:
        if isinstance(r, vim.cluster.AntiAffinityRuleSpec):
            # (a VM removed a moment ago may still be named by a rule: it no longer counts)
            rules[r.name] = {"vms": sorted({name_of(v) for v in r.vm or []} - {""}), "enabled": bool(r.enabled)}
    return {
        "ha": bool(das and das.enabled),
        "admission_control": bool(das and das.admissionControlEnabled),
        # (a policy kept while admission control is off protects nothing: it counts as 0)
        "host_failures": int(getattr(policy, "failoverLevel", 0) or 0) if das and das.admissionControlEnabled else 0,
        "drs": bool(drs and drs.enabled),
        "drs_behavior": str(drs.defaultVmBehavior) if drs and drs.defaultVmBehavior else None,
        "anti_affinity": rules,
    }


def _wanted(spec: DrCluster, before: dict[str, Any]) -> dict[str, Any]:
    rules = dict(before["anti_affinity"])
    for r in spec.rules:
        rules[r.name] = {"vms": sorted(r.vms), "enabled": True}
    return {
        "ha": spec.ha,
        "admission_control": spec.ha and spec.host_failures > 0,
        "host_failures": spec.host_failures if spec.ha else 0,
        "drs": spec.drs,
        "drs_behavior": spec.drs_behavior if spec.drs else before["drs_behavior"],
        "anti_affinity": rules,
    }


def _validate(spec: DrCluster, cluster: Any) -> None:
    if spec.drs_behavior not in DRS_BEHAVIORS:
        raise VSphereError(f"drs_behavior {spec.drs_behavior!r} is not one of {', '.join(DRS_BEHAVIORS)}")
    hosts = len(cluster.host)
    if spec.ha and not 0 <= spec.host_failures < hosts:
        raise VSphereError(
            f"HA cannot keep capacity for {spec.host_failures} host failure(s) in {spec.cluster}, "
            f"which has {hosts} host(s)",
            hint=f"host_failures must be between 0 and {hosts - 1}",
        )
    for r in spec.rules:
        if len(set(r.vms)) != len(r.vms):
            raise VSphereError(f"anti-affinity rule {r.name!r} names a VM twice: {', '.join(r.vms)}")
        if len(r.vms) < 2:
            raise VSphereError(f"anti-affinity rule {r.name!r} names {len(r.vms)} VM(s): it needs at least two")
        if len(r.vms) > hosts:
            raise VSphereError(
                f"anti-affinity rule {r.name!r} keeps {len(r.vms)} VMs apart, but {spec.cluster} has only {hosts} hosts"
            )


def ensure(session: Session, spec: DrCluster, *, check: bool = False) -> Outcome:
    dc = session.datacenter(spec.datacenter)
    cluster: Any = session.cluster(dc, spec.cluster)
    _validate(spec, cluster)
    before = settings(cluster)
    after = _wanted(spec, before)
    actions = _actions(before, after)
    if not actions:
        return Outcome(False, (), before, before)
    if check:
        return Outcome(True, tuple(actions), before, after)
    config = vim.cluster.ConfigSpecEx()
    if (before["ha"], before["admission_control"], before["host_failures"]) != (
        after["ha"],
        after["admission_control"],
        after["host_failures"],
    ):
        config.dasConfig = vim.cluster.DasConfigInfo(
            enabled=after["ha"],
            admissionControlEnabled=after["admission_control"],
            admissionControlPolicy=vim.cluster.FailoverLevelAdmissionControlPolicy(failoverLevel=after["host_failures"])
            if after["admission_control"]
            else None,
            hostMonitoring="enabled" if after["ha"] else None,
        )
    if (before["drs"], before["drs_behavior"]) != (after["drs"], after["drs_behavior"]):
        config.drsConfig = vim.cluster.DrsConfigInfo(enabled=after["drs"], defaultVmBehavior=after["drs_behavior"])
    config.rulesSpec = _rule_specs(session, dc, cluster, spec, before)
    session.call(
        f"configuring cluster {spec.cluster}", cluster.ReconfigureComputeResource_Task, spec=config, modify=True
    )
    return Outcome(True, tuple(actions), before, settings(cluster))


def _actions(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    out = []
    if (before["ha"], before["admission_control"], before["host_failures"]) != (
        after["ha"],
        after["admission_control"],
        after["host_failures"],
    ):
        out.append(
            f"HA on, admission control for {after['host_failures']} host failure(s)" if after["ha"] else "HA off"
        )
    if (before["drs"], before["drs_behavior"]) != (after["drs"], after["drs_behavior"]):
        out.append(f"DRS on ({after['drs_behavior']})" if after["drs"] else "DRS off")
    for name, rule in sorted(after["anti_affinity"].items()):
        old = before["anti_affinity"].get(name)
        if old != rule:
            verb = "add" if old is None else "update"
            out.append(f"{verb} anti-affinity rule {name}: {', '.join(rule['vms'])} on different hosts")
    return out


def _rule_specs(session: Session, dc: Any, cluster: Any, spec: DrCluster, before: dict[str, Any]) -> list[Any]:
    existing = {
        r.name: r for r in cluster.configurationEx.rule or [] if isinstance(r, vim.cluster.AntiAffinityRuleSpec)
    }
    specs = []
    for r in spec.rules:
        old = before["anti_affinity"].get(r.name)
        if old == {"vms": sorted(r.vms), "enabled": True}:
            continue
        vms = [session.vm(n, within=dc.vmFolder, where=f"datacenter {dc.name}") for n in r.vms]
        info = vim.cluster.AntiAffinityRuleSpec(name=r.name, enabled=True, vm=vms)
        if r.name in existing:
            info.key = existing[r.name].key
            specs.append(vim.cluster.RuleSpec(operation="edit", info=info))
        else:
            specs.append(vim.cluster.RuleSpec(operation="add", info=info))
    return specs


def host_capacity(session: Session, datacenter: str, cluster: str) -> list[dict[str, Any]]:
    """The cluster's usable ESX hosts (connected, not in maintenance mode) as placement input:
    ``{"name", "cores", "memory_mb"}`` from each host's hardware summary."""
    dc = session.datacenter(datacenter)
    cl: Any = session.cluster(dc, cluster)
    out = []
    for h in cl.host:
        rt = h.runtime
        if str(rt.connectionState) != "connected" or rt.inMaintenanceMode:
            continue
        hw = h.summary.hardware
        out.append({"name": h.name, "cores": int(hw.numCpuCores), "memory_mb": int(hw.memorySize) // 2**20})
    if not out:
        raise VSphereError(
            f"cluster {cluster} has no connected ESX host out of maintenance mode", where=session.creds.where
        )
    return out


def datastore_capacity(session: Session, datacenter: str) -> list[dict[str, Any]]:
    """The datacenter's accessible datastores as placement input: ``{"name", "capacity", "free"}`` in bytes,
    from each datastore's summary."""
    dc: Any = session.datacenter(datacenter)
    out = [
        {"name": ds.name, "capacity": int(ds.summary.capacity), "free": int(ds.summary.freeSpace)}
        for ds in session.all(vim.Datastore, dc.datastoreFolder)
        if ds.summary.accessible
    ]
    if not out:
        raise VSphereError(f"datacenter {datacenter} has no accessible datastore", where=session.creds.where)
    return out

#!/usr/bin/python
# Copyright: twinsite contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: placement
short_description: Plan where the replica VMs of protected servers run on the DR hosts
version_added: 0.1.0
description:
  - Places every protected server's replica VM on an ESX host of the DR cluster so that the replicas of
    one production cluster's nodes run on different hosts (anti-affinity), no host is over its capacity,
    and the VMs of any O(rules.host_failures) failed hosts can be restarted on the others (what vSphere HA
    admission control needs). Reports the consolidation ratio.
  - Refuses, saying why, when the servers cannot be placed under these rules.
  - The DR hosts are given in O(hosts), or read from vCenter (O(datacenter), O(cluster) and the
    connection options; connected hosts out of maintenance mode only).
  - "Storage, when the servers name a O(servers[].datastore): every replica VM's disks from its template or
    source VM (O(servers[].disk_size)), its data disks (O(servers[].disks)) and, as the standby host of
    O(scenarios), room for their journal (C(journal.max_size)), rewind log (C(cdp.max_size), CDP on only) and
    assured-recovery spool (C(assured_recovery.spool.max_size)) must fit in the free space of the datastores
    (O(datastores), or read from vCenter). Disks count at their full size, thin ones too. A datastore that is
    short is refused, naming it and by how many bytes."
  - Changes nothing; feed RV(plan.assignment) to M(twinsite.dr.replica_vm) and RV(anti_affinity_rules) to
    M(twinsite.dr.dr_cluster).
author:
  - twinsite developers (@twinsite)
options:
  servers:
    description: The protected servers' replica VMs.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The replica VM's name.
        type: str
        required: true
      cpus:
        description: Its vCPUs (P2V, from the production server's facts).
        type: int
      memory_mb:
        description: Its memory in MB (P2V, from the production server's facts).
        type: int
      source_vm:
        description:
          - The production VM it replicates (V2V); O(servers[].cpus) and O(servers[].memory_mb) not given
            are read from it in vCenter.
        type: str
      cluster:
        description: The production cluster the server is a node of; not set for a standalone server.
        type: str
      datastore:
        description:
          - The datastore of the replica VM's files. Setting it for any server turns the storage check on;
            then every server needs one.
        type: str
      disk_size:
        description:
          - The size of the disks the replica gets from its template or source VM, for example C(40GiB).
          - By default read from O(servers[].source_vm), else from O(template), in vCenter; 0 without either.
        type: str
      disks:
        description: Its data disks, as M(twinsite.dr.replica_vm) takes them (O(twinsite.dr.replica_vm#module:disks)).
        type: list
        elements: dict
        suboptions:
          size:
            description: The disk's size, for example C(200GiB).
            type: str
            required: true
          datastore:
            description: Its datastore; by default the server's.
            type: str
          provisioning:
            description: Not used by the check (thin disks count at their full size, which they can grow to).
            type: str
            choices: [thin, thick, eager_zeroed_thick]
      standby:
        description: The replica's host name in the O(scenarios) (their C(replicas)); by default O(servers[].name).
        type: str
  datastores:
    description:
      - The datastores, for the storage check; when not set, read from vCenter (O(datacenter)).
    type: list
    elements: dict
    suboptions:
      name:
        description: The datastore's name.
        type: str
        required: true
      capacity:
        description: Its capacity, for example C(4TiB).
        type: str
        required: true
      free:
        description: The space free for the replicas; by default all of O(datastores[].capacity).
        type: str
  scenarios:
    description:
      - The scenarios (C(twinsite_scenarios)), for the room each replica needs as their standby host.
    type: list
    elements: dict
    default: []
  template:
    description:
      - The template the replicas are cloned from, in O(datacenter). The size of its disks is the
        O(servers[].disk_size) of servers without one (and without O(servers[].source_vm)).
    type: str
  hosts:
    description: The DR hosts; when not set, read from vCenter.
    type: list
    elements: dict
    suboptions:
      name:
        description: The ESX host's name.
        type: str
        required: true
      cores:
        description: Its physical CPU cores.
        type: int
        required: true
      memory_mb:
        description: Its memory in MB.
        type: int
        required: true
  datacenter:
    description: The DR datacenter (to read the hosts from vCenter).
    type: str
  cluster:
    description: The DR cluster (to read the hosts from vCenter).
    type: str
  rules:
    description: The placement rules.
    type: dict
    default: {}
    suboptions:
      host_failures:
        description: Host failures whose VMs must be restartable on the other hosts.
        type: int
        default: 1
      cpu_overcommit:
        description: vCPUs allowed per physical core.
        type: float
        default: 4.0
      memory_overcommit:
        description: Memory allowed per MB of host memory (1.0 is no overcommit).
        type: float
        default: 1.0
      reserve_memory_mb:
        description: Memory per host kept for the hypervisor.
        type: int
        default: 0
extends_documentation_fragment:
  - twinsite.dr.vcenter
attributes:
  action_group:
    support: full
    membership: [twinsite.dr.vcenter]
    description: Its options take their defaults from C(module_defaults) for C(group/twinsite.dr.vcenter).
  check_mode:
    support: full
    description: Only computes; runs the same in check mode.
  diff_mode:
    support: none
    description: Changes nothing, there is nothing to diff.
seealso:
  - module: twinsite.dr.replica_vm
  - module: twinsite.dr.dr_cluster
"""

EXAMPLES = r"""
- name: Plan the DR site
  twinsite.dr.placement:
    datacenter: DR
    cluster: DR-Cluster
    servers:
      - {name: sql1-dr, cpus: 8, memory_mb: 32768, cluster: sql}
      - {name: sql2-dr, cpus: 8, memory_mb: 32768, cluster: sql}
      - {name: erp-dr, cpus: 8, memory_mb: 32768}
  register: dr_plan
  delegate_to: localhost

- name: Plan with storage - disks and the standby's room for journal, rewind log and spool
  twinsite.dr.placement:
    datacenter: DR
    cluster: DR-Cluster
    template: linux-template
    scenarios: "{{ twinsite_scenarios }}"
    servers:
      - name: db-dr
        cpus: 8
        memory_mb: 32768
        datastore: DR-DS-01
        disks: [{size: 500GiB, provisioning: thick}]
  delegate_to: localhost

- name: Show it
  ansible.builtin.debug:
    msg: "{{ dr_plan.lines }}"
"""

RETURN = r"""
plan:
  description: The placement.
  returned: success
  type: dict
  contains:
    assignment:
      description: Replica VM name -> ESX host.
      type: dict
    anti_affinity:
      description: Production cluster -> its replicas (one DR anti-affinity rule each).
      type: dict
    hosts:
      description: Per host, its VMs and their vCPUs and memory against the host's limits.
      type: list
    consolidation_ratio:
      description: Servers per DR host.
      type: float
    failure_check:
      description: The host-failure cases checked and the worst one.
      type: dict
    datastores:
      description:
        - With the storage check, per datastore its capacity, free space, what the plan puts there
          (C(needed)) and what is C(left), in bytes, and the C(parts) (VM, what, bytes).
      type: list
      returned: when the servers name datastores
anti_affinity_rules:
  description:
    - One rule per production cluster, named C(twinsite-<cluster>), ready for
      M(twinsite.dr.dr_cluster)'s O(twinsite.dr.dr_cluster#module:anti_affinity_rules).
  returned: success
  type: list
  elements: dict
  sample: [{name: twinsite-sql, vms: [sql1-dr, sql2-dr]}]
lines:
  description: The plan as text (a table of hosts, the consolidation ratio, the failure check).
  returned: success
  type: list
  elements: str
"""

from ansible_collections.twinsite.dr.plugins.module_utils._vsphere import VSphereModule


def logic(module):
    from twinsite.config.loader import load_site
    from twinsite.vsphere.placement import datastores_from, hosts_from, plan, rules_from, servers_from

    p = module.params
    hosts, datastores = p["hosts"], p["datastores"]
    servers = [_plain(s) for s in p["servers"]]
    v2v = [s for s in servers if "source_vm" in s]
    storage = any("datastore" in s for s in servers)
    sized = [s for s in servers if storage and "disk_size" not in s and ("source_vm" in s or p["template"])]
    if not hosts and not (p["datacenter"] and p["cluster"]):
        module.fail_json(msg="give the DR hosts (hosts), or datacenter and cluster to read them from vCenter")
    if storage and not datastores and not p["datacenter"]:
        module.fail_json(msg="give the datastores (datastores), or datacenter to read them from vCenter")
    if not hosts or v2v or sized or (storage and not datastores):
        from twinsite.vsphere.cluster import datastore_capacity, host_capacity
        from twinsite.vsphere.replica_vm import disk_bytes, source_size

        with module.session() as session:
            hosts = hosts or host_capacity(session, p["datacenter"], p["cluster"])
            if storage and not datastores:
                datastores = datastore_capacity(session, p["datacenter"])
            for s in v2v:
                cpus, memory = source_size(session.vm(s["source_vm"], where="any datacenter"))
                s.setdefault("cpus", cpus)
                s.setdefault("memory_mb", memory)
            for s in sized:
                vm = s.get("source_vm") or p["template"]
                s["disk_size"] = disk_bytes(session.vm(vm, where="any datacenter"))
    for s in servers:
        s.pop("source_vm", None)
    scenarios = load_site({"twinsite_scenarios": p["scenarios"]}, "scenarios")[0]
    result = plan(
        servers_from(servers),
        hosts_from(hosts),
        rules_from(p["rules"]),
        datastores=datastores_from([_plain(d) for d in datastores or []]),
        scenarios=scenarios,
    )
    rules = [dict(name="twinsite-%s" % c, vms=list(vms)) for c, vms in sorted(result.anti_affinity.items())]
    return dict(changed=False, plan=result.to_dict(), lines=result.describe(), anti_affinity_rules=rules)


def _plain(item):
    """An item without the suboptions that were not given (and its disks likewise)."""
    out = {k: v for k, v in item.items() if v is not None}
    if "disks" in out:
        out["disks"] = [{k: v for k, v in d.items() if v is not None} for d in out["disks"]]
    return out


def main():
    module = VSphereModule(
        argument_spec=dict(
            servers=dict(
                type="list",
                elements="dict",
                required=True,
                options=dict(
                    name=dict(type="str", required=True),
                    cpus=dict(type="int"),
                    memory_mb=dict(type="int"),
                    source_vm=dict(type="str"),
                    cluster=dict(type="str"),
                    datastore=dict(type="str"),
                    disk_size=dict(type="str"),
                    disks=dict(
                        type="list",
                        elements="dict",
                        options=dict(
                            size=dict(type="str", required=True),
                            datastore=dict(type="str"),
                            provisioning=dict(type="str", choices=["thin", "thick", "eager_zeroed_thick"]),
                        ),
                    ),
                    standby=dict(type="str"),
                ),
            ),
            datastores=dict(
                type="list",
                elements="dict",
                options=dict(
                    name=dict(type="str", required=True),
                    capacity=dict(type="str", required=True),
                    free=dict(type="str"),
                ),
            ),
            scenarios=dict(type="list", elements="dict", default=[]),
            template=dict(type="str"),
            hosts=dict(
                type="list",
                elements="dict",
                options=dict(
                    name=dict(type="str", required=True),
                    cores=dict(type="int", required=True),
                    memory_mb=dict(type="int", required=True),
                ),
            ),
            datacenter=dict(type="str"),
            cluster=dict(type="str"),
            rules=dict(
                type="dict",
                default={},
                options=dict(
                    host_failures=dict(type="int", default=1),
                    cpu_overcommit=dict(type="float", default=4.0),
                    memory_overcommit=dict(type="float", default=1.0),
                    reserve_memory_mb=dict(type="int", default=0),
                ),
            ),
        ),
        supports_check_mode=True,
    )
    module.run(logic)


if __name__ == "__main__":
    main()

#!/usr/bin/python
# Copyright: twinsite contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: dr_cluster
short_description: HA, DRS and anti-affinity rules of the DR cluster
version_added: 0.1.0
description:
  - Turns on vSphere HA with admission control sized to tolerate O(host_failures) ESX host failures,
    turns on DRS, and keeps the replicas of each production cluster's nodes on different ESX hosts with
    one VM anti-affinity rule per production cluster.
  - Only the rules named in O(anti_affinity_rules) are managed; other rules of the cluster stay as they are.
author:
  - twinsite developers (@twinsite)
options:
  datacenter:
    description: The DR datacenter.
    type: str
    required: true
  cluster:
    description: The DR cluster.
    type: str
    required: true
  ha:
    description: vSphere HA on or off.
    type: bool
    default: true
  host_failures:
    description: HA admission control keeps enough capacity to restart the VMs of this many failed hosts.
    type: int
    default: 1
  drs:
    description: DRS on or off.
    type: bool
    default: true
  drs_behavior:
    description: DRS automation level.
    type: str
    choices: [fullyAutomated, partiallyAutomated, manual]
    default: fullyAutomated
  anti_affinity_rules:
    description:
      - One rule per production cluster, naming its nodes' replica VMs (for example
        RV(twinsite.dr.placement#module:anti_affinity_rules)).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The rule's name.
        type: str
        required: true
      vms:
        description: The replica VMs to keep on different hosts (at least two).
        type: list
        elements: str
        required: true
extends_documentation_fragment:
  - twinsite.dr.vcenter
attributes:
  action_group:
    support: full
    membership: [twinsite.dr.vcenter]
    description: Its options take their defaults from C(module_defaults) for C(group/twinsite.dr.vcenter).
  check_mode:
    support: full
    description: Says what would change. A rule may name VMs that are not created yet.
  diff_mode:
    support: full
    description: Shows HA, admission control, DRS and the managed rules before and after.
seealso:
  - module: twinsite.dr.placement
  - module: twinsite.dr.replica_vm
"""

EXAMPLES = r"""
- name: HA for one host failure, DRS, and the SQL cluster's replicas apart
  twinsite.dr.dr_cluster:
    datacenter: DR
    cluster: DR-Cluster
    host_failures: 1
    anti_affinity_rules:
      - name: twinsite-sql
        vms: [sql1-dr, sql2-dr]
  delegate_to: localhost
"""

RETURN = r"""
actions:
  description: What was changed (or would be, in check mode).
  returned: always
  type: list
  elements: str
settings:
  description: HA, admission control, DRS and the anti-affinity rules after the run.
  returned: always
  type: dict
  sample:
    ha: true
    admission_control: true
    host_failures: 1
    drs: true
    drs_behavior: fullyAutomated
    anti_affinity: {twinsite-sql: {vms: [sql1-dr, sql2-dr], enabled: true}}
"""

from ansible_collections.twinsite.dr.plugins.module_utils._vsphere import VSphereModule


def logic(module):
    from twinsite.vsphere.cluster import AntiAffinityRule, DrCluster, ensure

    p = module.params
    spec = DrCluster(
        datacenter=p["datacenter"],
        cluster=p["cluster"],
        ha=p["ha"],
        host_failures=p["host_failures"],
        drs=p["drs"],
        drs_behavior=p["drs_behavior"],
        rules=tuple(AntiAffinityRule(r["name"], tuple(r["vms"])) for r in p["anti_affinity_rules"]),
    )
    with module.session() as session:
        out = ensure(session, spec, check=module.check_mode)
    result = dict(changed=out.changed, actions=list(out.actions), settings=out.after)
    return module.with_diff(result, out.before, out.after)


def main():
    module = VSphereModule(
        argument_spec=dict(
            datacenter=dict(type="str", required=True),
            cluster=dict(type="str", required=True),
            ha=dict(type="bool", default=True),
            host_failures=dict(type="int", default=1),
            drs=dict(type="bool", default=True),
            drs_behavior=dict(
                type="str", default="fullyAutomated", choices=["fullyAutomated", "partiallyAutomated", "manual"]
            ),
            anti_affinity_rules=dict(
                type="list",
                elements="dict",
                default=[],
                options=dict(
                    name=dict(type="str", required=True), vms=dict(type="list", elements="str", required=True)
                ),
            ),
        ),
        supports_check_mode=True,
    )
    module.run(logic)


if __name__ == "__main__":
    main()

#!/usr/bin/python
# Copyright: twinsite contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: vm_copy
short_description: Copy a replica VM to another datastore or datacenter, keeping the newest copies
version_added: 0.1.0
description:
  - Clones a VM (its current state, or one of its snapshots with O(snapshot)) to a datastore of the DR site, in
    its datacenter or another one, powered off; a copy on storage independent of the replica VM's, to keep or
    move.
  - The copy is marked as twinsite's (advanced setting C(twinsite.copy) naming the VM, the copy itself, O(label)
    and the UTC time; and an annotation). A VM called O(name) that is already such a copy of O(vm) is reported,
    not made again (C(changed) is false); a VM called O(name) that twinsite did not make is refused.
  - With O(keep), only the newest O(keep) copies of O(vm) (by the time in their marker, wherever they are in
    vCenter) are kept and older ones are removed. Only copies twinsite made are ever removed, never a copy that
    is powered on (it is listed in RV(in_use)).
  - After a passing assured-recovery test the same copy is made by the C(vm_copy) action of
    C(assured_recovery.after_pass), named C(<vm>-copy-<test id>).
author:
  - twinsite developers (@twinsite)
options:
  vm:
    description: The VM to copy (the replica VM), looked up in every datacenter.
    type: str
    required: true
  name:
    description: The copy's name.
    type: str
    required: true
  datastore:
    description: The datastore the copy goes to.
    type: str
    required: true
  datacenter:
    description: The copy's datacenter; the VM's by default. Another datacenter needs O(cluster) or O(resource_pool).
    type: str
  folder:
    description: A VM folder path in that datacenter, such as C(copies/db); its VM folder by default.
    type: str
  cluster:
    description: The copy's cluster (its root resource pool); the VM's resource pool by default.
    type: str
  resource_pool:
    description: The copy's resource pool (in O(cluster) when given).
    type: str
  snapshot:
    description: Copy this snapshot of the VM (by name) instead of its current state.
    type: str
  keep:
    description: Copies of O(vm) kept, the newest; older copies twinsite made are removed. None are removed
      when not given.
    type: int
  label:
    description: What the copy is of (a change number, "before the upgrade"), recorded in its marker and annotation.
    type: str
    default: ""
  copy_timeout:
    description: How long the clone may take, in seconds.
    type: float
    default: 3600
extends_documentation_fragment:
  - twinsite.dr.vcenter
attributes:
  action_group:
    support: full
    membership: [twinsite.dr.vcenter]
    description: Its options take their defaults from C(module_defaults) for C(group/twinsite.dr.vcenter).
  check_mode:
    support: full
    description: Says what would be done (the copy, the older copies removed); nothing changes. Unknown VMs,
      datastores, datacenters, folders, clusters and snapshots fail in check mode too.
  diff_mode:
    support: full
    description: Shows the VM's copies (name, datastore, datacenter, created, label) before and after.
seealso:
  - module: twinsite.dr.vm_snapshot
  - module: twinsite.dr.replica_vm
"""

EXAMPLES = r"""
- name: Copy the replica to the second array before the upgrade, keep three copies
  twinsite.dr.vm_copy:
    vm: prod1-dr
    name: prod1-dr-copy-before-upgrade
    datastore: ArrayB-01
    label: before the upgrade (CHG-1234)
    keep: 3
  delegate_to: localhost

- name: Move a copy of the tested snapshot to the other datacenter
  twinsite.dr.vm_copy:
    vm: prod1-dr
    snapshot: tested
    name: prod1-dr-copy-tested
    datacenter: DR2
    cluster: DR2-Cluster
    datastore: DR2-DS-01
    folder: copies/db
  delegate_to: localhost
"""

RETURN = r"""
actions:
  description: What was done (or would be, in check mode).
  returned: always
  type: list
  elements: str
copy:
  description: The copy made, found or (check mode) to be made (name, source, label, created, snapshot, datacenter,
    datastore, power_state).
  returned: always
  type: dict
made:
  description: Whether the copy was (or would be) made by this run.
  returned: always
  type: bool
removed:
  description: The older copies removed (or that would be).
  returned: always
  type: list
  elements: str
in_use:
  description: Older copies left because they are powered on.
  returned: always
  type: list
  elements: str
copies:
  description: The VM's copies after the run, oldest first.
  returned: always
  type: list
  elements: dict
"""

from ansible_collections.twinsite.dr.plugins.module_utils._vsphere import VSphereModule


def logic(module):
    from twinsite.vsphere.vm_copy import CopySpec, ensure

    p = module.params
    spec = CopySpec(
        vm=p["vm"],
        name=p["name"],
        datastore=p["datastore"],
        datacenter=p["datacenter"],
        folder=p["folder"],
        cluster=p["cluster"],
        resource_pool=p["resource_pool"],
        snapshot=p["snapshot"],
        keep=p["keep"],
        label=p["label"],
        timeout=p["copy_timeout"],
    )
    with module.session() as session:
        out = ensure(session, spec, check=module.check_mode)
    result = dict(
        changed=out.changed,
        actions=list(out.actions),
        copy=out.copy,
        made=out.made,
        removed=list(out.removed),
        in_use=list(out.in_use),
        copies=out.after,
    )
    return module.with_diff(result, dict(copies=out.before), dict(copies=out.after))


def main():
    module = VSphereModule(
        argument_spec=dict(
            vm=dict(type="str", required=True),
            name=dict(type="str", required=True),
            datastore=dict(type="str", required=True),
            datacenter=dict(type="str"),
            folder=dict(type="str"),
            cluster=dict(type="str"),
            resource_pool=dict(type="str"),
            snapshot=dict(type="str"),
            keep=dict(type="int"),
            label=dict(type="str", default=""),
            copy_timeout=dict(type="float", default=3600.0),
        ),
        supports_check_mode=True,
    )
    module.run(logic)


if __name__ == "__main__":
    main()

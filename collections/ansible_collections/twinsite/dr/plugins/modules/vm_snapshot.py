#!/usr/bin/python
# Copyright: twinsite contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: vm_snapshot
short_description: Create, revert to, or remove a snapshot of a replica VM, by name or by id
version_added: 0.1.0
description:
  - Snapshots of replica VMs are taken after a passing assured-recovery test and before risky operations.
  - vSphere does not keep snapshot names unique. A snapshot is chosen by O(snapshot_id) when given, else
    by O(name); a name that several snapshots share is refused with their ids, so that one can be chosen.
  - V(present) creates a snapshot only when none has that name. V(absent) removes the chosen snapshot (its
    children stay). V(reverted) goes back to it and always reports a change, because vCenter cannot tell
    whether the VM changed since.
author:
  - twinsite developers (@twinsite)
options:
  vm:
    description: The VM.
    type: str
    required: true
  datacenter:
    description: The datacenter to look for the VM in; all of them by default.
    type: str
  name:
    description: The snapshot's name.
    type: str
  snapshot_id:
    description: The snapshot's id (as vCenter numbers them; RV(snapshots) lists them).
    type: int
  description:
    description: A description for a new snapshot.
    type: str
    default: ""
  memory:
    description: Include the VM's memory in a new snapshot.
    type: bool
    default: false
  quiesce:
    description: Ask VMware Tools to flush the guest's file systems before a new snapshot.
    type: bool
    default: false
  state:
    description: What to do.
    type: str
    choices: [present, absent, reverted]
    default: present
extends_documentation_fragment:
  - twinsite.dr.vcenter
attributes:
  action_group:
    support: full
    membership: [twinsite.dr.vcenter]
    description: Its options take their defaults from C(module_defaults) for C(group/twinsite.dr.vcenter).
  check_mode:
    support: full
    description: Says what would be done; nothing changes. A snapshot of a VM that does not exist yet (that
      the playbook would create first) is reported as a change.
  diff_mode:
    support: full
    description: Shows the VM's snapshots (id, name, current) before and after.
seealso:
  - module: twinsite.dr.replica_vm
"""

EXAMPLES = r"""
- name: Keep the tested state of the replica
  twinsite.dr.vm_snapshot:
    vm: prod1-dr
    name: assured-recovery-passed
    description: assured-recovery test passed
  delegate_to: localhost

- name: Remove one of two snapshots with the same name
  twinsite.dr.vm_snapshot:
    vm: prod1-dr
    snapshot_id: 3
    state: absent
  delegate_to: localhost
"""

RETURN = r"""
actions:
  description: What was done (or would be, in check mode).
  returned: always
  type: list
  elements: str
snapshot:
  description: The snapshot created, found, reverted to or removed (id, name, description, created, current).
  returned: when there is one
  type: dict
snapshots:
  description: The VM's snapshots after the run, parents before children.
  returned: always
  type: list
  elements: dict
"""

from ansible_collections.twinsite.dr.plugins.module_utils._vsphere import VSphereModule


def logic(module):
    from twinsite.vsphere.snapshot import SnapshotSpec, ensure

    p = module.params
    spec = SnapshotSpec(
        vm=p["vm"],
        datacenter=p["datacenter"],
        name=p["name"],
        id=p["snapshot_id"],
        state=p["state"],
        description=p["description"],
        memory=p["memory"],
        quiesce=p["quiesce"],
    )
    with module.session() as session:
        out = ensure(session, spec, check=module.check_mode)
    result = dict(changed=out.changed, actions=list(out.actions), snapshot=out.snapshot, snapshots=out.after)
    return module.with_diff(result, dict(snapshots=out.before), dict(snapshots=out.after))


def main():
    module = VSphereModule(
        argument_spec=dict(
            vm=dict(type="str", required=True),
            datacenter=dict(type="str"),
            name=dict(type="str"),
            snapshot_id=dict(type="int"),
            description=dict(type="str", default=""),
            memory=dict(type="bool", default=False),
            quiesce=dict(type="bool", default=False),
            state=dict(type="str", default="present", choices=["present", "absent", "reverted"]),
        ),
        required_one_of=[("name", "snapshot_id")],
        supports_check_mode=True,
    )
    module.run(logic)


if __name__ == "__main__":
    main()

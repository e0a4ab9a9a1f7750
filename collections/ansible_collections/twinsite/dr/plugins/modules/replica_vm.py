#!/usr/bin/python
# Copyright: twinsite contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: replica_vm
short_description: Ensure the replica VM of a protected server exists at the DR site
version_added: 0.1.0
description:
  - Clones the replica VM of a protected server from a template into the DR datacenter and cluster,
    sizes it like the production server, connects its NICs to the DR networks, customizes the guest for
    its DR identity (host name, address), and sets its power state.
  - "P2V: give O(cpus) and O(memory_mb) from the production server's facts. V2V: give O(source_vm), and
    the size (and, with O(network_map), the networks) are read from it. Explicit values win."
  - Placement (O(host), O(datastore), O(folder), O(resource_pool)) applies when the VM is created; DRS
    moves VMs afterwards, so it is not enforced on later runs.
  - Guest customization needs the VM powered off. The customization last applied is recorded in the
    VM's advanced settings (C(twinsite.customization)), so a second run knows it is done.
  - A new customization, fewer CPUs or less memory, or more without hot-add, need the VM powered off.
    A running VM that is to stay on is refused before anything changes (in check mode too); with
    O(state=poweredoff) it is powered off first.
  - O(state=absent) powers the VM off and removes it.
  - "Data disks (O(disks)): the VM's disks after its template's own are its data disks, matched to O(disks) by
    position. A missing one is added on the VM's first SCSI controller, a smaller one is grown (also while the
    VM runs). What would lose data or what vSphere cannot do in place is refused before anything changes, in
    check mode too: a disk asked smaller than it is (never shrunk), a different O(disks[].provisioning) or
    O(disks[].datastore) for an existing disk (both need a Storage vMotion first), growing a disk of a VM that
    has snapshots, and data disks beyond the list (never removed: list them, or remove them in vCenter)."
author:
  - twinsite developers (@twinsite)
options:
  name:
    description: The replica VM's name.
    type: str
    required: true
  datacenter:
    description: The DR datacenter.
    type: str
    required: true
  cluster:
    description: The DR cluster the VM runs in.
    type: str
    required: true
  template:
    description: The template (or VM) in the DR datacenter to clone from.
    type: str
    required: true
  datastore:
    description: The datastore for the VM's files. By default vCenter keeps the template's.
    type: str
  folder:
    description: A folder path under the datacenter's VM folder, for example C(replicas/db).
    type: str
  resource_pool:
    description: A resource pool of the cluster. By default the cluster's root pool.
    type: str
  host:
    description: The ESX host to create the VM on (for example from M(twinsite.dr.placement)).
    type: str
  cpus:
    description: Virtual CPUs (P2V, from the production server's facts).
    type: int
  memory_mb:
    description: Memory in MB (P2V, from the production server's facts). Rounded up to a multiple of 4.
    type: int
  source_vm:
    description: The production VM to size the replica from (V2V).
    type: str
  networks:
    description: The DR network of each NIC, in order. NICs are added or removed to match.
    type: list
    elements: str
    default: []
  network_map:
    description:
      - With O(source_vm), the DR network for each production network of the source VM's NICs.
      - Used when O(networks) is empty.
    type: dict
    default: {}
  customization:
    description: The guest's DR identity, applied by vCenter's Linux guest customization.
    type: dict
    suboptions:
      hostname:
        description: The guest's host name.
        type: str
        required: true
      domain:
        description: The guest's DNS domain.
        type: str
        default: ""
      ip:
        description: A fixed address for the first NIC; DHCP when not set.
        type: str
      netmask:
        description: The first NIC's netmask.
        type: str
      gateway:
        description: The first NIC's gateway.
        type: str
      dns_servers:
        description: DNS servers.
        type: list
        elements: str
        default: []
  disks:
    description:
      - The VM's data disks, in order, after the disks it has from its template. Not set (the default), data
        disks are not managed; V([]) means none.
      - M(twinsite.dr.placement) counts them (with O(twinsite.dr.placement#module:servers[].disks)) against the
        datastores' free space.
    type: list
    elements: dict
    suboptions:
      size:
        description:
          - The disk's size, for example C(20GiB), C(500GB) or bytes; rounded up to whole KiB.
          - A disk that exists and is smaller is grown; a disk that is larger is refused, never shrunk.
        type: str
        required: true
      datastore:
        description:
          - The datastore of a new disk. By default the datastore of the VM's files.
          - An existing disk on another datastore is refused (move it with Storage vMotion).
        type: str
      provisioning:
        description:
          - V(thin) allocates space as the guest writes; V(thick) allocates it all at once (lazily zeroed);
            V(eager_zeroed_thick) allocates and zeroes it at once (needed for Fault Tolerance, slowest to create).
          - Applies to new disks; an existing disk with another provisioning is refused (vSphere converts a
            disk only by migrating it).
        type: str
        choices: [thin, thick, eager_zeroed_thick]
        default: thin
  state:
    description:
      - V(present) creates the VM (powered off) if it is missing and leaves the power state of an
        existing one; V(poweredon) and V(poweredoff) also set the power state; V(absent) removes it.
    type: str
    choices: [present, poweredon, poweredoff, absent]
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
    description: Says what would be done, and checks that every named object exists and that the change
      can be made in the VM's power state, without changing anything.
  diff_mode:
    support: full
    description: Shows the managed settings (CPUs, memory, networks, customization, power state, data disks) before
      and after.
seealso:
  - module: twinsite.dr.placement
  - module: twinsite.dr.dr_cluster
notes:
  - >-
    vSphere at the DR site (the P2V and V2V flow, placement rules, and the privileges the vCenter
    user needs): C(docs/vsphere.md) in the twinsite repository.
"""

EXAMPLES = r"""
- name: The replica VM of prod1 (P2V, sized from its facts)
  twinsite.dr.replica_vm:
    hostname: vcenter.dr.example
    username: "{{ vcenter_user }}"
    password: "{{ vcenter_password }}"
    name: prod1-dr
    datacenter: DR
    cluster: DR-Cluster
    template: linux-template
    cpus: "{{ hostvars['prod1'].ansible_processor_vcpus }}"
    memory_mb: "{{ hostvars['prod1'].ansible_memtotal_mb }}"
    networks: [DR-Net]
    customization:
      hostname: prod1-dr
      domain: dr.example
      ip: 192.0.2.21
      netmask: 255.255.255.0
      gateway: 192.0.2.1
    state: poweredon
  delegate_to: localhost

- name: A V2V replica, sized and wired like its source VM
  twinsite.dr.replica_vm:
    name: erp-dr
    datacenter: DR
    cluster: DR-Cluster
    template: linux-template
    source_vm: erp
    network_map:
      Prod-Net: DR-Net
  delegate_to: localhost

- name: The database replica with its data and log disks
  twinsite.dr.replica_vm:
    name: db-dr
    datacenter: DR
    cluster: DR-Cluster
    template: linux-template
    disks:
      - {size: 200GiB, provisioning: thick}
      - {size: 50GiB, datastore: DR-SSD-01}
  delegate_to: localhost
"""

RETURN = r"""
actions:
  description: What was done (or, in check mode, would be done), in order.
  returned: always
  type: list
  elements: str
  sample: ["clone linux-template to prod1-dr", "size 2 CPU / 2048 MB", "power on"]
settings:
  description: The managed settings after the run (in check mode, as they would be).
  returned: always
  type: dict
  sample: {cpus: 2, memory_mb: 2048, networks: [DR-Net], customization: null, power_state: poweredon,
           disks: [{size: 21474836480, datastore: DR-DS-01, provisioning: thin}]}
vm:
  description: The VM (name, moid, instance uuid, ESX host, power state); empty in check mode for a new VM.
  returned: always
  type: dict
"""

from ansible_collections.twinsite.dr.plugins.module_utils._vsphere import VSphereModule


def spec_from(params):
    from twinsite.vsphere.replica_vm import Customization, ReplicaVm, disks_from

    c = params["customization"]
    return ReplicaVm(
        name=params["name"],
        datacenter=params["datacenter"],
        cluster=params["cluster"],
        template=params["template"],
        datastore=params["datastore"],
        folder=params["folder"],
        resource_pool=params["resource_pool"],
        host=params["host"],
        cpus=params["cpus"],
        memory_mb=params["memory_mb"],
        source_vm=params["source_vm"],
        networks=tuple(params["networks"]),
        network_map=tuple(sorted(params["network_map"].items())),
        customization=Customization(**{**c, "dns_servers": tuple(c["dns_servers"])}) if c else None,
        state=params["state"],
        disks=disks_from(params["disks"]),
    )


def logic(module):
    from twinsite.vsphere.replica_vm import ensure

    with module.session() as session:
        out = ensure(session, spec_from(module.params), check=module.check_mode)
    result = dict(changed=out.changed, actions=list(out.actions), settings=out.after, vm=out.vm)
    return module.with_diff(result, out.before, out.after)


def main():
    module = VSphereModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            datacenter=dict(type="str", required=True),
            cluster=dict(type="str", required=True),
            template=dict(type="str", required=True),
            datastore=dict(type="str"),
            folder=dict(type="str"),
            resource_pool=dict(type="str"),
            host=dict(type="str"),
            cpus=dict(type="int"),
            memory_mb=dict(type="int"),
            source_vm=dict(type="str"),
            networks=dict(type="list", elements="str", default=[]),
            network_map=dict(type="dict", default={}),
            customization=dict(
                type="dict",
                options=dict(
                    hostname=dict(type="str", required=True),
                    domain=dict(type="str", default=""),
                    ip=dict(type="str"),
                    netmask=dict(type="str"),
                    gateway=dict(type="str"),
                    dns_servers=dict(type="list", elements="str", default=[]),
                ),
            ),
            state=dict(type="str", default="present", choices=["present", "poweredon", "poweredoff", "absent"]),
            disks=dict(
                type="list",
                elements="dict",
                options=dict(
                    size=dict(type="str", required=True),
                    datastore=dict(type="str"),
                    provisioning=dict(type="str", default="thin", choices=["thin", "thick", "eager_zeroed_thick"]),
                ),
            ),
        ),
        supports_check_mode=True,
    )
    module.run(logic)


if __name__ == "__main__":
    main()

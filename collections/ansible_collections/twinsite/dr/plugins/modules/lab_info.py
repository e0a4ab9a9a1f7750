#!/usr/bin/python
# Copyright: twinsite contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: lab_info
short_description: Report what runs in the twinsite lab and where
version_added: 0.1.0
description:
  - Reads the state of the embedded lab (C(twinsite lab status --json)) on the machine that runs it,
    that is the lab hosts and whether their link is up or cut, the DNS server, the vCenter simulator, and the
    files a client needs (ssh config, known_hosts, TSIG key, CA certificate).
  - Read-only. Run it where the lab runs (usually the controller, with C(hosts=localhost)).
author:
  - twinsite developers (@twinsite)
options:
  lab_dir:
    description:
      - The lab's directory (E(TWINSITE_LAB_DIR)). Defaults to the twinsite default, C(/var/lib/twinsite-lab).
    type: path
  require_up:
    description:
      - Fail unless every part of the lab runs and every host's link is up.
    type: bool
    default: false
extends_documentation_fragment:
  - twinsite.dr.cli
  - twinsite.dr.cli.info
notes:
  - >-
    The twinsite lab (how the lab is built, and the C(twinsite lab) commands): C(docs/lab.md) in the
    twinsite repository.
"""

EXAMPLES = r"""
- name: Read the lab's state
  twinsite.dr.lab_info:
  register: lab

- name: Stop here unless the whole lab runs
  twinsite.dr.lab_info:
    require_up: true

- name: Show where the DNS server listens
  ansible.builtin.debug:
    msg: "{{ lab.lab.dns.server }}:{{ lab.lab.dns.port }}"
"""

RETURN = r"""
lab:
  description: The lab's state, as C(twinsite lab status --json) reports it.
  returned: success
  type: dict
  contains:
    state:
      description: C(up) when every part runs, C(down) when none does, C(partial) otherwise.
      type: str
      sample: up
    hosts:
      description: One entry per lab host.
      type: list
      elements: dict
      sample:
        - name: prod1
          address: 10.77.0.11
          fqdn: prod1.dr.test
          site: site-a
          link: up
          netns: twl-prod1
          sshd_pid: 4287
    dns:
      description: The DNS server (address, port, zone, TSIG key file, pid).
      type: dict
      sample: {server: 10.77.0.1, port: 53, zone: dr.test, tsig_key_file: /var/lib/twinsite-lab/dns/tsig.json}
    vcenter:
      description: The vCenter simulator (address, port, user, password file, CA file, pid).
      type: dict
      sample: {hostname: 10.77.0.1, port: 443, username: administrator@vsphere.local}
    ssh:
      description: Client files for reaching the hosts with verified host keys.
      type: dict
      sample: {config: /var/lib/twinsite-lab/ssh/config, known_hosts: /var/lib/twinsite-lab/ssh/known_hosts}
"""

from ansible_collections.twinsite.dr.plugins.module_utils._base import TwinsiteModule


def not_up_reasons(lab):
    """Why the lab does not count as fully up (empty when it does)."""
    reasons = []
    if lab.get("state") != "up":
        reasons.append("lab state is %s" % lab.get("state"))
    reasons.extend("%s link is %s" % (h["name"], h["link"]) for h in lab.get("hosts", []) if h.get("link") != "up")
    return reasons


def logic(module):
    env = {"TWINSITE_LAB_DIR": module.params["lab_dir"]} if module.params["lab_dir"] else None
    lab = module.twinsite(["lab", "status"], environ_update=env)
    if module.params["require_up"]:
        reasons = not_up_reasons(lab)
        if reasons:
            module.fail_json(msg="the lab is not fully up: %s (run `twinsite lab up`)" % "; ".join(reasons), lab=lab)
    return dict(changed=False, lab=lab)


def main():
    module = TwinsiteModule(
        argument_spec=dict(
            lab_dir=dict(type="path"),
            require_up=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    module.run(logic)


if __name__ == "__main__":
    main()

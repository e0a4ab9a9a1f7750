#!/usr/bin/python
# Copyright: twinsite contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: scenario_info
short_description: Report the replication state of every scenario on a host
version_added: 0.1.0
description:
  - Runs C(twinsite status --json) on the host, giving per scenario and standby the role, the state
    (syncing, replicating, disconnected, degraded, stopped, stale), the acknowledged seq, the lag, the
    journal backlog and the last error.
author:
  - twinsite developers (@twinsite)
options:
  name:
    description: Only this scenario.
    type: str
attributes:
  action_group:
    support: full
    membership: [twinsite.dr.host]
    description: Its options take their defaults from C(module_defaults) for C(group/twinsite.dr.host).
extends_documentation_fragment:
  - twinsite.dr.cli
  - twinsite.dr.cli.dirs
  - twinsite.dr.cli.info
seealso:
  - module: twinsite.dr.scenario
"""

EXAMPLES = r"""
- name: Where does replication stand on prod1
  twinsite.dr.scenario_info:
  register: repl

- name: Fail unless app replicates with less than 5 s of lag
  ansible.builtin.assert:
    that:
      - repl.scenarios | selectattr('scenario', 'eq', 'app') | map(attribute='state') | first == 'replicating'
      - repl.scenarios | selectattr('scenario', 'eq', 'app') | map(attribute='lag_seconds') | first < 5
"""

RETURN = r"""
scenarios:
  description:
    - One entry per scenario, root and standby (on an active host) or per scenario and root (on a standby).
    - On an active host, C(sync) has the progress of the current (or the last) initial sync or resync, that is
      the files and bytes acknowledged by the standby out of the tree's total, the rate and the ETA.
  returned: success
  type: list
  elements: dict
  sample:
    - scenario: app
      role: active
      replica: dr1
      root: /srv/app
      state: replicating
      acked_seq: 1005
      lag_seconds: 0.04
      backlog_bytes: 74463
      last_error: null
      sync:
        percent: 100.0
        files_total: 10001
        files_done: 10001
        bytes_total: 1067547812
        bytes_done: 1067547812
        bytes_sent: 1067547812
        rate_bytes_per_s: 71650000
        eta_seconds: 0.0
        elapsed_seconds: 14.9
"""

from ansible_collections.twinsite.dr.plugins.module_utils._base import TwinsiteModule, dirs_args, dirs_argument_spec


def logic(module):
    p = module.params
    result = module.twinsite(["status", *dirs_args(p)])
    rows = [r for r in result["scenarios"] if p["name"] is None or r["scenario"] == p["name"]]
    return dict(changed=False, scenarios=rows)


def main():
    module = TwinsiteModule(
        argument_spec=dict(
            name=dict(type="str"),
            **dirs_argument_spec(),
        ),
        supports_check_mode=True,
    )
    module.run(logic)


if __name__ == "__main__":
    main()

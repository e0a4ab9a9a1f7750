#!/usr/bin/python
# Copyright: twinsite contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: switchover
short_description: Make this host the active host of a scenario (switchover), or switch back to it
version_added: 0.1.0
description:
  - Runs on the host that is to become active.
  - With O(kind=switchover), on a standby. A planned switchover when the active host answers (its
    application stops, every change is applied here and proved by equal tree digests, so nothing is lost);
    an unplanned one when it does not, only with O(unplanned) (the old host is fenced when
    C(switchover.fence) says how). Then the application starts and passes its checks here, users are
    redirected by the methods of C(redirect) (DNS, a service address, a script) and verified from the
    users' hosts, and the roles are reversed.
  - With O(kind=switchback), on a former active host that is back after a failover. What differs here from
    the active host is set aside and reported (never merged), this host is resynchronised by delta, then the
    same switchover runs in the other direction.
  - Every step is persisted. A run that was interrupted (a lost connection, a killed process) continues
    where it stopped when the task runs again. A host that is already active reports C(changed=false).
  - Check mode gives the plan and whether the switchover would be planned or unplanned; nothing changes.
author:
  - twinsite developers (@twinsite)
options:
  scenario:
    description: The scenario.
    type: str
    required: true
  kind:
    description: C(switchover) on a standby, C(switchback) on the former active host.
    type: str
    choices: [switchover, switchback]
    default: switchover
  unplanned:
    description:
      - Go on when the active host does not answer. The changes it made that were not replicated yet are
        lost (the report gives the window). Make sure it is down, or configure C(switchover.fence).
    type: bool
    default: false
  force:
    description: Switch over to a replica that was last seen still in its initial sync.
    type: bool
    default: false
  rewound:
    description:
      - Switch over to a replica rewound to before a corruption (C(twinsite.dr.rewind)), with O(unplanned).
        Its point becomes the live data; what was applied after it is left behind, and the old active
        host's copy is set aside at switch-back. Without it, a rewound replica is refused.
    type: bool
    default: false
extends_documentation_fragment:
  - twinsite.dr.cli
  - twinsite.dr.cli.dirs
attributes:
  action_group:
    support: full
    membership: [twinsite.dr.host]
    description: Its options take their defaults from C(module_defaults) for C(group/twinsite.dr.host).
  check_mode:
    support: full
    description: The plan, and whether it would be planned or unplanned. Nothing changes.
  diff_mode:
    support: full
    description: The active host and epoch before and after.
notes:
  - >-
    Runbook, planned switchover (step by step, for on-call staff):
    C(docs/runbooks/planned-switchover.md) in the twinsite repository.
  - >-
    Runbook, unplanned failover (when the production site is down):
    C(docs/runbooks/unplanned-failover.md) in the twinsite repository.
  - >-
    Runbook, switch-back (back to the original site once it is repaired):
    C(docs/runbooks/switchback.md) in the twinsite repository.
"""

EXAMPLES = r"""
- name: Planned switchover of db to this standby
  twinsite.dr.switchover:
    scenario: db

- name: The production site is down; fail over anyway
  twinsite.dr.switchover:
    scenario: db
    unplanned: true

- name: Back to the original site, on the original active host
  twinsite.dr.switchover:
    scenario: db
    kind: switchback
"""

RETURN = r"""
mode:
  description: C(planned) or C(unplanned) (in check mode, what it would be); C(nothing to do) on the active host.
  returned: success
  type: str
  sample: planned
active:
  description: The host that is active after the task (in check mode, before it).
  returned: success
  type: str
  sample: dr1
steps:
  description: The steps, with what each does (check mode) or its state, start, duration and result.
  returned: success
  type: list
  elements: dict
rto:
  description: C(outage_seconds) (users without the application), C(switchover_seconds), C(application_seconds).
  returned: when a switchover ran
  type: dict
rpo:
  description: C(seconds) of changes lost (0 for planned), C(last_applied_at), C(failure_at), C(proof).
  returned: when a switchover ran
  type: dict
report:
  description: The human report, line by line (also in the state directory, C(switchovers/ID.txt)).
  returned: when a switchover ran
  type: list
  elements: str
id:
  description: The run's id.
  returned: when a switchover ran
  type: str
"""

from ansible_collections.twinsite.dr.plugins.module_utils._base import TwinsiteModule, dirs_args, dirs_argument_spec


def logic(module):
    p = module.params
    base = [p["kind"], p["scenario"], *dirs_args(p)]
    if p["kind"] == "switchover":
        base += ["--unplanned"] if p["unplanned"] else []
        base += ["--force"] if p["force"] else []
        base += ["--rewound"] if p["rewound"] else []
    plan = module.twinsite([*base, "--dry-run"])
    result = dict(changed=plan["changed"], mode=plan["mode"], active=plan["active"], steps=plan["steps"])
    if plan["changed"] and module._diff:
        result["diff"] = dict(
            before="active: %s (epoch %d)\n" % (plan["active"], plan["epoch"]),
            after="active: %s (epoch %d)\n" % (plan["to"], plan["epoch"] + 1),
        )
    if module.check_mode or not plan["changed"]:
        return result
    done = module.twinsite(base)
    if not done.get("changed"):
        return dict(result, changed=False)
    result.update(
        changed=True,
        mode=done["mode"],
        active=done["to"],
        id=done["id"],
        steps=done["steps"],
        rto=done["rto"],
        rpo=done["rpo"],
        report=done["text"].splitlines(),
    )
    return result


def main():
    module = TwinsiteModule(
        argument_spec=dict(
            scenario=dict(type="str", required=True),
            kind=dict(type="str", choices=["switchover", "switchback"], default="switchover"),
            unplanned=dict(type="bool", default=False),
            force=dict(type="bool", default=False),
            rewound=dict(type="bool", default=False),
            **dirs_argument_spec(),
        ),
        supports_check_mode=True,
    )
    module.run(logic)


if __name__ == "__main__":
    main()

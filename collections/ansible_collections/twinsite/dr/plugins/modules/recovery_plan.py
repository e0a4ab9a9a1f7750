#!/usr/bin/python
# Copyright: twinsite contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: recovery_plan
short_description: Fail over, test or switch back a whole site by its recovery plan
version_added: 0.1.0
description:
  - Runs a recovery plan (O(plans), declared as C(twinsite_recovery_plans) beside C(twinsite_scenarios)) from
    the controller, group after group, the scenarios of a group side by side (the group's C(parallel) at
    most), each by twinsite's own command on its host over SSH (the hosts' connection settings in O(hosts)).
  - O(action=failover) switches each scenario over to its standby, O(action=test) runs an assured-recovery
    test of each on its standby (nothing moves), O(action=switchback) switches each back to its home host.
  - Resumable. The plan's run is kept on the controller under O(state_dir); run again after an interruption
    or a fixed failure, it continues with the group that was under way, and never switches a scenario twice.
  - One report per run (JSON and Markdown, under O(state_dir)), covering every attempt of the run.
  - In check mode, asks each scenario's host for its own dry run and returns the whole plan (groups in order,
    who is active now, what would move), changing nothing.
author:
  - twinsite developers (@twinsite)
options:
  plan:
    description: The name of the plan to run.
    type: str
    required: true
  action:
    description: What to do with the plan's scenarios.
    type: str
    required: true
    choices: [failover, test, switchback]
  unplanned:
    description:
      - With O(action=failover), go on for a scenario whose active host does not answer (its changes not
        replicated yet are lost). Without it, such a scenario fails and the plan's C(on_failure) applies.
    type: bool
    default: false
  scenarios:
    description: The scenarios (C(twinsite_scenarios)); the plan names some of them.
    type: list
    elements: dict
    required: true
  plans:
    description: The recovery plans (C(twinsite_recovery_plans)); validated with the scenarios, every problem at once.
    type: list
    elements: dict
    required: true
  hosts:
    description:
      - Each inventory host the plan's scenarios name, with its connection settings under Ansible's names
        (C(ansible_host), C(ansible_user), C(ansible_port), C(ansible_ssh_private_key_file),
        C(ansible_ssh_common_args)). Host keys are always checked against the known hosts, never added.
      - Where twinsite is on a host when the agent role put it elsewhere than by default, by the role's own
        variables C(twinsite_agent_install_dir), C(twinsite_agent_config_dir) and C(twinsite_agent_state_dir)
        (the playbooks pass them); C(twinsite_agent_install_dir) takes precedence over O(remote_cli).
    type: dict
    required: true
  state_dir:
    description: Where the controller keeps the plans' runs and reports (C(plans/PLAN/) below it).
    type: path
    default: ~/.local/state/twinsite
  remote_cli:
    description: The twinsite CLI on the hosts.
    type: str
    default: /opt/twinsite/bin/twinsite
attributes:
  check_mode:
    support: full
    description: Returns the plan and each host's dry run; changes nothing.
  diff_mode:
    support: none
    description: The plan (RV(plan)) says what would move.
seealso:
  - module: twinsite.dr.switchover
  - module: twinsite.dr.assured_recovery
"""

EXAMPLES = r"""
- name: What a site failover would do
  twinsite.dr.recovery_plan:
    plan: site-a
    action: failover
    scenarios: "{{ twinsite_scenarios }}"
    plans: "{{ twinsite_recovery_plans }}"
    hosts: "{{ twinsite_site_hosts }}"
  check_mode: true
  register: site_plan

- name: Fail the site over
  twinsite.dr.recovery_plan:
    plan: site-a
    action: failover
    scenarios: "{{ twinsite_scenarios }}"
    plans: "{{ twinsite_recovery_plans }}"
    hosts: "{{ twinsite_site_hosts }}"
  register: site_run
"""

RETURN = r"""
plan:
  description:
    - The plan as it stands - each group with each scenario's host, who is active, the mode.
  returned: in check mode
  type: dict
plan_text:
  description: RV(plan) as people read it.
  returned: in check mode
  type: str
report:
  description:
    - The run's report - each scenario's outcome, host, times, RTO and RPO, the order of events, the failures,
      the plan's total RTO. Not returned in check mode.
  returned: when run
  type: dict
report_text:
  description: RV(report) as Markdown (also kept in the report's C(.md) file).
  returned: when run
  type: str
report_file:
  description: Where the report's JSON is kept on the controller.
  returned: when run
  type: str
"""

from ansible_collections.twinsite.dr.plugins.module_utils._vsphere import VSphereModule


def logic(module):
    from pathlib import Path

    from twinsite.config.loader import load_site
    from twinsite.config.secrets import secrets
    from twinsite.errors import ConfigError
    from twinsite.plans.hosts import Hosts
    from twinsite.plans.run import PlanRun, markdown, preview_text

    p = module.params
    for declared in p["scenarios"]:  # (their alert secrets are never shown, not even in the arguments)
        module.no_log_values.update(secrets(declared))
    scenarios, plans = load_site(
        {"twinsite_scenarios": p["scenarios"], "twinsite_recovery_plans": p["plans"]}, "the inventory"
    )
    found = [x for x in plans if x.name == p["plan"]]
    if not found:
        names = ", ".join(x.name for x in plans) or "none"
        raise ConfigError("no recovery plan named %s (declared: %s)" % (p["plan"], names))
    run = PlanRun(
        found[0],
        {s.name: s for s in scenarios},
        Hosts.from_vars(p["hosts"], cli=p["remote_cli"]),
        Path(p["state_dir"]),  # (a path option: Ansible has expanded ~ already)
        p["action"],
        unplanned=p["unplanned"],
    )
    if module.check_mode:  # (the playbooks look first, in check mode: a run does not ask every host again)
        preview = run.preview()
        return dict(plan=preview, plan_text=preview_text(preview), changed=preview["changes"] > 0)
    report, error = run.execute()
    text = markdown(report)
    out = dict(
        report=report,
        report_text=text,
        report_file=str(run.place.report(report["id"])),
        changed=any(o["state"] == "done" for g in report["groups"] for o in g["scenarios"]),
    )
    if error is not None or report["failed"]:
        what = (
            error.message
            if error is not None
            else "; ".join("%s: %s (%s)" % (f["scenario"], f["state"], f["error"]) for f in report["failed"])
        )
        module.fail_json(msg="plan %s: %s" % (p["plan"], what), **out)
    return out


def main():
    module = VSphereModule(
        argument_spec=dict(
            plan=dict(type="str", required=True),
            action=dict(type="str", required=True, choices=["failover", "test", "switchback"]),
            unplanned=dict(type="bool", default=False),
            scenarios=dict(type="list", elements="dict", required=True),
            plans=dict(type="list", elements="dict", required=True),
            hosts=dict(type="dict", required=True),
            state_dir=dict(type="path", default="~/.local/state/twinsite"),
            remote_cli=dict(type="str", default="/opt/twinsite/bin/twinsite"),
        ),
        vcenter=False,
        supports_check_mode=True,
    )
    module.run(logic)


if __name__ == "__main__":
    main()

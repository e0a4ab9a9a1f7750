#!/usr/bin/python
# Copyright: twinsite contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: scenario
short_description: Declare a protected application (a replication scenario) on a host
version_added: 0.1.0
description:
  - Creates, changes, stops, starts or removes one scenario in the host's scenario directory, where the
    twinsite agent picks it up within seconds. Run it on the scenario's active host and on its standbys.
  - The definition is validated against the scenario schema before anything changes; an invalid one fails
    with every problem listed and changes nothing.
  - Idempotent. The definition travels on the CLI's standard input, never on its command line.
  - Alert secrets never show. An alert webhook's URL is shown as its scheme and host, its headers' values as
    C(********), in before/after, the diff and the module's arguments. To keep them out of the inventory too,
    O(definition) can name files on the host instead (C(url_file), C(headers_file)).
author:
  - twinsite developers (@twinsite)
options:
  name:
    description: The scenario's name (also its state directory under C(/var/lib/twinsite)).
    type: str
    required: true
  definition:
    description:
      - The scenario (see docs/scenario-reference in the project), without or with its C(name).
      - Required to create a scenario; when omitted for an existing one, only its state changes.
    type: dict
  state:
    description:
      - V(present) makes the definition current and keeps the running state (new scenarios start).
      - V(started) and V(stopped) also set whether the agent replicates it.
      - V(absent) removes it (replicated data stays where it is).
    type: str
    choices: [present, started, stopped, absent]
    default: present
extends_documentation_fragment:
  - twinsite.dr.cli
  - twinsite.dr.cli.dirs
notes:
  - A change is recorded in the event log under O(state_dir), with who asked (O(asked_by)).
attributes:
  action_group:
    support: full
    membership: [twinsite.dr.host]
    description: Its options take their defaults from C(module_defaults) for C(group/twinsite.dr.host).
  check_mode:
    support: full
    description:
      - Reports what would change and changes nothing.
      - On a host where twinsite is not installed yet (a first run of the agent role in check mode), it reports
        that the scenario would be declared, with a warning.
  diff_mode:
    support: full
    description: Shows the scenario's state and definition before and after.
seealso:
  - module: twinsite.dr.scenario_info
"""

EXAMPLES = r"""
- name: Protect /srv/app, replicated from prod1 to dr1
  twinsite.dr.scenario:
    name: app
    state: started
    definition:
      master: prod1
      replicas: [dr1]
      roots:
        - path: /srv/app
          exclude: ["*.tmp"]
      replication:
        mode: continuous

- name: Pause replication of app during maintenance
  twinsite.dr.scenario:
    name: app
    state: stopped
"""

RETURN = r"""
before:
  description: The scenario's state and definition before the task.
  returned: success
  type: dict
  sample: {state: absent}
after:
  description: The scenario's state and definition after the task (or what it would be, in check mode).
  returned: success
  type: dict
  sample: {state: started, definition: {name: app, master: prod1, replicas: [dr1], roots: [{path: /srv/app}]}}
"""

import json

from ansible_collections.twinsite.dr.plugins.module_utils._base import (
    TwinsiteModule,
    alert_secrets,
    dirs_args,
    dirs_argument_spec,
)


def logic(module):
    p = module.params
    module.no_log_values.update(alert_secrets(p["definition"]))  # (never shown: not even in the arguments)
    if module.check_mode and module.find_cli() is None:
        return not_installed_yet(module)
    args = ["scenario", p["name"], "--state", p["state"], *dirs_args(p)]
    data = None
    if p["definition"] is not None:
        args.append("--definition-stdin")
        data = json.dumps(p["definition"])
    if module.check_mode:
        args.append("--check")
    result = module.twinsite(args, data=data)
    out = dict(changed=result["changed"], before=result["before"], after=result["after"])
    if module._diff:
        out["diff"] = dict(before=result["before"], after=result["after"])
    return out


def not_installed_yet(module):
    """Check mode on a host the agent role has not installed twinsite on yet (the same run would): what the real
    run would do, which is declare the scenario (the first play of configure.yml has validated it)."""
    p = module.params
    before = dict(state="absent")
    if p["state"] == "absent":
        return dict(changed=False, before=before, after=before)
    if p["definition"] is None:
        module.fail_json(msg="scenario %s does not exist here: a definition is needed to create it" % p["name"])
    run = "stopped" if p["state"] == "stopped" else "started"
    after = dict(state=run, definition=dict(p["definition"], name=p["name"]))
    module.warn("twinsite is not installed on this host yet: the agent role installs it in the real run")
    out = dict(changed=True, before=before, after=after)
    if module._diff:
        out["diff"] = dict(before=before, after=after)
    return out


def main():
    module = TwinsiteModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            definition=dict(type="dict"),
            state=dict(type="str", default="present", choices=["present", "started", "stopped", "absent"]),
            **dirs_argument_spec(),
        ),
        supports_check_mode=True,
    )
    module.run(logic)


if __name__ == "__main__":
    main()

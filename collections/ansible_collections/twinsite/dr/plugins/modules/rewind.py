#!/usr/bin/python
# Copyright: twinsite contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: rewind
short_description: Rewind a replica to a time, a bookmark or a seq, or bring it forward again
version_added: 0.1.0
description:
  - Runs on the standby of a scenario with continuous data protection (C(cdp.enabled)). With O(to) it
    undoes what was applied after that point. The replica is then marked rewound and replication pauses
    until O(resume) brings it forward again (or a switchover makes the rewound data the active data).
  - Check mode is a dry run that lists what would change. With C(--diff) the list of paths is shown.
    Moving to the point the replica is already at changes nothing.
author:
  - twinsite developers (@twinsite)
options:
  scenario:
    description: The scenario.
    type: str
    required: true
  to:
    description:
      - Where to go. A bookmark name, a seq number, or an ISO 8601 time such as C(2026-11-25T03:00:00Z)
        (without a zone, the host's local time). Outside the rewind window the module fails and names the
        reachable range.
    type: str
  resume:
    description: Bring the replica forward to where replication stopped, and let replication go on.
    type: bool
    default: false
  root:
    description: Which root of the scenario (0 is the first).
    type: int
    default: 0
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
    description: A dry run that lists the paths and bytes that would change.
  diff_mode:
    support: full
    description: Shows the seqs before and after and every path that changes.
seealso:
  - module: twinsite.dr.bookmark
notes:
  - >-
    Runbook, rewinding a replica (step by step, for on-call staff): C(docs/runbooks/rewind.md) in
    the twinsite repository.
"""

EXAMPLES = r"""
- name: See what going back to the bookmark would undo
  twinsite.dr.rewind:
    scenario: db
    to: before-upgrade-4.2
  check_mode: true
  register: plan

- name: Go back
  twinsite.dr.rewind:
    scenario: db
    to: before-upgrade-4.2

- name: Forward again, replication goes on
  twinsite.dr.rewind:
    scenario: db
    resume: true
"""

RETURN = r"""
from:
  description: The seq the replica was at.
  returned: success
  type: int
  sample: 18340
to:
  description: The seq of the point it is moved to (a time or bookmark is resolved to its point).
  returned: success
  type: int
  sample: 18211
head:
  description: Where replication stopped (forward ends there).
  returned: success
  type: int
  sample: 18340
files:
  description: Every path the move changes, as the records name them.
  returned: success
  type: list
  elements: str
  sample: ["db/data.db", "db/wal/seg3"]
bytes:
  description: Bytes of data the move writes back.
  returned: success
  type: int
  sample: 600000
state:
  description: C(rewound) or C(replicating) after the move (absent in check mode).
  returned: when not in check mode
  type: str
  sample: rewound
"""

from ansible_collections.twinsite.dr.plugins.module_utils._base import TwinsiteModule, dirs_args, dirs_argument_spec


def logic(module):
    p = module.params
    if bool(p["resume"]) == bool(p["to"]):
        module.fail_json(msg="give either to (a time, bookmark or seq) or resume=true")
    where = ["--root", str(p["root"]), *dirs_args(p)]
    how = ["--resume"] if p["resume"] else ["--to", p["to"]]
    plan = module.twinsite(["rewind", p["scenario"], *how, "--dry-run", *where])
    changed = plan["from"] != plan["to"] or plan["changed"]
    keys = ("from", "to", "head", "files", "bytes", "records")
    result = dict(changed=changed, **{k: plan[k] for k in keys})
    if changed and module._diff:
        listing = "".join("  %s\n" % f for f in plan["files"])
        result["diff"] = dict(
            prepared="replica of %s: seq %d -> seq %d (head %d), %d bytes of data, paths changed:\n%s"
            % (p["scenario"], plan["from"], plan["to"], plan["head"], plan["bytes"], listing)
        )
    if module.check_mode or not changed:
        return result
    done = module.twinsite(["rewind", p["scenario"], *how, *where])
    result["state"] = done["state"]
    return result


def main():
    module = TwinsiteModule(
        argument_spec=dict(
            scenario=dict(type="str", required=True),
            to=dict(type="str"),
            resume=dict(type="bool", default=False),
            root=dict(type="int", default=0),
            **dirs_argument_spec(),
        ),
        supports_check_mode=True,
    )
    module.run(logic)


if __name__ == "__main__":
    main()

#!/usr/bin/python
# Copyright: twinsite contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: bookmark
short_description: Name the current point of a replica, to rewind to it later
version_added: 0.1.0
description:
  - Runs on the standby of a scenario with continuous data protection (C(cdp.enabled)) and names the
    replica's newest applied point, for example C(before-upgrade-4.2) as the first task of an upgrade
    playbook. C(twinsite rewind --to NAME) goes back to it.
  - Idempotent, because an existing bookmark is left as it is. A bookmark marks the standby's newest
    applied point, so changes the source made in the last moment before it may not be in it yet.
author:
  - twinsite developers (@twinsite)
options:
  scenario:
    description: The scenario.
    type: str
    required: true
  name:
    description:
      - The bookmark's name, of letters, digits and the characters C(._:@+-), not all digits.
    type: str
    required: true
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
    description: Says whether the bookmark would be created, and at which seq.
  diff_mode:
    support: none
    description: A bookmark has no before and after worth showing.
seealso:
  - module: twinsite.dr.rewind
notes:
  - >-
    Rewinding a replica (how continuous data protection works): C(docs/cdp.md) in the twinsite
    repository.
"""

EXAMPLES = r"""
- name: Mark the replica before the upgrade
  twinsite.dr.bookmark:
    scenario: db
    name: before-upgrade-4.2
  delegate_to: dr1
"""

RETURN = r"""
bookmark:
  description: The bookmark (made now, or found already there).
  returned: success
  type: dict
  sample:
    name: before-upgrade-4.2
    seq: 18211
    ts: 1795577216.39
    time: "2026-11-25T03:40:16.390Z"
"""

from ansible_collections.twinsite.dr.plugins.module_utils._base import TwinsiteModule, dirs_args, dirs_argument_spec


def logic(module):
    p = module.params
    where = ["--root", str(p["root"]), *dirs_args(p)]
    points = module.twinsite(["rewind-points", p["scenario"], *where])
    found = [b for b in points["bookmarks"] if b["name"] == p["name"]]
    if found:
        return dict(changed=False, bookmark=found[0])
    if module.check_mode:
        return dict(changed=True, bookmark=dict(name=p["name"], seq=points["head"]))
    made = module.twinsite(["bookmark", p["scenario"], p["name"], *where])
    return dict(changed=made["changed"], bookmark={k: made[k] for k in ("name", "seq", "ts", "time")})


def main():
    module = TwinsiteModule(
        argument_spec=dict(
            scenario=dict(type="str", required=True),
            name=dict(type="str", required=True),
            root=dict(type="int", default=0),
            **dirs_argument_spec(),
        ),
        supports_check_mode=True,
    )
    module.run(logic)


if __name__ == "__main__":
    main()

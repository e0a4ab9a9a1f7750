# Copyright: twinsite contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  twinsite_cli:
    description:
      - Path of the C(twinsite) command on the target host.
      - By default it is looked up in E(PATH), then in C(/opt/twinsite/bin) (where the agent
        role installs it), then beside the Python interpreter running the module.
      - With a non-default C(twinsite_agent_install_dir), set it for every host-side module at once with the
        C(twinsite.dr.host) module defaults group, as the collection's playbooks do.
    type: path
  asked_by:
    description:
      - Who asks, recorded with every change the module makes (the host's event log, C(twinsite report), the
        console), beside the user the module runs as and the SSH client's address.
      - The collection's playbooks set it for every host-side module, with the C(twinsite.dr.host) module defaults
        group, to C(twinsite_asked_by) or else the controller's user and host (C(user@host)).
    type: str
requirements:
  - the C(twinsite) command on the target host (JSON api 1)
"""

    # Read-only (_info) modules: how they behave in check and diff mode.
    INFO = r"""
attributes:
  check_mode:
    support: full
    description: Read-only; runs the same in check mode.
  diff_mode:
    support: none
    description: Reads only, there is nothing to diff.
"""

    # Modules that read a host's scenarios and state: where they are.
    DIRS = r"""
options:
  config_dir:
    description:
      - The host's scenario directory.
      - The C(twinsite.dr.host) module defaults group sets it, O(state_dir) and O(twinsite_cli) for every
        host-side module of a play at once (the collection's playbooks take them from the agent role's
        C(twinsite_agent_config_dir), C(twinsite_agent_state_dir) and C(twinsite_agent_install_dir)).
    type: path
    default: /etc/twinsite/scenarios
  state_dir:
    description: The host's state directory.
    type: path
    default: /var/lib/twinsite
"""

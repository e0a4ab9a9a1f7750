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
    type: path
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
    description: The host's scenario directory.
    type: path
    default: /etc/twinsite/scenarios
  state_dir:
    description: The host's state directory.
    type: path
    default: /var/lib/twinsite
"""

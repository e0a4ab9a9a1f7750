# Copyright: twinsite contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Dependency check for controller-side modules, which import the twinsite library itself."""

from __future__ import annotations

import traceback

from ansible.module_utils.basic import missing_required_lib

REQUIREMENT = "twinsite>=0.1"

try:
    import twinsite  # noqa: F401  # pylint: disable=unused-import
except ImportError:
    HAS_TWINSITE = False
    TWINSITE_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_TWINSITE = True
    TWINSITE_IMPORT_ERROR = None


def check_library(module):
    """Fail the module clearly when the twinsite library cannot be imported on the controller."""
    if not HAS_TWINSITE:
        module.fail_json(msg=missing_required_lib(REQUIREMENT), exception=TWINSITE_IMPORT_ERROR)

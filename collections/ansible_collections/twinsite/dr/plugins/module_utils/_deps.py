# Copyright: twinsite contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Dependency check for controller-side modules, which import the twinsite library itself: it must be there
(missing_required_lib), and speak the JSON API this collection understands (the same contract the host-side
modules check on the CLI's answers); a part of it that cannot be imported is a clear failure too."""

from __future__ import annotations

import traceback

from ansible.module_utils.basic import missing_required_lib
from ansible_collections.twinsite.dr.plugins.module_utils._cli import SUPPORTED_API

REQUIREMENT = "twinsite (of this collection's version: see its requirements.txt)"

try:
    import twinsite
except ImportError:
    HAS_TWINSITE = False
    TWINSITE_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_TWINSITE = True
    TWINSITE_IMPORT_ERROR = None


def check_library(module):
    """Fail the module clearly when the twinsite library cannot be imported on the controller, or speaks
    another JSON API than this collection."""
    if not HAS_TWINSITE:
        module.fail_json(msg=missing_required_lib(REQUIREMENT), exception=TWINSITE_IMPORT_ERROR)
    api = getattr(twinsite, "JSON_API", None)
    if api not in SUPPORTED_API:
        module.fail_json(
            msg="the twinsite library on the controller (version %s) speaks JSON api %r; this collection "
            "understands %s: install the library of the collection's version (its requirements.txt)"
            % (getattr(twinsite, "__version__", "unknown"), api, list(SUPPORTED_API))
        )


def import_failure(exc):
    """fail_json's arguments for an ImportError raised inside the library (a part of it missing, or a library
    of another version)."""
    return dict(
        msg="the twinsite library on the controller (version %s) is incomplete or of another version than "
        "this collection: %s; install the library of the collection's version (its requirements.txt)"
        % (getattr(twinsite, "__version__", "unknown") if HAS_TWINSITE else "none", exc),
        exception=traceback.format_exc(),
    )

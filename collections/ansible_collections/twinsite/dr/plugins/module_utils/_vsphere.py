# Copyright: twinsite contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side vSphere modules: the shared vCenter options, the library check, the one error translation.

The modules import the twinsite library on the controller (it talks to vCenter with pyVmomi); helpers
here take plain values and return plain values.
"""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule, env_fallback
from ansible_collections.twinsite.dr.plugins.module_utils._base import exit_with
from ansible_collections.twinsite.dr.plugins.module_utils._deps import check_library, import_failure


def vcenter_argument_spec():
    """How to reach vCenter (documented by the twinsite.dr.vcenter doc fragment)."""
    return dict(
        hostname=dict(type="str", fallback=(env_fallback, ["TWINSITE_VCENTER_HOSTNAME"])),
        port=dict(type="int", default=443, fallback=(env_fallback, ["TWINSITE_VCENTER_PORT"])),
        username=dict(type="str", aliases=["user"], fallback=(env_fallback, ["TWINSITE_VCENTER_USERNAME"])),
        password=dict(
            type="str", aliases=["pass", "pwd"], no_log=True, fallback=(env_fallback, ["TWINSITE_VCENTER_PASSWORD"])
        ),
        validate_certs=dict(type="bool", default=True, fallback=(env_fallback, ["TWINSITE_VCENTER_VALIDATE_CERTS"])),
        ca_file=dict(type="path", fallback=(env_fallback, ["TWINSITE_VCENTER_CA_FILE"])),
        timeout=dict(type="float", default=30.0, fallback=(env_fallback, ["TWINSITE_VCENTER_TIMEOUT"])),
    )


def credentials(params):
    """The library's Credentials from the module's parameters."""
    from twinsite.vsphere.connection import Credentials

    return Credentials(
        hostname=params["hostname"] or "",
        username=params["username"] or "",
        password=params["password"] or "",
        port=params["port"],
        validate_certs=params["validate_certs"],
        ca_file=params["ca_file"],
        timeout=params["timeout"],
    )


class VSphereModule(AnsibleModule):
    """AnsibleModule with the vCenter options, a check that the library is there, and error translation."""

    def __init__(self, argument_spec, vcenter=True, **kwargs):
        spec = vcenter_argument_spec() if vcenter else {}
        spec.update(argument_spec)
        super().__init__(argument_spec=spec, **kwargs)
        check_library(self)

    def session(self):
        """A context manager: a logged-in vCenter session."""
        from twinsite.vsphere.connection import connect

        return connect(credentials(self.params))

    def run(self, logic):
        """Call ``logic(self)`` and exit with its result; a twinsite error becomes fail_json with its details,
        and a part of the library that cannot be imported a clear failure (not a traceback)."""
        try:
            from twinsite.errors import TwinsiteError

            exit_with(self, logic, TwinsiteError, lambda exc: dict(msg=str(exc), error=exc.to_json()))
        except ImportError as exc:
            self.fail_json(**import_failure(exc))

    def with_diff(self, result, before, after):
        """Add before/after to ``result`` when diff mode is on."""
        if self._diff:
            result["diff"] = dict(before=before, after=after)
        return result

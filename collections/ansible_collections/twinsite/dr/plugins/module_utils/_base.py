# Copyright: twinsite contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The module base: the shared argument spec, and the one place that turns twinsite errors into fail_json."""

from __future__ import annotations

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.twinsite.dr.plugins.module_utils._cli import TwinsiteError, candidate_dirs, run_json


def cli_argument_spec():
    """Options every host-side module takes (documented by the twinsite.dr.cli doc fragment)."""
    return dict(twinsite_cli=dict(type="path"), asked_by=dict(type="str"))


def dirs_argument_spec():
    """config_dir and state_dir (documented by the twinsite.dr.cli.dirs doc fragment)."""
    return dict(
        config_dir=dict(type="path", default="/etc/twinsite/scenarios"),
        state_dir=dict(type="path", default="/var/lib/twinsite"),
    )


def dirs_args(params):
    """The CLI options that point it at the host's scenarios and state."""
    return ["--config-dir", params["config_dir"], "--state-dir", params["state_dir"]]


def alert_secrets(definition):
    """The secret values of a scenario declaration (an alert webhook's URL, its headers' values), for Ansible to
    mask wherever they would be shown (the module's arguments included). The library redacts its own answers
    (twinsite.config.secrets, which finds the same values: tests/unit/test_secrets.py)."""
    found = []
    alerts = definition.get("alerts") if isinstance(definition, dict) else None
    for hook in alerts if isinstance(alerts, list) else []:
        if not isinstance(hook, dict) or hook.get("type") != "webhook":
            continue
        if isinstance(hook.get("url"), str):
            found.append(hook["url"])
        if isinstance(hook.get("headers"), dict):
            found.extend(str(v) for v in hook["headers"].values())
    return [s for s in found if s]


def exit_with(module, logic, error_type, failure):
    """The one place a module ends: ``logic(module)``'s result, or fail_json with ``failure(exc)`` for an
    ``error_type`` it raised (called outside the handler: the message is the whole story, no traceback)."""
    try:
        result = logic(module)
    except error_type as exc:
        result = exc
    if isinstance(result, error_type):
        module.fail_json(**failure(result))
    module.exit_json(**result)


class TwinsiteModule(AnsibleModule):
    """AnsibleModule plus the twinsite CLI runner and error translation."""

    def __init__(self, argument_spec, **kwargs):
        spec = cli_argument_spec()
        spec.update(argument_spec)
        super().__init__(argument_spec=spec, **kwargs)

    def find_cli(self):
        """The twinsite CLI on this host, or None where it is not installed (yet)."""
        explicit = self.params.get("twinsite_cli")
        if explicit:
            return explicit if os.path.isfile(explicit) and os.access(explicit, os.X_OK) else None
        return self.get_bin_path("twinsite", required=False, opt_dirs=candidate_dirs())

    def cli_path(self):
        found = self.find_cli()
        if found:
            return found
        explicit = self.params.get("twinsite_cli")
        if explicit:
            self.fail_json(msg="twinsite_cli=%s is not an executable file on this host" % explicit)
        return self.fail_json(
            msg="the twinsite CLI was not found on this host (looked in PATH and %s)" % ", ".join(candidate_dirs()),
            hint="install it with the twinsite.dr.agent role, or set twinsite_cli",
        )

    def twinsite(self, args, environ_update=None, data=None):
        """Run one twinsite CLI command with --json and return its result."""
        env = dict(environ_update or {})
        if self.params.get("asked_by"):
            env["TWINSITE_ASKED_BY"] = self.params["asked_by"]  # (who asked, in what a change records: twinsite.audit)
        return run_json(self.run_command, self.cli_path(), args, environ_update=env, data=data)

    def run(self, logic):
        """Call ``logic(self)`` and exit with its result; a TwinsiteError becomes fail_json."""
        exit_with(self, logic, TwinsiteError, lambda exc: dict(msg=exc.message, error=exc.details))

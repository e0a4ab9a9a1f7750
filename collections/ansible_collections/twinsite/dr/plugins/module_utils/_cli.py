# Copyright: twinsite contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Call the target host's ``twinsite`` CLI with ``--json`` and read its versioned contract.

Private to the collection. Helpers take plain values (a run_command callable, a path), never the module.
"""

from __future__ import annotations

import json
import os
import sys

#: The JSON contract major versions this collection understands (twinsite.JSON_API).
SUPPORTED_API = (1,)
#: Where the agent role installs twinsite on a host.
INSTALL_BIN = "/opt/twinsite/bin"


class TwinsiteError(Exception):
    """A twinsite failure, carrying the CLI's structured error (type, message, where, hint) when there is one."""

    def __init__(self, message, details=None):
        super().__init__(message)
        self.message = message
        self.details = details or {}


def candidate_dirs():
    """Directories searched for ``twinsite`` besides PATH: the agent role's install, then our own interpreter's."""
    return [INSTALL_BIN, os.path.dirname(sys.executable)]


def parse_answer(stdout, rc, stderr, command):
    """Turn the CLI's output into its ``result``, or raise TwinsiteError with the CLI's own words."""
    lines = [line for line in (stdout or "").splitlines() if line.strip()]
    if not lines:
        raise TwinsiteError(
            "twinsite %s printed no JSON (exit code %s): %s" % (command, rc, (stderr or "").strip()[-2000:])
        )
    try:
        body = json.loads(lines[-1])
    except ValueError as exc:
        raise TwinsiteError("twinsite %s printed something that is not JSON: %s" % (command, lines[-1][:500])) from exc
    if not isinstance(body, dict) or body.get("api") not in SUPPORTED_API:
        raise TwinsiteError(
            "twinsite %s speaks JSON api %r; this collection understands %s: install matching versions"
            % (command, body.get("api") if isinstance(body, dict) else None, list(SUPPORTED_API))
        )
    if not body.get("ok"):
        err = body.get("error") or {}
        msg = err.get("message") or "failed"
        if err.get("where"):
            msg = "%s: %s" % (err["where"], msg)
        if err.get("hint"):
            msg = "%s (what to do: %s)" % (msg, err["hint"])
        raise TwinsiteError("twinsite %s: %s" % (command, msg), details=err)
    return body.get("result")


def run_json(run_command, cli, args, environ_update=None, data=None):
    """Run ``cli args --json`` through ``run_command`` (AnsibleModule.run_command) and return its result.

    ``data`` is written to the command's standard input (definitions travel there, never in argv).
    """
    command = " ".join(args)
    rc, out, err = run_command([cli, *args, "--json"], environ_update=environ_update or {}, data=data)
    return parse_answer(out, rc, err, command)

"""Who changed what: an ``change`` event in the host's event log (state.events) for every command that changes
something (a switchover, switch-back or rejoin, a rewind, a bookmark, a test, a scenario declared, changed,
stopped or removed), done or failed, with who asked and from where.

Who asked is what the host can tell, and what the controller said:

* ``user``: the user the command ran as; ``sudo_user``: the user who became it (sudo's ``SUDO_USER``);
* ``from``: the SSH client's address (``SSH_CONNECTION``), None for a command run on the host itself;
* ``asked_by``: ``TWINSITE_ASKED_BY``, set by the collection's modules (their ``asked_by`` option, which every
  playbook fills with the controller's user and host) and by the controller's CLI when it runs a command on a
  host (plans.hosts); None when nobody said;
* ``automatic``: set for what the agent started by itself (an automatic switchover, a scheduled test).
"""

from __future__ import annotations

import os
import pwd
import time
from pathlib import Path
from typing import Any

from twinsite.clock import iso
from twinsite.state import events
from twinsite.state.layout import HostState
from twinsite.state.role import this_host

ENV = "TWINSITE_ASKED_BY"


def who(*, automatic: bool = False) -> dict[str, Any]:
    """Who is asking this process, as far as it can tell (see the module's doc)."""
    ssh = os.environ.get("SSH_CONNECTION", "").split()
    return {
        "user": pwd.getpwuid(os.geteuid()).pw_name,
        "sudo_user": os.environ.get("SUDO_USER") or None,
        "from": ssh[0] if ssh else None,
        "asked_by": os.environ.get(ENV) or None,
        "automatic": automatic,
    }


def asked_by() -> str:
    """What a controller's command passes on to the hosts it runs commands on: its user and host."""
    return os.environ.get(ENV) or f"{pwd.getpwuid(os.geteuid()).pw_name}@{this_host()}"


def describe(w: dict[str, Any] | None) -> str:
    """``alice@ctl1 (as root from 10.0.0.5)``; ``the agent on dr1 (automatic)``."""
    if not w:
        return "unknown"
    if w.get("automatic"):
        return f"the agent on {w.get('host') or 'its host'} (automatic)"
    user = w.get("user") or "?"
    if w.get("sudo_user"):
        user = f"{w['sudo_user']} via sudo as {user}"
    where = f"from {w['from']}" if w.get("from") else "on the host"
    return f"{w['asked_by']} ({user} {where})" if w.get("asked_by") else f"{user} {where}"


def record(
    state_dir: Path,
    *,
    scenario: str | None,
    action: str,
    outcome: str,
    ref: str | None = None,
    automatic: bool = False,
    now: float | None = None,
) -> dict[str, Any]:
    """Append the change to the host's event log (where the host has a state directory); the event."""
    event = {
        "event": "change",
        "at": iso(time.time() if now is None else now),
        "scenario": scenario,
        "action": action,
        "outcome": outcome,
        "ref": ref,
        "host": this_host(),
        "who": who(automatic=automatic) | {"host": this_host()},
    }
    if Path(state_dir).is_dir():  # (a command pointed at the wrong place makes no state directory)
        events.append(HostState(state_dir).events, event)
    return event

"""The sequences: a switchover, a switch-back, a rejoin, as lists of steps for the runner (ops.runner).

Switchover (``twinsite switchover SCENARIO`` on a standby): preflight (switchover.preflight), the hand-over
(switchover.handover: stop the application on the old active host, drain, demote or fence, promote,
bookmark), the users' side (switchover.users: start and check the application, redirect, verify from the users'
hosts), then reverse the roles. Switch-back (``twinsite switchback SCENARIO`` on the old host, once it is back)
first makes this host a standby of the active one (switchover.switchback), then runs the switchover, planned,
in the other direction. ``twinsite rejoin`` runs only those first steps.
"""

from __future__ import annotations

from collections.abc import Callable

from twinsite.ops.runner import Context, Result, Step, bind
from twinsite.ops.site import Site
from twinsite.switchover import handover, switchback, users
from twinsite.switchover.preflight import preflight

Table = tuple[tuple[str, str, Callable[[Site, Context], Result]], ...]

SWITCHOVER: Table = (
    ("preflight", "check the request, the replica and the redirect; is the active host reachable?", preflight),
    ("stop-application", "planned: stop the application on the active host", handover.stop_application),
    ("drain", "planned: wait until every change is applied here; prove it by equal tree digests", handover.drain),
    ("demote", "planned: the old active host's role names this host (it becomes a standby)", handover.demote),
    ("fence", "unplanned: power off / fence the old active host (switchover.fence)", handover.fence),
    ("promote", "this host becomes active at the next epoch; replication into it stops", handover.promote),
    ("bookmark", "with CDP: name the point the application starts from", handover.bookmark),
    ("start-application", "start the application here", users.start_application),
    ("check-application", "run its checks until they pass", users.check_application),
    ("redirect", "move the users: DNS, service address, script", users.redirect_users),
    ("verify-users", "from the users' hosts: the name resolves here, the application answers", users.verify_users),
    ("reverse-roles", "the old active host replicates from here (or rejoins later)", handover.reverse_roles),
)

SWITCHBACK_FIRST: Table = (
    ("find-active", "ask every host of the scenario which one is active (the highest epoch)", switchback.find_active),
    ("stop-local", "stop the application here and release its service addresses", switchback.stop_local),
    ("set-aside", "copy aside what differs here from the active host (divergent changes)", switchback.set_aside),
    ("become-standby", "this host's role: a standby of the active one", switchback.become_standby),
    ("resync", "wait until the active host has brought this one up to date (by delta)", switchback.resync),
)


def steps(site: Site, kind: str) -> list[Step]:
    """switchover; switchback (rejoin, then switchover); rejoin (only become a standby of the active host)."""
    table = {"switchover": SWITCHOVER, "switchback": SWITCHBACK_FIRST + SWITCHOVER, "rejoin": SWITCHBACK_FIRST}
    return bind(site, table[kind])

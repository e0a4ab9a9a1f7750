"""The users' side: the application starts here, passes its checks, and users are moved to it and verified.

start-application  here, by its plugin
check-application  its checks pass (retried while it comes up)
redirect           users are moved (DNS, service address, script)
verify-users       from the users' hosts: the names resolve here and the application answers
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from twinsite import apps
from twinsite.errors import SwitchoverError
from twinsite.ops.runner import Context, Result, Skipped
from twinsite.ops.site import Site
from twinsite.proc import wait_until
from twinsite.redirect import methods as redirect
from twinsite.switchover.preflight import Preflight
from twinsite.transport.remote import run_on


@dataclass(frozen=True)
class AppStarted(Result):
    host: str
    changed: bool


@dataclass(frozen=True)
class AppChecked(Result):
    checks: list[dict[str, Any]]
    quick: bool


@dataclass(frozen=True)
class Redirected(Result):
    methods: list[dict[str, Any]]


@dataclass(frozen=True)
class NotRedirected(Result):
    methods: list[dict[str, Any]] = field(default_factory=list)
    note: str = "no redirect configured: users must be moved by other means"


@dataclass(frozen=True)
class UsersVerified(Result):
    port: int | None
    probes: list[dict[str, Any]]


def start_application(site: Site, ctx: Context) -> AppStarted:
    app = site.app()
    was = app.running()
    app.start()
    return AppStarted(host=site.host, changed=not was)


def check_application(site: Site, ctx: Context) -> AppChecked:
    """The application's checks pass here (retried while it comes up, up to its start timeout)."""
    timeout, quick = float(site.s.application_settings.get("start_timeout", 60)), site.s.switchover.checks == "quick"
    ok, results = apps.wait_healthy(site.app(), quick=quick, timeout=timeout)
    if not ok:
        failed = "; ".join(f"{r.name}: {r.output[-200:]}" for r in results if not r.ok)
        raise SwitchoverError(
            f"the application does not pass its checks on {site.host}: {failed}",
            hint=f"users were not redirected. Look at it (twinsite app {site.s.name} check), fix it, run again; "
            f"or rewind to bookmark switchover-{ctx.run_id} if the data is damaged",
        )
    return AppChecked(checks=[r.to_dict() for r in results], quick=quick)


def redirect_users(site: Site, ctx: Context) -> Redirected | NotRedirected:
    pre = ctx.get(Preflight)
    if not site.s.redirect:
        return NotRedirected()
    # planned: the old host answered a moment ago (demote); the address move, which needs it, looks again
    moves_address = any(m["type"] == "ip" for m in site.s.redirect)
    old_reachable = pre.planned and (not moves_address or site.answers(pre.old_active))
    move = redirect.Move(site.s.name, site.host, pre.old_active, old_reachable, site.s.replication, site.plugins)
    return Redirected(methods=redirect.apply(site.s.redirect, move))


def verify_users(site: Site, ctx: Context) -> UsersVerified | Skipped:
    """From each users' host: every redirected name resolves to this host, and the application answers."""
    so = site.s.switchover
    if not so.verify_from:
        return Skipped("no users' host to verify from (switchover.verify.from)")
    port = so.verify_port or site.app().port
    wanted = redirect.expectations(site.s.redirect, site.host) or [(site.host, None)]
    deadline = time.monotonic() + so.verify_timeout
    seen: list[dict[str, Any]] = []
    for user in so.verify_from:
        for target, expected in wanted:
            got: dict[str, Any] = {}

            def reached(
                user: str = user, target: str = target, expected: str | None = expected, got: dict[str, Any] = got
            ) -> bool:
                got.update(probe(site, user, target, port))
                return got["connected"] is not False and (expected is None or got["address"] == expected)

            ok = wait_until(reached, timeout=max(0.0, deadline - time.monotonic()), interval=0.5)
            seen.append({"from": user, "target": target, "expected": expected, **got, "ok": ok})
            if not ok:
                raise SwitchoverError(
                    f"from {user}, {target} resolves to {got['address'] or 'nothing'}"
                    + (f" (expected {expected})" if expected else "")
                    + ("" if got["connected"] is not False else f" and port {port} does not answer")
                    + f": {got['detail']}",
                    where=user,
                    hint="the application runs here; users are not there yet. Check the redirect (DNS caches, "
                    "the service address) and run again",
                )
    return UsersVerified(port=port, probes=seen)


PROBE = """a=$(getent ahostsv4 "$1" | awk 'NR==1 {print $1}'); echo "address=$a"
if [ -n "$2" ] && [ -n "$a" ]; then
  if timeout 5 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$a" "$2" 2>/dev/null
  then echo connected=yes; else echo connected=no; fi
fi"""


def probe(site: Site, user: str, target: str, port: int | None) -> dict[str, Any]:
    """From the users' host ``user``: what ``target`` resolves to, and whether ``port`` answers there."""
    a = run_on(
        site.s.replication,
        user,
        ["sh", "-c", PROBE, "probe", target, str(port or "")],
        timeout=20,
        control_dir=site.ssh_dir,
    )
    if not a.reached:
        return {"address": None, "connected": False, "detail": f"{user} does not answer: {a.err.strip()[-200:]}"}
    vals = dict(line.split("=", 1) for line in a.out.splitlines() if "=" in line)
    connected = None if port is None else vals.get("connected") == "yes"
    return {"address": vals.get("address") or None, "connected": connected, "detail": a.err.strip()[-200:]}

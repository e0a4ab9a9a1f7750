"""The steps of a switchover and of a switch-back, run on the host that becomes active.

Switchover (``twinsite switchover SCENARIO`` on a standby):

    preflight          the old active host answers (planned) or not (unplanned: allowed with --unplanned,
                       or automatically with a second opinion); the replica is usable (a rewound one only
                       with --rewound, unplanned); the redirect can run
    stop-application   planned: the application stops on the old active host (its last writes replicate)
    drain              planned: every change is applied here, proved by equal tree digests (zero loss)
    demote             planned: the old active host's role names this host at the next epoch, so its
                       agent stops sending and becomes a standby
    fence              unplanned: the old host is powered off (vSphere) or fenced by a site script
    promote            this host's role: active at the next epoch (replication into it stops at a batch
                       boundary); unplanned: the data-loss window is measured here
    bookmark           with CDP: the point the application starts from, by name
    start-application  here, by its plugin
    check-application  its checks pass (retried while it comes up)
    redirect           users are moved (DNS, service address, script)
    verify-users       from the users' hosts: the names resolve here and the application answers
    reverse-roles      the old host replicates from here (planned), or is told to rejoin (unplanned)

Switch-back (``twinsite switchback SCENARIO`` on the old host, once it is back) first makes this host a
standby of the active one (``find-active``, ``stop-local``, ``set-aside``: what differs from the active
host is copied aside and reported, never merged; ``become-standby``; ``resync``: by delta), then runs the
switchover steps above, planned, in the other direction. ``twinsite rejoin`` runs only those first steps.

Every step is idempotent: run again after a crash inside it, it finds what is done and does the rest.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from twinsite import apps
from twinsite.alerts import Alert
from twinsite.alerts.dispatch import Alerter, channels_from
from twinsite.apply.applier import Position
from twinsite.apps.checks import run as run_script
from twinsite.apps.checks import site_script
from twinsite.cdp import bookmarks
from twinsite.cdp.rewind import apply_lock, read_position, settle
from twinsite.clock import iso
from twinsite.config.scenario import Scenario, parse_duration
from twinsite.durable import write_json
from twinsite.engine import agent
from twinsite.errors import ConfigError, HostUnreachableError
from twinsite.journal.segments import Journal
from twinsite.redirect import methods as redirect
from twinsite.roles import Role, advanced, current, members, store
from twinsite.switchover import SwitchoverError
from twinsite.switchover.runner import Step
from twinsite.transport.remote import RemoteError, run_on, twinsite_on
from twinsite.tree import Entry, entries
from twinsite.verify import compare, remote_entries

Ctx = dict[str, Any]


@dataclass
class Site:
    """Where a switchover runs: the scenario, this host (the one that becomes active), its directories."""

    s: Scenario
    host: str
    state_dir: Path
    config_dir: Path
    plugins_dir: Path | None = None
    alerter: Alerter = field(init=False)

    def __post_init__(self) -> None:
        self.alerter = Alerter(self.state_dir, channels_from(self.s.alerts))

    @property
    def dir(self) -> Path:
        return self.state_dir / self.s.name

    @property
    def plugins(self) -> Path:
        return self.plugins_dir or Path(os.environ.get("TWINSITE_PLUGINS", str(apps.DEFAULT_PLUGINS_DIR)))

    def role(self) -> Role:
        return current(self.state_dir, self.s.name, self.s.master)

    def app(self) -> apps.Application:
        return apps.for_scenario(self.s, self.plugins_dir)

    def on(self, host: str, args: list[str], *, timeout: float = 120) -> dict[str, Any]:
        """``twinsite ARGS`` on another host of the scenario, pointed at the same directories."""
        where = ["--config-dir", str(self.config_dir)]
        return twinsite_on(self.s.replication, host, [*args, *where], timeout=timeout, control_dir=self.ssh_dir)

    def answers(self, host: str, timeout: float | None = None) -> bool:
        t = timeout or self.s.monitoring.timeout
        a = run_on(self.s.replication, host, ["true"], timeout=t, control_dir=self.ssh_dir)
        return a.reached and a.code == 0

    @property
    def ssh_dir(self) -> Path:
        return self.state_dir / "ssh"

    def positions(self) -> list[Position]:
        return [agent.applied_position(self.state_dir, self.s.name, i) for i in range(len(self.s.roots))]

    def recv(self, i: int) -> Path:
        return agent.receiver_state(self.state_dir, self.s.name, i)


# -- preflight ---------------------------------------------------------------------------------------------
def preflight(site: Site, ctx: Ctx) -> dict[str, Any]:
    s, role = site.s, site.role()
    if role.active == site.host:
        raise SwitchoverError(f"{site.host} is already the active host of {s.name}", hint="nothing to do")
    if site.host not in members(s.master, s.replicas):
        raise ConfigError(f"{site.host} is not a host of scenario {s.name}")
    old = role.active
    rewound = _rewound(site, ctx)
    site.app()  # the plugin loads (a wrong application definition fails here, before anything changes)
    redirect.check(s.redirect, site.plugins)
    # (an automatic switchover comes from a monitor that has just missed the host several times: a short look)
    reachable = site.answers(old, min(1.0, s.monitoring.timeout) if ctx.get("automatic") else None)
    monitor = _monitor_view(site)
    result: dict[str, Any] = {
        "old_active": old,
        "new_active": site.host,
        "epoch": role.epoch + 1,
        "mode": "planned" if reachable else "unplanned",
        "replication_last_seen": monitor.get("replication"),
        "rewound": rewound,
    }
    if reachable and rewound:
        raise SwitchoverError(
            f"a planned switchover takes every change of {old}, and this replica is rewound to before some of them",
            where=old,
            hint=f"to recover from the corruption on {old}: stop or fence {old} (it must not serve users), then "
            "switch over with --unplanned --rewound; or resume the replica and switch over planned",
        )
    if reachable:
        result["failure_at"] = None
        return result
    if not (ctx.get("unplanned") or ctx.get("automatic")):
        last = max((p.ts for p in site.positions()), default=0.0)
        raise SwitchoverError(
            f"{old} does not answer: this would be an unplanned switchover, which loses the changes not yet "
            f"replicated here (the last one applied was made at {iso(last) or 'an unknown time'})",
            where=old,
            hint=f"make sure {old} is down (or fenced) and cannot come back as a second active host, then run "
            "again with --unplanned",
        )
    seen = monitor.get("replication") or ""
    if seen.startswith("syncing") and not ctx.get("force"):
        raise SwitchoverError(
            f"the replica of {s.name} was last seen still in its initial sync: it may not hold a usable copy",
            hint="run again with --force to switch over to it anyway",
        )
    if ctx.get("second_opinion") == "fence" and not s.switchover.fence:
        raise SwitchoverError("no fence is configured (switchover.fence), and no witness agreed", where=old)
    result["failure_at"] = monitor.get("unreachable_since") or time.time()
    return result


def _rewound(site: Site, ctx: Ctx) -> list[dict[str, Any]]:
    """The roots whose replica is rewound (refused unless the switchover is to the rewound data, and then
    only at a point: not in the middle of a move, nor with a test's spool that holds newer changes)."""
    from twinsite.recovery.spool import Spool

    found = []
    for i, root in enumerate(site.s.roots):
        pos = read_position(site.recv(i) / "rewind")
        if pos is None:
            continue
        if not ctx.get("rewound"):
            raise SwitchoverError(
                f"the replica of {root.path} is rewound to seq {pos.at}: it is not the latest data",
                hint=f"`twinsite rewind {site.s.name} --resume` first, or switch over to the rewound data with "
                f"--rewound (recovery from a corruption: what was applied after seq {pos.at} is left behind)",
            )
        if pos.sub != 0 or pos.target != pos.at:
            raise SwitchoverError(
                f"the rewind of {root.path} to seq {pos.target} is unfinished (at seq {pos.at})",
                hint="run the same `twinsite rewind` again to finish it, then switch over",
            )
        if Spool(site.recv(i)).held():
            raise SwitchoverError(
                f"an assured-recovery test's spool of {root.path} holds changes newer than the rewound point",
                hint=f"`twinsite recover-test {site.s.name} --cleanup` first",
            )
        found.append({"root": root.path, "seq": pos.at, "head": pos.head})
    return found


def _same_rewind(site: Site, pre: dict[str, Any]) -> None:
    """Promote (under the apply locks) takes the data preflight saw: a rewind or resume made between them
    would switch over to other data than the report says. A point already settled counts as seen."""
    seen = {r["root"]: r for r in pre.get("rewound") or []}
    for i, root in enumerate(site.s.roots):
        pos, want = read_position(site.recv(i) / "rewind"), seen.get(root.path)
        if want is None and pos is None:
            continue
        if want is not None and pos is None:  # settled by an earlier run of this step?
            if agent.applied_position(site.state_dir, site.s.name, i).seq == want["seq"]:
                continue
        elif want is not None and pos is not None and (pos.at, pos.head) == (want["seq"], want["head"]):
            continue
        now = f"rewound to seq {pos.at}" if pos else "not rewound"
        back = f"--to {want['seq']}" if want else "--resume"
        raise SwitchoverError(
            f"the replica of {root.path} changed since this switchover started: it is {now} now, and was "
            + (f"rewound to seq {want['seq']}" if want else "not rewound"),
            hint=f"nothing was switched here: put it back as it was (`twinsite rewind {site.s.name} {back}`), "
            "then run the switchover again",
        )


def _monitor_view(site: Site) -> dict[str, Any]:
    """What this host's monitor last knew: since when the active host is unreachable, replication's state."""
    try:
        data = json.loads((site.dir / "monitor.json").read_text())
    except (FileNotFoundError, ValueError):
        return {}
    cond = data.get("conditions", {})
    reach, repl = cond.get("reachable", {}), cond.get("replication", {})
    return {
        "unreachable_since": reach.get("since") if reach.get("ok") is False else None,
        "replication": repl.get("detail") if repl.get("ok") is not None else None,
    }


def _planned(ctx: Ctx) -> bool:
    return bool(ctx["preflight"]["mode"] == "planned")


# -- the old active host -------------------------------------------------------------------------------------
def stop_application(site: Site, ctx: Ctx) -> dict[str, Any]:
    old = ctx["preflight"]["old_active"]
    if not _planned(ctx):
        return {"skipped": f"{old} does not answer"}
    done = site.on(old, ["app", site.s.name, "stop"], timeout=_app_timeout(site, "stop_timeout"))
    return {"host": old, "changed": done.get("changed"), "running": done.get("running")}


def _app_timeout(site: Site, key: str) -> float:
    return float(site.s.application_settings.get(key, 60)) + 30


def drain(site: Site, ctx: Ctx) -> dict[str, Any]:
    """Until this host has applied every change of the old active host, proved by equal tree entries (the
    application there is stopped: equal trees mean nothing is left to come)."""
    s, old = site.s, ctx["preflight"]["old_active"]
    if not _planned(ctx):
        return {"skipped": f"{old} does not answer: the data-loss window is measured when promoting"}
    test = _end_test(site, "a planned switchover to this host")  # its spool is applied by the receiver
    deadline = time.monotonic() + s.switchover.drain_timeout
    rounds = 0
    while True:
        rounds += 1
        diffs = _differences(site, old)
        if not diffs:
            counted = sum(len(entries(Path(r.path), r.selects_bytes)) for r in s.roots)
            return {"rounds": rounds, "verified": True, "entries": counted, "ended_test": test}
        last = f"{len(diffs)} difference(s), first: {diffs[0]}"
        while time.monotonic() < deadline:  # wait until the old host says everything is acknowledged
            mine = [
                r
                for r in site.on(old, ["status"])["scenarios"]
                if r["scenario"] == s.name and r.get("replica") == site.host
            ]
            if mine and all(r.get("acked_seq") == r.get("planned_seq") for r in mine):
                break
            last = (
                "; ".join(
                    f"{r['root']}: {r.get('state')}, acked {r.get('acked_seq')} of {r.get('planned_seq')}" for r in mine
                )
                or f"{old} runs no replication to {site.host}"
            )
            time.sleep(0.2)
        if time.monotonic() > deadline:
            raise SwitchoverError(
                f"{site.host} did not catch up with {old} within {s.switchover.drain_timeout:g} s ({last})",
                hint=f"nothing was switched: the application is stopped on {old}; start it again there with "
                f"`twinsite app {s.name} start`, or find out why replication lags (twinsite status on {old})",
            )
        time.sleep(0.1)


def _differences(site: Site, host: str) -> list[str]:
    out = []
    for root in site.s.roots:
        _local, diffs = compare(site.s, root, host)
        out += [f"{root.path}/{os.fsdecode(p)}: {why}" for p, why in diffs]
    return out


def demote(site: Site, ctx: Ctx) -> dict[str, Any]:
    old = ctx["preflight"]["old_active"]
    if not _planned(ctx):
        return {"skipped": f"{old} does not answer: it is told at switch-back"}
    role = _tell(site, ctx, old)
    others = _tell_others(site, ctx)  # before this host starts sending: no standby refuses it
    return {
        "host": old,
        "active": role["active"],
        "epoch": role["epoch"],
        "changed": role.get("changed"),
        "standbys": others,
    }


def _tell(site: Site, ctx: Ctx, host: str) -> dict[str, Any]:
    """Record on ``host`` that this host is active at the new epoch."""
    epoch = str(ctx["preflight"]["epoch"])
    return site.on(host, ["role", site.s.name, "--set", site.host, "--epoch", epoch, "--run", ctx["run_id"]])


def _tell_others(site: Site, ctx: Ctx) -> dict[str, str]:
    """The other standbys learn the new active host (one that does not answer now learns at its switch-back)."""
    old = ctx["preflight"]["old_active"]
    told: dict[str, str] = {}
    for h in members(site.s.master, site.s.replicas):
        if h in (site.host, old):
            continue
        try:
            _tell(site, ctx, h)
            told[h] = "told"
        except (HostUnreachableError, RemoteError) as exc:
            told[h] = f"not told ({exc.message}): run `twinsite switchback {site.s.name}` there to rejoin"
    return told


def fence(site: Site, ctx: Ctx) -> dict[str, Any]:
    old, spec = ctx["preflight"]["old_active"], site.s.switchover.fence
    if _planned(ctx):
        return {"skipped": f"{old} stopped its application and handed over: nothing to fence"}
    if not spec:
        why = "automatic switchover: a witness agreed" if ctx.get("automatic") else "the operator ran --unplanned"
        return {"skipped": f"no fence configured ({why})"}
    record = site.dir / "fence.jsonl"
    if spec["type"] == "vsphere":
        vm = dict(spec["vms"]).get(old)
        if vm is None:
            raise SwitchoverError(f"switchover.fence.vms names no VM for {old}", hint=f"add {old}: VM-NAME")
        return _fence_vsphere(spec, vm, record)
    path = site_script(site.plugins, "fence", spec["name"])
    env = dict(os.environ, TWINSITE_SCENARIO=site.s.name, TWINSITE_FENCE_HOST=old)
    code, out = run_script(
        [str(path), *map(str, spec.get("args", []))],
        timeout=parse_duration(spec.get("timeout", 60)),
        what=f"fence {spec['name']}",
        env=env,
    )
    if code != 0:
        raise SwitchoverError(
            f"fence script {spec['name']} failed (exit {code}): {out.strip()[-500:]}",
            where=old,
            hint=f"make sure {old} is down some other way, then run again",
        )
    return {"script": spec["name"], "fenced": True, "output": out.strip()[-500:]}


def _fence_vsphere(spec: dict[str, Any], vm: str, record: Path) -> dict[str, Any]:
    from twinsite.vsphere.connection import Credentials, connect
    from twinsite.vsphere.fence import fence as power_off

    with connect(Credentials.from_settings(spec)) as session:
        return power_off(session, vm, datacenter=spec.get("datacenter"), record=record)


# -- this host ---------------------------------------------------------------------------------------------
def promote(site: Site, ctx: Ctx) -> dict[str, Any]:
    """Active here at the next epoch: each root's apply lock is held while the role is written, so a batch
    in progress ends first and none follows (the receiver checks the role before each)."""
    pre = ctx["preflight"]
    role = site.role()
    changed = not (role.active == site.host and role.epoch == pre["epoch"])
    test = _end_test(site, "a switchover to this host")
    from twinsite.receiver import apply_here
    from twinsite.recovery.spool import Spool

    for i, root in enumerate(site.s.roots):  # what an assured-recovery test's spool held was acknowledged
        if Spool(site.recv(i)).held() and read_position(site.recv(i) / "rewind") is None:
            apply_here(Path(root.path), site.recv(i), asdict(site.s.cdp))
    if changed or pre.get("rewound"):
        _take_over(site, ctx, role, changed)
    positions = site.positions()
    result: dict[str, Any] = {
        "epoch": pre["epoch"],
        "changed": changed,
        "ended_test": test,
        "rewound": pre.get("rewound") or None,
        "positions": [
            {"root": r.path, "seq": p.seq, "ts": p.ts or None, "time": iso(p.ts)}
            for r, p in zip(site.s.roots, positions, strict=True)
        ],
    }
    if _planned(ctx):
        result["rpo_seconds"] = 0.0
        return result
    result["standbys"] = _tell_others(site, ctx)
    last = min((p.ts for p in positions), default=0.0)
    heard = [_heard(site.recv(i)) for i in range(len(site.s.roots))]
    noticed = float(pre["failure_at"])
    # the old host failed after it was last heard (it streamed changes or keep-alives until then) and
    # before the monitor missed it; without either, when this switchover noticed
    failure = min(max(*heard, last), noticed) if all(heard) else noticed
    if pre.get("rewound"):  # a rewound replica refused the old host from the rewind on: it was not heard
        failure = noticed
    result["last_applied_at"] = last or None
    result["last_heard_at"] = max(heard) if all(heard) else None
    result["failure_noticed_at"] = noticed
    result["failure_at"] = failure
    result["rpo_seconds"] = round(max(0.0, failure - last), 3) if last else None
    return result


def _take_over(site: Site, ctx: Ctx, role: Role, changed: bool) -> None:
    """Under every root's apply lock: the rewound point (if preflight allowed one) becomes the live data,
    then the role names this host."""
    pre = ctx["preflight"]
    locks = [apply_lock(site.recv(i)) for i in range(len(site.s.roots))]
    for i, lock in enumerate(locks):
        site.recv(i).mkdir(parents=True, exist_ok=True)
        lock.__enter__()
    try:
        if changed:
            _same_rewind(site, pre)
        for i in range(len(site.s.roots)):
            if pre.get("rewound"):
                settle(site.recv(i) / "rewind")
        if changed:
            store(site.state_dir, advanced(role, site.host, ctx["run_id"]))
    finally:
        for lock in reversed(locks):
            lock.__exit__(None, None, None)


def _end_test(site: Site, why: str) -> dict[str, Any] | None:
    """An assured-recovery test running here ends first: the replica must be the replica again."""
    from twinsite.recovery.steps import Test, end

    return end(Test(site), why)


def _heard(recv: Path) -> float:
    """When the receiver last heard its sender (0.0: never, or not recorded)."""
    try:
        return float((recv / "heard").read_text())
    except (FileNotFoundError, ValueError):
        return 0.0


def bookmark(site: Site, ctx: Ctx) -> dict[str, Any]:
    if not site.s.cdp.enabled:
        return {"bookmark": None, "note": "cdp is off: no rewind point is kept"}
    name = f"switchover-{ctx['run_id']}"
    marks = []
    for i, p in enumerate(site.positions()):
        created, mark = bookmarks.add(site.recv(i), name, p.seq, p.ts)
        marks.append({"root": site.s.roots[i].path, "seq": mark["seq"], "created": created})
    return {"bookmark": name, "roots": marks}


def start_application(site: Site, ctx: Ctx) -> dict[str, Any]:
    app = site.app()
    was = app.running()
    app.start()
    return {"host": site.host, "changed": not was}


def check_application(site: Site, ctx: Ctx) -> dict[str, Any]:
    """The application's checks pass here (retried while it comes up, up to its start timeout)."""
    timeout, quick = float(site.s.application_settings.get("start_timeout", 60)), site.s.switchover.checks == "quick"
    ok, results = apps.wait_healthy(site.app(), quick=quick, timeout=timeout)
    checks = [r.to_dict() for r in results]
    if not ok:
        failed = "; ".join(f"{r.name}: {r.output[-200:]}" for r in results if not r.ok)
        raise SwitchoverError(
            f"the application does not pass its checks on {site.host}: {failed}",
            hint=f"users were not redirected. Look at it (twinsite app {site.s.name} check), fix it, run again; "
            f"or rewind to bookmark switchover-{ctx['run_id']} if the data is damaged",
        )
    return {"checks": checks, "quick": quick}


def redirect_users(site: Site, ctx: Ctx) -> dict[str, Any]:
    pre = ctx["preflight"]
    if not site.s.redirect:
        return {"methods": [], "note": "no redirect configured: users must be moved by other means"}
    # planned: the old host answered a moment ago (demote); the address move, which needs it, looks again
    moves_address = any(m["type"] == "ip" for m in site.s.redirect)
    old_reachable = _planned(ctx) and (not moves_address or site.answers(pre["old_active"]))
    move = redirect.Move(site.s.name, site.host, pre["old_active"], old_reachable, site.s.replication, site.plugins)
    return {"methods": redirect.apply(site.s.redirect, move)}


def verify_users(site: Site, ctx: Ctx) -> dict[str, Any]:
    """From each users' host: every redirected name resolves to this host, and the application answers."""
    so = site.s.switchover
    if not so.verify_from:
        return {"skipped": "no users' host to verify from (switchover.verify.from)"}
    port = so.verify_port or _app_port(site)
    wanted = redirect.expectations(site.s.redirect, site.host) or [(site.host, None)]
    deadline = time.monotonic() + so.verify_timeout
    seen: list[dict[str, Any]] = []
    for user in so.verify_from:
        for target, expected in wanted:
            while True:
                got = _probe(site, user, target, port)
                ok = got["connected"] is not False and (expected is None or got["address"] == expected)
                if ok or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
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
    return {"port": port, "probes": seen}


def _app_port(site: Site) -> int | None:
    if site.s.application == "postgresql":
        return int(site.s.application_settings.get("port", 5432))
    return None


PROBE = """a=$(getent ahostsv4 "$1" | awk 'NR==1 {print $1}'); echo "address=$a"
if [ -n "$2" ] && [ -n "$a" ]; then
  if timeout 5 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$a" "$2" 2>/dev/null
  then echo connected=yes; else echo connected=no; fi
fi"""


def _probe(site: Site, user: str, target: str, port: int | None) -> dict[str, Any]:
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


def reverse_roles(site: Site, ctx: Ctx) -> dict[str, Any]:
    pre = ctx["preflight"]
    old = pre["old_active"]
    if not _planned(ctx):
        return {
            "old_active": old,
            "note": f"{old} did not answer: once it is back, `twinsite switchback "
            f"{site.s.name}` on {old} sets its divergent changes aside and makes it a standby",
        }
    deadline = time.monotonic() + 30
    while True:  # this host's agent follows the role within seconds and replicates to the old host
        rows = _sender_rows(site, old)
        if rows and all(r.get("state") in ("syncing", "replicating") for r in rows):
            break
        if time.monotonic() > deadline:
            raise SwitchoverError(
                f"replication from {site.host} to {old} did not start: {rows or 'no sender'}",
                hint=f"is the agent running on {site.host}? (twinsite service status, twinsite status)",
            )
        time.sleep(0.3)
    return {"old_active": old, "now": "standby", "replication": [r["state"] for r in rows]}


def _sender_rows(site: Site, replica: str) -> list[dict[str, Any]]:
    rows = []
    for i in range(len(site.s.roots)):
        f = agent.sender_state(site.state_dir, site.s.name, i, replica) / "status.json"
        try:
            st = json.loads(f.read_text())
        except (FileNotFoundError, ValueError):
            continue
        if st.get("updated_at", 0) >= site.role().since - 1:
            rows.append(st)
    return rows


# -- switch-back: making this host a standby of the active one first -----------------------------------------
def active_now(site: Site) -> tuple[str, int, dict[str, Any]]:
    """The active host now, its epoch, and every host's view: the highest epoch any host knows wins."""
    s, mine = site.s, site.role()
    views: dict[str, Any] = {site.host: mine.to_json()}
    for h in members(s.master, s.replicas):
        if h == site.host:
            continue
        try:
            views[h] = site.on(h, ["role", s.name])
        except (HostUnreachableError, RemoteError) as exc:
            views[h] = {"error": exc.message}
    top = max((v for v in views.values() if "epoch" in v), key=lambda v: int(v["epoch"]))
    return str(top["active"]), int(top["epoch"]), views


def find_active(site: Site, ctx: Ctx) -> dict[str, Any]:
    active, epoch, views = active_now(site)
    if active == site.host:
        raise SwitchoverError(f"{site.host} is the active host of {site.s.name} (epoch {epoch})", hint="nothing to do")
    if not site.answers(active):
        raise SwitchoverError(
            f"the active host {active} does not answer",
            where=active,
            hint="a switch-back needs the active host; wait until it is reachable",
        )
    mine = site.role()
    rejoin = mine.active == site.host or mine.epoch != epoch
    return {
        "active": active,
        "epoch": epoch,
        "views": views,
        "rejoin": rejoin,
        "was_active_here": mine.active == site.host,
    }


def stop_local(site: Site, ctx: Ctx) -> dict[str, Any]:
    """This host's application stops (it may have kept running during a split) and gives up its addresses."""
    app = site.app()
    was = app.running()
    app.stop()
    return {"stopped": was, "released": redirect.release(site.s.redirect)}


def set_aside(site: Site, ctx: Ctx) -> dict[str, Any]:
    """Every path here that differs from the active host is copied aside before the resync replaces it."""
    fa = ctx["find-active"]
    if not fa["rejoin"]:
        return {"skipped": "already a standby of the active host"}
    dest = site.dir / "set-aside" / ctx["run_id"]
    manifest_file = dest / "manifest.json"
    if manifest_file.exists():  # done before a crash: the copy is complete (the manifest is written last)
        return json.loads(manifest_file.read_text())["summary"]  # type: ignore[no-any-return]
    shutil.rmtree(dest, ignore_errors=True)
    unshipped = _unshipped_paths(site, fa["active"])
    items: list[dict[str, Any]] = []
    for i, root in enumerate(site.s.roots):
        local = entries(Path(root.path), root.selects_bytes)
        remote = remote_entries(site.s, fa["active"], root)
        items += _copy_differences(Path(root.path), local, remote, dest / f"root-{i}", unshipped.get(i, set()))
    summary = {
        "directory": str(dest),
        "paths": len(items),
        "bytes": sum(x["size"] for x in items),
        "written_here_unreplicated": sorted({x["path"] for x in items if x["unreplicated"]}),
        "changed": bool(items),
    }
    manifest = {
        "scenario": site.s.name,
        "host": site.host,
        "active": fa["active"],
        "at": time.time(),
        "items": items,
        "summary": summary,
    }
    dest.mkdir(parents=True, exist_ok=True)
    write_json(manifest_file, manifest)
    if items:
        _alert_set_aside(site, fa["active"], summary)
    return summary


def _unshipped_paths(site: Site, active: str) -> dict[int, set[bytes]]:
    """Paths of the changes this host journaled but the standby never acknowledged (made during the split)."""
    out: dict[int, set[bytes]] = {}
    for i in range(len(site.s.roots)):
        jdir = agent.sender_state(site.state_dir, site.s.name, i, active) / "journal"
        if not jdir.is_dir():
            continue
        j = Journal(jdir, segment_size=site.s.journal.segment_size)
        paths: set[bytes] = set()
        try:
            reader = j.reader(j.first_seq())
            while chunk := reader.read():  # (streamed: the journal may hold up to its cap)
                paths.update(rec.path for rec, _raw in chunk)
        finally:
            j.close()
        out[i] = paths
    return out


def _copy_differences(
    base: Path, local: dict[bytes, Entry], remote: dict[bytes, Entry], dest: Path, unshipped: set[bytes]
) -> list[dict[str, Any]]:
    items = []
    for rel in sorted(set(local) | set(remote)):
        a, b = local.get(rel), remote.get(rel)
        if a == b:
            continue
        item: dict[str, Any] = {"path": os.fsdecode(rel), "unreplicated": rel in unshipped, "size": 0}
        if a is None:
            item["why"] = "only on the active host"
        else:
            item["why"] = "only here" if b is None else "differs"
            item["kind"] = a.kind
            if a.kind == "file":
                target = dest / os.fsdecode(rel)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(base / os.fsdecode(rel), target, follow_symlinks=False)
                item["size"], item["content"] = a.size, a.content
            elif a.kind == "link":
                item["target"] = os.fsdecode(bytes.fromhex(a.content)) if _is_hex(a.content) else a.content
        items.append(item)
    return items


def _is_hex(text: str) -> bool:
    try:
        bytes.fromhex(text)
    except ValueError:
        return False
    return True


def _alert_set_aside(site: Site, active: str, summary: dict[str, Any]) -> None:
    site.alerter.send(
        Alert(
            kind="divergent-changes-set-aside",
            severity="warning",
            scenario=site.s.name,
            host=site.host,
            what=f"{summary['paths']} path(s) on {site.host} differed from the active host {active} and were set "
            f"aside before {site.host} became its standby ({len(summary['written_here_unreplicated'])} written "
            "here and never replicated)",
            action=f"review them in {summary['directory']} (manifest.json lists each); nothing was merged",
            details=(("first paths", ", ".join(summary["written_here_unreplicated"][:10])),),
        )
    )


def become_standby(site: Site, ctx: Ctx) -> dict[str, Any]:
    fa = ctx["find-active"]
    if not fa["rejoin"]:
        return {"skipped": "already a standby of the active host"}
    role = site.role()
    if role.active != fa["active"] or role.epoch != fa["epoch"]:
        store(site.state_dir, Role(site.s.name, fa["active"], fa["epoch"], time.time(), role.active, ctx["run_id"]))
    for i in range(len(site.s.roots)):  # this host's journals of the old epoch: read by set-aside, done with
        for replica in members(site.s.master, site.s.replicas):
            shutil.rmtree(agent.sender_state(site.state_dir, site.s.name, i, replica), ignore_errors=True)
    return {"active": fa["active"], "epoch": fa["epoch"], "changed": True}


def resync(site: Site, ctx: Ctx) -> dict[str, Any]:
    """Until the active host has brought this one up to date (by delta) and replicates to it."""
    fa, s = ctx["find-active"], site.s
    deadline = time.monotonic() + s.switchover.resync_timeout
    t0 = time.monotonic()
    while True:
        rows = [
            r
            for r in site.on(fa["active"], ["status"])["scenarios"]
            if r["scenario"] == s.name and r.get("replica") == site.host
        ]
        if rows and all(r.get("state") == "replicating" for r in rows):
            sent = sum(int((r.get("sync") or {}).get("bytes_sent", 0) or 0) for r in rows)
            return {
                "seconds": round(time.monotonic() - t0, 3),
                "sync": [r.get("sync") for r in rows],
                "bytes_sent": sent,
            }
        if time.monotonic() > deadline:
            raise SwitchoverError(
                f"{fa['active']} did not bring {site.host} up to date within {s.switchover.resync_timeout:g} s: "
                f"{[(r.get('state'), r.get('last_error')) for r in rows] or 'no replication to ' + site.host}",
                hint="run again to wait longer (twinsite status on the active host shows the sync's progress)",
            )
        time.sleep(0.5)


# -- the sequences ----------------------------------------------------------------------------------------------
SWITCHOVER: tuple[tuple[str, str, Callable[[Site, Ctx], dict[str, Any]]], ...] = (
    ("preflight", "check the request, the replica and the redirect; is the active host reachable?", preflight),
    ("stop-application", "planned: stop the application on the active host", stop_application),
    ("drain", "planned: wait until every change is applied here; prove it by equal tree digests", drain),
    ("demote", "planned: the old active host's role names this host (it becomes a standby)", demote),
    ("fence", "unplanned: power off / fence the old active host (switchover.fence)", fence),
    ("promote", "this host becomes active at the next epoch; replication into it stops", promote),
    ("bookmark", "with CDP: name the point the application starts from", bookmark),
    ("start-application", "start the application here", start_application),
    ("check-application", "run its checks until they pass", check_application),
    ("redirect", "move the users: DNS, service address, script", redirect_users),
    ("verify-users", "from the users' hosts: the name resolves here, the application answers", verify_users),
    ("reverse-roles", "the old active host replicates from here (or rejoins later)", reverse_roles),
)

SWITCHBACK_FIRST: tuple[tuple[str, str, Callable[[Site, Ctx], dict[str, Any]]], ...] = (
    ("find-active", "ask every host of the scenario which one is active (the highest epoch)", find_active),
    ("stop-local", "stop the application here and release its service addresses", stop_local),
    ("set-aside", "copy aside what differs here from the active host (divergent changes)", set_aside),
    ("become-standby", "this host's role: a standby of the active one", become_standby),
    ("resync", "wait until the active host has brought this one up to date (by delta)", resync),
)


def steps(site: Site, kind: str) -> list[Step]:
    """switchover; switchback (rejoin, then switchover); rejoin (only become a standby of the active host)."""
    seq = {"switchover": SWITCHOVER, "switchback": SWITCHBACK_FIRST + SWITCHOVER, "rejoin": SWITCHBACK_FIRST}[kind]
    return [Step(name, does, _bind(site, fn)) for name, does, fn in seq]


def _bind(site: Site, fn: Callable[[Site, Ctx], dict[str, Any]]) -> Callable[[Ctx], dict[str, Any]]:
    def run(ctx: Ctx) -> dict[str, Any]:
        return fn(site, ctx)

    return run

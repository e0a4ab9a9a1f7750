"""The hand-over: the old active host lets go and this host takes the role.

    stop-application   planned: the application stops on the old active host (its last writes replicate)
    drain              planned: every change is applied here, proved by equal tree digests (zero loss)
    demote             planned: the old active host's role names this host at the next epoch, so its
                       agent stops sending and becomes a standby
    fence              unplanned: the old host is powered off (vSphere) or fenced by a site script
    promote            this host's role: active at the next epoch (replication into it stops at a batch
                       boundary); unplanned: the data-loss window is measured here
    bookmark           with CDP: the point the application starts from, by name
    reverse-roles      the old host replicates from here (planned), or is told to rejoin (unplanned)

Every step is idempotent: run again after a crash inside it, it finds what is done and does the rest.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from twinsite.apps.checks import run as run_script
from twinsite.apps.checks import site_script
from twinsite.cdp.rewind import go_live, settle, to_point
from twinsite.clock import iso
from twinsite.config.scenario import parse_duration
from twinsite.engine.receiver import apply_here
from twinsite.engine.spool import Spool
from twinsite.errors import HostUnreachableError, RemoteError, SwitchoverError, TwinsiteError
from twinsite.locks import held
from twinsite.ops.runner import Context, NoBookmark, Result, Skipped
from twinsite.ops.site import Site
from twinsite.proc import wait_until
from twinsite.recovery.running import end
from twinsite.recovery.steps import Test
from twinsite.state import bookmarks, heard, rewind, sender_status
from twinsite.state.role import Role, advanced, members, store
from twinsite.switchover.preflight import Preflight, Request, same_rewind
from twinsite.tree import entries
from twinsite.verify import compare


@dataclass(frozen=True)
class AppStopped(Result):
    host: str
    changed: bool | None
    running: bool | None


@dataclass(frozen=True)
class Drained(Result):
    rounds: int
    verified: bool
    entries: int
    ended_test: dict[str, Any] | None


@dataclass(frozen=True)
class Demoted(Result):
    host: str
    active: str
    epoch: int
    changed: bool | None
    standbys: dict[str, str]


@dataclass(frozen=True)
class ScriptFenced(Result):
    script: str
    fenced: bool
    output: str


@dataclass(frozen=True)
class VMFenced(Result):
    """vSphere powered the old host's VM off (vsphere.fence)."""

    vm: str
    moid: str
    host: str | None
    vcenter: str
    previous_state: str
    action: str
    changed: bool
    fenced: bool
    at: str


@dataclass(frozen=True)
class Promoted(Result):
    epoch: int
    changed: bool
    ended_test: dict[str, Any] | None
    rewound: list[dict[str, Any]] | None
    positions: list[dict[str, Any]]
    rpo_seconds: float | None


@dataclass(frozen=True)
class PromotedUnplanned(Promoted):
    """Promoted after a failure: who else was told, and the data-loss window's ends."""

    standbys: dict[str, str] = field(default_factory=dict)
    last_applied_at: float | None = None
    last_heard_at: float | None = None
    failure_noticed_at: float | None = None
    failure_at: float | None = None


@dataclass(frozen=True)
class Bookmarked(Result):
    bookmark: str
    roots: list[dict[str, Any]]


@dataclass(frozen=True)
class RolesLeft(Result):
    old_active: str
    note: str


@dataclass(frozen=True)
class RolesReversed(Result):
    old_active: str
    now: str
    replication: list[str]


# -- the old active host -------------------------------------------------------------------------------------
def stop_application(site: Site, ctx: Context) -> AppStopped | Skipped:
    old = ctx.get(Preflight).old_active
    if not ctx.get(Preflight).planned:
        return Skipped(f"{old} does not answer")
    done = site.on(old, ["app", site.s.name, "stop"], timeout=_app_timeout(site, "stop_timeout"))
    return AppStopped(host=old, changed=done.get("changed"), running=done.get("running"))


def _app_timeout(site: Site, key: str) -> float:
    return float(site.s.application_settings.get(key, 60)) + 30


def drain(site: Site, ctx: Context) -> Drained | Skipped:
    """Until this host has applied every change of the old active host, proved by equal tree entries (the
    application there is stopped: equal trees mean nothing is left to come)."""
    s, pre = site.s, ctx.get(Preflight)
    old = pre.old_active
    if not pre.planned:
        return Skipped(f"{old} does not answer: the data-loss window is measured when promoting")
    test = end_test(site, "a planned switchover to this host")  # its spool is applied by the receiver
    deadline = time.monotonic() + s.switchover.drain_timeout
    rounds = 0
    last = [""]

    def acknowledged() -> bool:  # the old host says everything it planned was acknowledged here (and settled)
        mine = [
            r
            for r in site.on(old, ["status"])["scenarios"]
            if r["scenario"] == s.name and r.get("replica") == site.host
        ]
        last[0] = (
            "; ".join(
                f"{r['root']}: {r.get('state')}, acked {r.get('acked_seq')} of {r.get('planned_seq')}"
                + (f", {r['unsettled']} file(s) unsettled" if r.get("unsettled") else "")
                for r in mine
            )
            or f"{old} runs no replication to {site.host}"
        )
        return bool(mine) and all(
            r.get("acked_seq") == r.get("planned_seq") and not r.get("unsettled") and not r.get("pending") for r in mine
        )

    while True:
        rounds += 1
        diffs = _differences(site, old)
        if not diffs:
            counted = sum(len(entries(Path(r.path), r.selects_bytes)) for r in s.roots)
            return Drained(rounds=rounds, verified=True, entries=counted, ended_test=test)
        last[0] = f"{len(diffs)} difference(s), first: {diffs[0]}"
        left = deadline - time.monotonic()
        if left <= 0 or not wait_until(acknowledged, timeout=left, interval=0.2):
            raise SwitchoverError(
                f"{site.host} did not catch up with {old} within {s.switchover.drain_timeout:g} s ({last[0]})",
                hint=f"nothing was switched: the application is stopped on {old}; start it again there with "
                f"`twinsite app {s.name} start`, or find out why replication lags (twinsite status on {old})",
            )
        time.sleep(0.1)


def _differences(site: Site, host: str) -> list[str]:
    out = []
    for root in site.s.roots:
        _local, diffs = compare(site.s, root, host, source_here=False)  # (``host`` is the active one)
        out += [f"{root.path}/{os.fsdecode(p)}: {why}" for p, why in diffs]
    return out


def demote(site: Site, ctx: Context) -> Demoted | Skipped:
    pre = ctx.get(Preflight)
    old = pre.old_active
    if not pre.planned:
        return Skipped(f"{old} does not answer: it is told at switch-back")
    role = _tell(site, ctx, old)
    others = tell_others(site, ctx)  # before this host starts sending: no standby refuses it
    return Demoted(host=old, active=role["active"], epoch=role["epoch"], changed=role.get("changed"), standbys=others)


def _tell(site: Site, ctx: Context, host: str) -> dict[str, Any]:
    """Record on ``host`` that this host is active at the new epoch."""
    epoch = str(ctx.get(Preflight).epoch)
    return site.on(host, ["role", site.s.name, "--set", site.host, "--epoch", epoch, "--run", ctx.run_id])


def tell_others(site: Site, ctx: Context) -> dict[str, str]:
    """The other standbys learn the new active host (one that does not answer now learns at its switch-back)."""
    old = ctx.get(Preflight).old_active
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


def fence(site: Site, ctx: Context) -> ScriptFenced | VMFenced | Skipped:
    pre, spec = ctx.get(Preflight), site.s.switchover.fence
    old = pre.old_active
    if pre.planned:
        return Skipped(f"{old} stopped its application and handed over: nothing to fence")
    if not spec:
        why = "automatic switchover: a witness agreed" if Request.of(ctx).automatic else "the operator ran --unplanned"
        return Skipped(f"no fence configured ({why})")
    if spec["type"] == "vsphere":
        vm = dict(spec["vms"]).get(old)
        if vm is None:
            raise SwitchoverError(f"switchover.fence.vms names no VM for {old}", hint=f"add {old}: VM-NAME")
        return VMFenced.from_json(_fence_vsphere(spec, vm, site.place.fence_record))
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
    return ScriptFenced(script=spec["name"], fenced=True, output=out.strip()[-500:])


def _fence_vsphere(spec: dict[str, Any], vm: str, record: Path) -> dict[str, Any]:
    from twinsite.vsphere.connection import Credentials, connect  # (pyVmomi: only when a fence needs it)
    from twinsite.vsphere.fence import fence as power_off

    with connect(Credentials.from_settings(spec)) as session:
        return power_off(session, vm, datacenter=spec.get("datacenter"), record=record)


# -- this host ---------------------------------------------------------------------------------------------
def promote(site: Site, ctx: Context) -> Promoted:
    """Active here at the next epoch: each root's apply lock is held while the role is written, so a batch
    in progress ends first and none follows (the receiver checks the role before each)."""
    pre = ctx.get(Preflight)
    role = site.role()
    changed = not (role.active == site.host and role.epoch == pre.epoch)
    test = end_test(site, "a switchover to this host")
    for i, root in enumerate(site.s.roots):  # what an assured-recovery test's spool held was acknowledged
        if Spool(site.recv(i)).held() and rewind.read(site.recv(i).rewind) is None:
            apply_here(Path(root.path), site.recv(i), site.s)
    if changed or pre.rewound:
        _take_over(site, ctx, role, changed)
    positions = site.positions()
    done = Promoted(
        epoch=pre.epoch,
        changed=changed,
        ended_test=test,
        rewound=pre.rewound or None,
        positions=[
            {"root": r.path, "seq": p.seq, "ts": p.ts or None, "time": iso(p.ts)}
            for r, p in zip(site.s.roots, positions, strict=True)
        ],
        rpo_seconds=0.0,
    )
    if pre.planned:
        return done
    standbys = tell_others(site, ctx)
    last = min((p.ts for p in positions), default=0.0)
    last_heard = [heard.read(site.recv(i).heard) for i in range(len(site.s.roots))]
    noticed = float(pre.failure_at or 0.0)
    # the old host failed after it was last heard (it streamed changes or keep-alives until then) and
    # before the monitor missed it; without either, when this switchover noticed
    failure = min(max(*last_heard, last), noticed) if all(last_heard) else noticed
    if pre.rewound:  # a rewound replica refused the old host from the rewind on: it was not heard
        failure = noticed
    return PromotedUnplanned(
        **{**done.to_json(), "rpo_seconds": round(max(0.0, failure - last), 3) if last else None},
        standbys=standbys,
        last_applied_at=last or None,
        last_heard_at=max(last_heard) if all(last_heard) else None,
        failure_noticed_at=noticed,
        failure_at=failure,
    )


def _take_over(site: Site, ctx: Context, role: Role, changed: bool) -> None:
    """Under every root's apply lock: the rewound point (if preflight allowed one) becomes the live data,
    then the role names this host. Every lock taken is released, whatever fails."""
    pre = ctx.get(Preflight)
    with contextlib.ExitStack() as locks:
        for i in range(len(site.s.roots)):
            locks.enter_context(held(site.recv(i).apply_lock))
        if changed:
            same_rewind(site, pre)
        for i in range(len(site.s.roots)):
            if pre.rewound:
                settle(site.recv(i))
                go_live(site.recv(i))
            elif changed and not pre.planned and _points(site):
                _at_point(site, i)
                go_live(site.recv(i))
        if changed:
            store(site.place, advanced(role, site.host, ctx.run_id))


def _points(site: Site) -> bool:
    return site.s.replication.consistency == "points"


def _at_point(site: Site, i: int) -> None:
    """An unplanned switchover takes the replica at its last complete consistency point: what was applied of
    the open one (the active host failed in the middle of shipping it) is undone first."""
    root = site.s.roots[i].path
    if to_point(Path(root), site.recv(i)) is None:
        raise SwitchoverError(
            f"{site.host} has no complete consistency point of {root} yet (its first sync never finished): "
            "no state of it there is one the source held",
            where=root,
            hint="a switchover to it is refused; bring the active host back, or restore from a backup",
        )


def end_test(site: Site, why: str) -> dict[str, Any] | None:
    """An assured-recovery test running here ends first: the replica must be the replica again."""
    return end(Test(site), why)


def bookmark(site: Site, ctx: Context) -> Bookmarked | NoBookmark:
    if not site.s.cdp.enabled:
        return NoBookmark(bookmark=None, note="cdp is off: no rewind point is kept")
    name = f"switchover-{ctx.run_id}"
    marks = []
    for i, p in enumerate(site.positions()):
        created, mark = bookmarks.add(site.recv(i).bookmarks, name, p.seq, p.ts)
        marks.append({"root": site.s.roots[i].path, "seq": mark["seq"], "created": created})
    return Bookmarked(bookmark=name, roots=marks)


def reverse_roles(site: Site, ctx: Context) -> RolesReversed | RolesLeft:
    pre = ctx.get(Preflight)
    old = pre.old_active
    if not pre.planned:
        return RolesLeft(
            old_active=old,
            note=f"{old} did not answer: once it is back, `twinsite switchback "
            f"{site.s.name}` on {old} sets its divergent changes aside and makes it a standby",
        )
    rows: list[dict[str, Any]] = []

    def replicating() -> bool:  # this host's agent follows the role within seconds and replicates to the old host
        rows[:] = _sender_rows(site, old)
        return bool(rows) and all(r.get("state") in ("syncing", "replicating") for r in rows)

    if not wait_until(replicating, timeout=30, interval=0.3):
        raise SwitchoverError(
            f"replication from {site.host} to {old} did not start: {rows or 'no sender'}",
            hint=f"is the agent running on {site.host}? (twinsite service status, twinsite status)",
        )
    return RolesReversed(old_active=old, now="standby", replication=[r["state"] for r in rows])


def _sender_rows(site: Site, replica: str) -> list[dict[str, Any]]:
    """The statuses of this host's senders to ``replica`` written since this host became active."""
    rows = []
    since = site.role().since - 1
    for i in range(len(site.s.roots)):
        try:
            st = sender_status.read(site.place.sender(i, replica).status)
        except TwinsiteError:
            continue
        if st is not None and st.updated_at >= since:
            rows.append(asdict(st))
    return rows

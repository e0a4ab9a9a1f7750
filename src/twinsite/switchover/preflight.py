"""The switchover's first step, and what every later step knows of the request: may this host take over now?

Planned when the old active host answers; unplanned (it does not) only with ``--unplanned`` or an automatic
switchover's second opinion. The replica must be usable: a rewound one only with ``--rewound`` (recovery from a
corruption, unplanned), at a point, without a test's spool of newer changes. The application's plugin and the
redirect must load. Nothing changes here: a refusal leaves everything as it was.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from typing import Any

from twinsite.clock import iso
from twinsite.engine.spool import Spool
from twinsite.errors import AlreadyActiveError, ConfigError, SwitchoverError
from twinsite.ops.runner import Context, Result
from twinsite.ops.site import Site
from twinsite.redirect import methods as redirect
from twinsite.state import applied, monitor, rewind
from twinsite.state.role import members


@dataclass(frozen=True)
class Request:
    """The switchover's parameters (``twinsite switchover`` options), kept with its run."""

    scenario: str = ""
    host: str = ""
    unplanned: bool = False
    automatic: bool = False
    second_opinion: str | None = None  # witness | fence: what an automatic switchover relies on
    force: bool = False
    rewound: bool = False

    @classmethod
    def of(cls, ctx: Context) -> Request:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in ctx.params.items() if k in names})


@dataclass(frozen=True)
class Preflight(Result):
    STEP = "preflight"

    old_active: str
    new_active: str
    epoch: int  # the epoch this host becomes active at
    mode: str  # planned | unplanned
    replication_last_seen: str | None  # what this host's monitor last said of replication
    rewound: list[dict[str, Any]] = field(default_factory=list)  # roots switched over at a rewound point
    failure_at: float | None = None  # unplanned: when the old host failed, as far as is known here

    @property
    def planned(self) -> bool:
        return self.mode == "planned"


def preflight(site: Site, ctx: Context) -> Preflight:
    s, role, req = site.s, site.role(), Request.of(ctx)
    if role.active == site.host:
        raise AlreadyActiveError(f"{site.host} is already the active host of {s.name}", hint="nothing to do")
    if site.host not in members(s.master, s.replicas):
        raise ConfigError(f"{site.host} is not a host of scenario {s.name}")
    old = role.active
    roots = rewound_roots(site, req)
    site.app()  # the plugin loads (a wrong application definition fails here, before anything changes)
    redirect.check(s.redirect, site.plugins)
    # (an automatic switchover comes from a monitor that has just missed the host several times: a short look)
    reachable = site.answers(old, min(1.0, s.monitoring.timeout) if req.automatic else None)
    seen = monitor.read(site.place.monitor) or monitor.MonitorView()
    pre = Preflight(
        old_active=old,
        new_active=site.host,
        epoch=role.epoch + 1,
        mode="planned" if reachable else "unplanned",
        replication_last_seen=seen.replication(),
        rewound=roots,
    )
    if reachable and roots:
        raise SwitchoverError(
            f"a planned switchover takes every change of {old}, and this replica is rewound to before some of them",
            where=old,
            hint=f"to recover from the corruption on {old}: stop or fence {old} (it must not serve users), then "
            "switch over with --unplanned --rewound; or resume the replica and switch over planned",
        )
    if reachable:
        return pre
    if not (req.unplanned or req.automatic):
        last = max((p.ts for p in site.positions()), default=0.0)
        raise SwitchoverError(
            f"{old} does not answer: this would be an unplanned switchover, which loses the changes not yet "
            f"replicated here (the last one applied was made at {iso(last) or 'an unknown time'})",
            where=old,
            hint=f"make sure {old} is down (or fenced) and cannot come back as a second active host, then run "
            "again with --unplanned",
        )
    if (pre.replication_last_seen or "").startswith("syncing") and not req.force:
        raise SwitchoverError(
            f"the replica of {s.name} was last seen still in its initial sync: it may not hold a usable copy",
            hint="run again with --force to switch over to it anyway",
        )
    if req.second_opinion == "fence" and not s.switchover.fence:
        raise SwitchoverError("no fence is configured (switchover.fence), and no witness agreed", where=old)
    return Preflight(**{**pre.to_json(), "failure_at": seen.unreachable_since() or time.time()})


def rewound_roots(site: Site, req: Request) -> list[dict[str, Any]]:
    """The roots whose replica is rewound (refused unless the switchover is to the rewound data, and then
    only at a point: not in the middle of a move, nor with a test's spool that holds newer changes)."""
    found = []
    for i, root in enumerate(site.s.roots):
        pos = rewind.read(site.recv(i).rewind)
        if pos is None:
            continue
        if not req.rewound:
            raise SwitchoverError(
                f"the replica of {root.path} is rewound to seq {pos.at}: it is not the latest data",
                hint=f"`twinsite rewind {site.s.name} --resume` first, or switch over to the rewound data with "
                f"--rewound (recovery from a corruption: what was applied after seq {pos.at} is left behind)",
            )
        if not pos.settled:
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


def same_rewind(site: Site, pre: Preflight) -> None:
    """Promote (under the apply locks) takes the data preflight saw: a rewind or resume made between them
    would switch over to other data than the report says. A point already settled counts as seen."""
    seen = {r["root"]: r for r in pre.rewound}
    for i, root in enumerate(site.s.roots):
        pos, want = rewind.read(site.recv(i).rewind), seen.get(root.path)
        if want is None and pos is None:
            continue
        if want is not None and pos is None:  # settled by an earlier run of this step?
            if applied.read(site.recv(i).applied).seq == want["seq"]:
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

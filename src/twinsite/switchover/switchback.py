"""Switch-back and rejoin: make this host (a former active host, back after a failover) a standby of the active
one first; a switch-back then runs the switchover, planned, in the other direction.

    find-active        ask every host of the scenario which one is active (the highest epoch wins)
    stop-local         this host's application stops and gives up its service addresses
    set-aside          what differs here from the active host is copied aside and reported, never merged
    become-standby     this host's role: a standby of the active one
    resync             the active host brings this one up to date (by delta)
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twinsite.alerts import Alert
from twinsite.errors import AlreadyActiveError, HostUnreachableError, RemoteError, SwitchoverError
from twinsite.journal.segments import Journal
from twinsite.ops.runner import Context, Result, Skipped
from twinsite.ops.site import Site
from twinsite.proc import wait_until
from twinsite.redirect import methods as redirect
from twinsite.state import set_aside as aside
from twinsite.state.role import Role, members, store
from twinsite.tree import Entry, entries
from twinsite.verify import remote_entries


@dataclass(frozen=True)
class FoundActive(Result):
    STEP = "find-active"

    active: str
    epoch: int
    views: dict[str, Any]
    rejoin: bool  # this host is not a standby of the active host yet
    was_active_here: bool


@dataclass(frozen=True)
class LocalStopped(Result):
    stopped: bool
    released: list[str]


@dataclass(frozen=True)
class SetAside(Result):
    directory: str
    paths: int
    bytes: int
    written_here_unreplicated: list[str]
    changed: bool


@dataclass(frozen=True)
class BecameStandby(Result):
    active: str
    epoch: int
    changed: bool


@dataclass(frozen=True)
class Resynced(Result):
    seconds: float
    sync: list[dict[str, Any] | None]
    bytes_sent: int


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


def find_active(site: Site, ctx: Context) -> FoundActive:
    active, epoch, views = active_now(site)
    if active == site.host:
        raise AlreadyActiveError(
            f"{site.host} is the active host of {site.s.name} (epoch {epoch})", hint="nothing to do"
        )
    if not site.answers(active):
        raise SwitchoverError(
            f"the active host {active} does not answer",
            where=active,
            hint="a switch-back needs the active host; wait until it is reachable",
        )
    mine = site.role()
    return FoundActive(
        active=active,
        epoch=epoch,
        views=views,
        rejoin=mine.active == site.host or mine.epoch != epoch,
        was_active_here=mine.active == site.host,
    )


def stop_local(site: Site, ctx: Context) -> LocalStopped:
    """This host's application stops (it may have kept running during a split) and gives up its addresses."""
    app = site.app()
    was = app.running()
    app.stop()
    return LocalStopped(stopped=was, released=redirect.release(site.s.redirect))


def set_aside(site: Site, ctx: Context) -> SetAside | Skipped:
    """Every path here that differs from the active host is copied aside before the resync replaces it."""
    fa = ctx.get(FoundActive)
    if not fa.rejoin:
        return Skipped("already a standby of the active host")
    dest = site.place.set_aside(ctx.run_id)
    done = aside.read(dest)
    if done is not None:  # done before a crash: the copy is complete (the manifest is written last)
        return SetAside.from_json(done["summary"])
    shutil.rmtree(dest, ignore_errors=True)
    unshipped = _unshipped_paths(site, fa.active)
    items: list[dict[str, Any]] = []
    for i, root in enumerate(site.s.roots):
        local = entries(Path(root.path), root.selects_bytes)
        remote = remote_entries(site.s, fa.active, root)
        aside_root = site.place.set_aside(ctx.run_id, i)
        items += copy_differences(Path(root.path), local, remote, aside_root, unshipped.get(i, set()))
    summary = SetAside(
        directory=str(dest),
        paths=len(items),
        bytes=sum(x["size"] for x in items),
        written_here_unreplicated=sorted({x["path"] for x in items if x["unreplicated"]}),
        changed=bool(items),
    )
    aside.write(
        dest,
        {
            "scenario": site.s.name,
            "host": site.host,
            "active": fa.active,
            "at": time.time(),
            "items": items,
            "summary": summary.to_json(),
        },
    )
    if items:
        _alert_set_aside(site, fa.active, summary)
    return summary


def _unshipped_paths(site: Site, active: str) -> dict[int, set[bytes]]:
    """Paths of the changes this host journaled but the standby never acknowledged (made during the split)."""
    out: dict[int, set[bytes]] = {}
    for i in range(len(site.s.roots)):
        jdir = site.place.sender(i, active).journal
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


def copy_differences(
    base: Path, local: dict[bytes, Entry], remote: dict[bytes, Entry], dest: Path, unshipped: set[bytes]
) -> list[dict[str, Any]]:
    """Copy what differs here from ``remote`` into ``dest``; an item per path (why, kind, size, hash, target)."""
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
                item["target"] = os.fsdecode(a.target)
        items.append(item)
    return items


def _alert_set_aside(site: Site, active: str, summary: SetAside) -> None:
    site.alerter.send(
        Alert(
            kind="divergent-changes-set-aside",
            severity="warning",
            scenario=site.s.name,
            host=site.host,
            what=f"{summary.paths} path(s) on {site.host} differed from the active host {active} and were set "
            f"aside before {site.host} became its standby ({len(summary.written_here_unreplicated)} written "
            "here and never replicated)",
            action=f"review them in {summary.directory} (manifest.json lists each); nothing was merged",
            details=(("first paths", ", ".join(summary.written_here_unreplicated[:10])),),
        )
    )


def become_standby(site: Site, ctx: Context) -> BecameStandby | Skipped:
    fa = ctx.get(FoundActive)
    if not fa.rejoin:
        return Skipped("already a standby of the active host")
    role = site.role()
    if role.active != fa.active or role.epoch != fa.epoch:
        store(site.place, Role(site.s.name, fa.active, fa.epoch, time.time(), role.active, ctx.run_id))
    for i in range(len(site.s.roots)):  # this host's journals of the old epoch: read by set-aside, done with
        for replica in members(site.s.master, site.s.replicas):
            shutil.rmtree(site.place.sender(i, replica).dir, ignore_errors=True)
    return BecameStandby(active=fa.active, epoch=fa.epoch, changed=True)


def resync(site: Site, ctx: Context) -> Resynced:
    """Until the active host has brought this one up to date (by delta) and replicates to it."""
    fa, s = ctx.get(FoundActive), site.s
    t0 = time.monotonic()
    rows: list[dict[str, Any]] = []

    def replicating() -> bool:
        answer = site.on(fa.active, ["status"])["scenarios"]
        rows[:] = [r for r in answer if r["scenario"] == s.name and r.get("replica") == site.host]
        return bool(rows) and all(r.get("state") == "replicating" for r in rows)

    if not wait_until(replicating, timeout=s.switchover.resync_timeout, interval=0.5):
        raise SwitchoverError(
            f"{fa.active} did not bring {site.host} up to date within {s.switchover.resync_timeout:g} s: "
            f"{[(r.get('state'), r.get('last_error')) for r in rows] or 'no replication to ' + site.host}",
            hint="run again to wait longer (twinsite status on the active host shows the sync's progress)",
        )
    return Resynced(
        seconds=round(time.monotonic() - t0, 3),
        sync=[r.get("sync") for r in rows],
        bytes_sent=sum(int((r.get("sync") or {}).get("bytes_sent", 0) or 0) for r in rows),
    )

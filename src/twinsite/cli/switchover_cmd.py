"""``twinsite switchover | switchback | role``: move a scenario's active role here (docs/switchover.md)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twinsite.cli.options import dirs
from twinsite.config.store import find
from twinsite.errors import AlreadyActiveError, ConfigError, SwitchoverError, TwinsiteError
from twinsite.locks import held
from twinsite.proc import read_pid, write_pid
from twinsite.state.layout import ScenarioState
from twinsite.state.role import Role, current, members, store, this_host

if TYPE_CHECKING:  # (imported where used: `twinsite role`, which the switchover runs on peers, starts fast)
    from twinsite.ops.runner import Runner
    from twinsite.ops.site import Site
    from twinsite.state.runs import RunState


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for kind, text in (
        ("switchover", "make this standby the active host of a scenario (planned, or unplanned with --unplanned)"),
        ("switchback", "on a former active host: set its divergent changes aside, resync it, switch back to it"),
        ("rejoin", "on a former active host: set its divergent changes aside and make it a standby again"),
    ):
        p = sub.add_parser(kind, help=text)
        p.add_argument("scenario")
        dirs(p)
        if kind == "switchover":
            p.add_argument(
                "--unplanned",
                action="store_true",
                help="go on when the active host does not answer (its changes not replicated yet are lost)",
            )
            p.add_argument("--automatic", action="store_true", help=argparse.SUPPRESS)  # started by the monitor
            p.add_argument("--second-opinion", choices=["witness", "fence"], help=argparse.SUPPRESS)
            p.add_argument(
                "--force", action="store_true", help="switch over to a replica last seen in its initial sync"
            )
            p.add_argument(
                "--rewound",
                action="store_true",
                help="switch over to the rewound data (recovery from a corruption; with --unplanned)",
            )
        p.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
        p.add_argument(
            "--report",
            nargs="?",
            const="",
            metavar="RUN_ID",
            help="print the report of the newest run (or of RUN_ID) and exit",
        )
        p.add_argument("--plugins-dir", type=Path, default=None)
        p.add_argument("--json", action="store_true")
        p.set_defaults(handler=_run, kind=kind)

    p = sub.add_parser("role", help="which host is active for a scenario, at which epoch (this host's view)")
    p.add_argument("scenario")
    dirs(p)
    p.add_argument("--set", metavar="HOST", help="record HOST as active (the switchover does this on the old host)")
    p.add_argument("--epoch", type=int, help="with --set: the new epoch")
    p.add_argument("--run", help="with --set: the switchover run that does it")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_role)


def _role(args: argparse.Namespace) -> tuple[Any, str]:
    s = find(args.config_dir, args.scenario)
    place = ScenarioState(args.state_dir, s.name)
    role = current(place, s.master)
    changed = False
    if args.set:
        if args.epoch is None:
            raise ConfigError("--set needs --epoch")
        if args.set not in members(s.master, s.replicas):
            raise ConfigError(f"{args.set} is not a host of scenario {s.name}")
        if role.epoch > args.epoch:
            raise SwitchoverError(
                f"this host knows epoch {role.epoch} (active {role.active}), newer than {args.epoch}",
                where=this_host(),
                hint="another switchover happened since: look at the role on every host",
            )
        if (role.active, role.epoch) != (args.set, args.epoch):
            role = Role(s.name, args.set, args.epoch, _now(), role.active, args.run)
            store(place, role)
            changed = True
    result = {**role.to_json(), "host": this_host(), "changed": changed}
    here = "this host" if role.active == this_host() else role.active
    return result, f"{s.name}: active {role.active} ({here}), epoch {role.epoch}"


def _now() -> float:
    import time

    return time.time()


@contextlib.contextmanager
def _exclusive(site: Site) -> Iterator[None]:
    """One switchover of a scenario at a time on a host; its pid in switchover.pid while it runs."""
    place = site.place
    with held(place.switchover_lock, wait=False) as mine:
        if not mine:
            pid = read_pid(place.switchover_pid, argv_has=None)
            raise SwitchoverError(
                f"another switchover of {site.s.name} is running here (pid {pid or '?'})", hint="wait for it to end"
            )
        write_pid(place.switchover_pid, os.getpid())
        try:
            yield
        finally:
            place.switchover_pid.unlink(missing_ok=True)


def _run(args: argparse.Namespace) -> tuple[Any, str]:
    from twinsite.ops.runner import Runner
    from twinsite.ops.site import Site
    from twinsite.state import reports
    from twinsite.switchover.preflight import Request
    from twinsite.switchover.report import text
    from twinsite.switchover.steps import steps

    s = find(args.config_dir, args.scenario)
    site = Site(s, this_host(), args.state_dir, args.config_dir, args.plugins_dir)
    runner = Runner(site.place.switchover_run, args.kind, steps(site, args.kind), error=SwitchoverError)
    if args.report is not None:
        found = reports.load(site.place.reports, args.report or None)
        if found is None:
            what = f"report {args.report}" if args.report else "switchover report"
            raise ConfigError(f"no {what} for {s.name} here")
        return found, text(found)
    saved = runner.load()
    resuming = saved is not None and saved.finished is None
    if args.dry_run:
        return _plan(site, runner, resuming)
    if not resuming:
        active, epoch = _active(site, args.kind)
        if active == site.host:
            return {"changed": False, "scenario": s.name, "active": active, "epoch": epoch}, (
                f"{s.name}: {site.host} is already the active host (epoch {epoch}); nothing to do"
            )
    request = Request(
        scenario=s.name,
        host=site.host,
        unplanned=bool(getattr(args, "unplanned", False)),
        automatic=bool(getattr(args, "automatic", False)),
        second_opinion=getattr(args, "second_opinion", None),
        force=bool(getattr(args, "force", False)),
        rewound=bool(getattr(args, "rewound", False)),
    )
    params = asdict(request)
    with _exclusive(site):
        return _execute(site, runner, params, args, resuming)


def _execute(
    site: Site, runner: Runner, params: dict[str, Any], args: argparse.Namespace, resuming: bool
) -> tuple[Any, str]:
    from twinsite.state import reports
    from twinsite.state.runs import FAILED, StepState
    from twinsite.switchover.report import text

    s, kind = site.s, args.kind

    def progress(st: StepState) -> None:
        if not args.json:
            secs = f"{st.seconds:.2f} s" if st.seconds is not None else ""
            brief = st.result.get("skipped") or st.result.get("note") or ""
            print(f"  {st.state:<7} {st.name:<18} {secs:>9}  {brief}".rstrip(), file=sys.stderr, flush=True)

    if not args.json:
        print(f"twinsite {kind} {s.name} on {site.host}" + (" (continuing)" if resuming else ""), file=sys.stderr)
    if not resuming:
        _alert(
            site,
            f"{kind}-started",
            "warning",
            f"a {kind} of {s.name} to {site.host} has started",
            "watch it: twinsite switchover --report on " + site.host,
        )
    try:
        run = runner.run(params, on_step=progress)
    except TwinsiteError as exc:
        failed = runner.load()
        if failed is not None:
            if failed.steps and failed.steps[0].state == FAILED:  # (refused at its preflight: nothing changed)
                runner.finish(failed)  # not left unfinished, which would block rewinds and tests until run again
            _write_report(site, failed)
        nothing = isinstance(exc.__cause__, AlreadyActiveError)
        if not nothing:
            _alert(
                site,
                f"{kind}-failed",
                "critical",
                f"the {kind} of {s.name} to {site.host} failed: {exc.message}",
                f"read the report (twinsite {kind} {s.name} --report on {site.host}); fix what it says and run "
                f"the {kind} again: it continues where it stopped",
            )
        raise
    r = _write_report(site, run)
    rto, rpo = r["rto"], r["rpo"]
    if kind == "rejoin":
        fa = run.results["find-active"]
        aside = r["set_aside"] or {}
        _alert(
            site,
            "rejoin-done",
            "info",
            f"{site.host} is a standby of {fa['active']} again (epoch {fa['epoch']})",
            f"review what was set aside ({aside.get('paths', 0)} path(s) in {aside.get('directory', '-')})"
            if aside.get("paths")
            else "nothing",
        )
        return {"changed": True, **r, "text": text(r)}, text(r)
    _alert(
        site,
        f"{kind}-done",
        "info",
        f"{s.name} is active on {site.host} (epoch {r['epoch']}) after a {r['mode']} {kind} from {r['from']}",
        "nothing; users were verified on the new host"
        if r["verify"] and "skipped" not in r["verify"]
        else "make sure users reach the new host",
        details=(
            ("RTO (outage, s)", str(rto["outage_seconds"])),
            ("RPO (s)", str(rpo["seconds"])),
            ("report", str(reports.text_file(site.place.reports, r["id"]))),
        ),
    )
    return {"changed": True, **r, "text": text(r)}, text(r)


def _write_report(site: Site, run: RunState) -> dict[str, Any]:
    from twinsite.state import reports
    from twinsite.switchover.report import summarize, text

    r = summarize(run, site.s.name, site.host)
    reports.write(site.place.reports, r, text(r))
    return r


def _alert(
    site: Site, kind: str, severity: str, what: str, action: str, details: tuple[tuple[str, str], ...] = ()
) -> None:
    from twinsite.alerts import Alert

    site.alerter.send(
        Alert(
            kind=kind,
            severity=severity,
            scenario=site.s.name,
            host=site.host,
            what=what,
            action=action,
            details=details,
        )
    )


def _active(site: Site, kind: str) -> tuple[str, int]:
    """Who is active now: this host's view for a switchover; every host's (the newest epoch) for a switch-back,
    which runs on a host whose own view may be stale."""
    if kind in ("switchback", "rejoin"):
        from twinsite.switchover.switchback import active_now

        active, epoch, _views = active_now(site)
        return active, epoch
    role = site.role()
    return role.active, role.epoch


def _plan(site: Site, runner: Runner, resuming: bool) -> tuple[Any, str]:
    old, epoch = _active(site, runner.kind)
    reachable = old != site.host and site.answers(old)
    mode = "nothing to do" if old == site.host else ("planned" if reachable else "unplanned")
    plan = runner.plan()
    result = {
        "scenario": site.s.name,
        "active": old,
        "to": site.host,
        "epoch": epoch,
        "mode": mode,
        "old_reachable": reachable,
        "resuming": resuming,
        "steps": plan,
        "changed": old != site.host,
    }
    lines = [
        f"{runner.kind} of {site.s.name}: {old} -> {site.host} ({mode}" + (", continuing a run)" if resuming else ")")
    ]
    lines += [f"  {i + 1:>2}. {p['step']:<18} {p['does']}" for i, p in enumerate(plan)]
    if mode == "unplanned":
        lines.append(f"  {old} does not answer: changes not yet replicated here would be lost (needs --unplanned)")
    return result, "\n".join(lines)

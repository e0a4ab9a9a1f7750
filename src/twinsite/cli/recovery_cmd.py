"""``twinsite recover-test``: an assured-recovery test of a scenario's replica on this standby
(docs/assured-recovery.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twinsite.cli.options import dirs
from twinsite.config.store import find
from twinsite.errors import ConfigError, TwinsiteError
from twinsite.state.role import this_host

if TYPE_CHECKING:
    from twinsite.recovery.steps import Test


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "recover-test",
        help="test the replica here: start the application on it through a throw-away overlay, check it, "
        "discard its writes, while replication goes on (with evidence)",
    )
    p.add_argument("scenario")
    dirs(p)
    what = p.add_mutually_exclusive_group()
    what.add_argument("--history", action="store_true", help="list the tests that ran here and exit")
    what.add_argument(
        "--report", nargs="?", const="", metavar="TEST_ID", help="print the newest test's evidence (or TEST_ID's)"
    )
    what.add_argument("--dry-run", action="store_true", help="print the steps and whether a test could start now")
    what.add_argument(
        "--cleanup", action="store_true", help="end a test left by a crash here (the agent does this by itself)"
    )
    what.add_argument(
        "--end", action="store_true", help="end the (interactive) test running here and print its evidence"
    )
    p.add_argument(
        "--hold",
        metavar="DURATION",
        help="an interactive test: once its checks pass, keep the copy up for testers this long (e.g. 30m)",
    )
    p.add_argument(
        "--expose",
        metavar="NAME",
        help="with --hold: publish the copy as NAME (an A record made with the scenario's dns redirect)",
    )
    p.add_argument(
        "--background",
        action="store_true",
        help="with --hold: return once the copy is up and published; the test goes on in its own process",
    )
    p.add_argument("--plugins-dir", type=Path, default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> tuple[Any, str]:
    from twinsite.errors import TestFailed
    from twinsite.ops.site import Site
    from twinsite.recovery import evidence
    from twinsite.recovery.running import run_test
    from twinsite.recovery.steps import Test

    s = find(args.config_dir, args.scenario)
    t = Test(Site(s, this_host(), args.state_dir, args.config_dir, args.plugins_dir))
    hold = _hold(args)
    if args.history or args.report is not None:
        return _evidence(t, args.report)
    for flag, answer in (("cleanup", _cleanup), ("end", _end), ("dry_run", _plan)):
        if getattr(args, flag):
            return answer(t)
    if args.background:
        return _background(t, hold)

    def progress(st: Any) -> None:
        if not args.json:
            secs = f"{st.seconds:.2f} s" if st.seconds is not None else ""
            brief = st.result.get("skipped") or st.result.get("note") or (st.error or "")
            print(f"  {st.state:<7} {st.name:<18} {secs:>9}  {brief}".rstrip(), file=sys.stderr, flush=True)

    if not args.json:
        print(f"twinsite recover-test {s.name} on {t.site.host}", file=sys.stderr)
    record = run_test(t, hold=hold, expose_as=args.expose, on_step=progress)
    if record["result"] != "passed":
        if not args.json:
            print(evidence.text(record), file=sys.stderr)
        raise TestFailed(record)
    return {"changed": True, **record}, evidence.text(record)


def _hold(args: argparse.Namespace) -> float:
    """The hold asked for, in seconds (0: an ordinary test), with the options that need it checked."""
    from twinsite.config.scenario import parse_duration

    if args.hold is None:
        for given, option in ((args.expose, "--expose"), (args.background, "--background")):
            if given:
                raise ConfigError(f"{option} is for an interactive test", hint="give --hold DURATION too")
        return 0.0
    if args.history or args.report is not None or args.cleanup or args.end:
        raise ConfigError("--hold starts a test: it does not go with --history, --report, --cleanup or --end")
    try:
        seconds = parse_duration(args.hold)
    except ConfigError as exc:
        raise ConfigError(f"--hold {args.hold!r}: {exc.message}", hint="for example 30m or 2h") from exc
    if seconds <= 0:
        raise ConfigError(f"--hold {args.hold!r}: give a duration longer than 0")
    return seconds


def _end(t: Test) -> tuple[Any, str]:
    from twinsite.recovery import evidence
    from twinsite.recovery.running import end_test

    record = end_test(t, wait=t.site.s.assured_recovery.drain_timeout + 120)
    if record is None:
        return {"changed": False, "running": False}, f"no test of {t.site.s.name} is running here"
    return {"changed": True, **record}, evidence.text(record)


def _background(t: Test, hold: float) -> tuple[Any, str]:
    """Start the interactive test in a process of its own (this same command without --background), and
    answer once its copy is up and published (its run is in its hold step), or with its failure."""
    import time

    from twinsite.apps.checks import tail
    from twinsite.errors import RecoveryError, TestFailed
    from twinsite.proc import pid_alive, spawn
    from twinsite.state import evidence as kept

    place = t.place
    place.dir.mkdir(parents=True, exist_ok=True)
    place.background_log.unlink(missing_ok=True)
    began = time.time()
    argv = [sys.executable, "-m", "twinsite.cli.main", *(a for a in sys.argv[1:] if a != "--background")]
    pid = spawn(argv, pidfile=place.background_pid, logfile=place.background_log)
    ar = t.site.s.assured_recovery
    wait = (ar.start_timeout or float(t.site.s.application_settings.get("start_timeout", 60))) + 120
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        run = t.runner().load()
        if run is not None and run.created >= began - 1:
            if run.finished is not None:
                record = kept.find(place.evidence, run.id)
                if record is None:  # (its evidence is being written; or it was refused at its preflight: none)
                    if pid_alive(pid):
                        time.sleep(0.2)
                        continue
                    break
                raise (
                    TestFailed(record)
                    if record["result"] != "passed"
                    else RecoveryError(
                        f"the test {run.id} ended before its hold: {record.get('reason') or record['result']}"
                    )
                )
            if any(st.name == "hold" and st.state == "running" for st in run.steps):
                return _held(t, run.id, run.params, pid, hold)
        if not pid_alive(pid):
            break
        time.sleep(0.2)
    alive = pid_alive(pid)
    raise RecoveryError(
        f"the interactive test of {t.site.s.name} did not reach its hold"
        + (f" within {wait:.0f} s (it goes on: --end ends it)" if alive else "")
        + f"\n{tail(place.background_log)}",
        where=str(place.background_log),
    )


def _held(t: Test, run_id: str, params: Any, pid: int, hold: float) -> tuple[Any, str]:
    import time

    from twinsite.recovery.evidence import when

    name = params.get("test_name")
    out = {
        "changed": True,
        "id": run_id,
        "scenario": t.site.s.name,
        "host": t.site.host,
        "held": True,
        "until": when(time.time() + hold),
        "test_name": {"name": name["name"], "address": name["address"]} if name else None,
        "pid": pid,
    }
    where = f" as {name['name']} ({name['address']})" if name else ""
    return out, (
        f"the test copy of {t.site.s.name} is up on {t.site.host}{where} until {out['until']} (test {run_id});"
        f"\nend it sooner with: twinsite recover-test {t.site.s.name} --end"
    )


def _cleanup(t: Test) -> tuple[Any, str]:
    from twinsite.recovery import evidence
    from twinsite.recovery.running import recover

    done = recover(t)
    if done is None:
        busy = t.unfinished() is not None
        return {"changed": False, "running": busy}, (
            f"a test of {t.site.s.name} is running here: it cleans up itself" if busy else "no test was left here"
        )
    return {"changed": True, **done}, evidence.text(done)  # (its record says "interrupted")


def _plan(t: Test) -> tuple[Any, str]:
    from twinsite.ops.runner import Context
    from twinsite.recovery.steps import preflight

    s, plan = t.site.s, t.runner().plan()
    try:
        pre = preflight(t, Context("dry-run", {}, {}))
        ready, why = True, f"a test can start now (active {pre.active}, lag {pre.lag_seconds} s)"
    except TwinsiteError as exc:  # (a refusal is the answer here, not an error)
        ready, why = False, f"a test would be refused now: {exc}"
    lines = [f"assured-recovery test of {s.name} on {t.site.host}"]
    lines += [f"  {i + 1:>2}. {p['step']:<18} {p['does']}" for i, p in enumerate(plan)]
    lines.append(why)
    running = t.unfinished() is not None
    if running:
        lines.append(f"a test of {s.name} is running here (--end ends it)")
    answer = {"scenario": s.name, "steps": plan, "ready": ready, "why": why, "running": running, "changed": False}
    return answer, "\n".join(lines)


def _evidence(t: Test, report: str | None) -> tuple[Any, str]:
    from twinsite.recovery import evidence
    from twinsite.state import evidence as kept

    if report is None:
        records = kept.history(t.place.evidence)
        return {"scenario": t.site.s.name, "host": t.site.host, "tests": records}, evidence.history_text(records)
    found = kept.find(t.place.evidence, report or None)
    if found is None:
        raise ConfigError(f"no assured-recovery test {report or ''} of {t.site.s.name} here".replace("  ", " "))
    return found, evidence.text(found)

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
    if args.history or args.report is not None:
        return _evidence(t, args.report)
    if args.cleanup:
        return _cleanup(t)
    if args.dry_run:
        return _plan(t)

    def progress(st: Any) -> None:
        if not args.json:
            secs = f"{st.seconds:.2f} s" if st.seconds is not None else ""
            brief = st.result.get("skipped") or st.result.get("note") or (st.error or "")
            print(f"  {st.state:<7} {st.name:<18} {secs:>9}  {brief}".rstrip(), file=sys.stderr, flush=True)

    if not args.json:
        print(f"twinsite recover-test {s.name} on {t.site.host}", file=sys.stderr)
    record = run_test(t, on_step=progress)
    if record["result"] != "passed":
        if not args.json:
            print(evidence.text(record), file=sys.stderr)
        raise TestFailed(record)
    return {"changed": True, **record}, evidence.text(record)


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
    return {"scenario": s.name, "steps": plan, "ready": ready, "why": why, "changed": False}, "\n".join(lines)


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

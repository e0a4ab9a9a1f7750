"""The report of a switchover (or switch-back): what each step did and took, the RTO and the RPO.

Written as JSON and as text (state.reports) when the run ends, and also when it fails (then with the failed
step and its error). ``twinsite switchover SCENARIO --report`` prints the newest; ``--report ID`` another.

* **RTO**: ``outage_seconds`` runs from when users lost the application (planned: the stop on the old
  active host; unplanned: the failure, which is when the old host was last heard, or the first missed
  monitoring round, or the start of the switchover when nothing else is known) to when the users' side
  was verified; ``switchover_seconds`` is the run itself, and ``application_seconds`` the application's
  own start and checks within it.
* **RPO**: planned, 0 (the drain proved equal trees); unplanned, the time from the last change applied
  here (its source time on the old host) to the failure: changes made in that window are not here.
"""

from __future__ import annotations

import json
from typing import Any

from twinsite.clock import iso
from twinsite.ops.runner import report
from twinsite.state.runs import RunState


def summarize(run: RunState, scenario: str, host: str) -> dict[str, Any]:
    base = report(run)
    steps = {s.name: s for s in run.steps}
    res = run.results
    pre, promote = res.get("preflight", {}), res.get("promote", {})
    mode = pre.get("mode")

    def end(name: str) -> float | None:
        st = steps.get(name)
        return st.ended if st and st.state == "done" else None

    def start(name: str) -> float | None:
        st = steps.get(name)
        return st.started if st else None

    users_back = end("verify-users") if "skipped" not in res.get("verify-users", {"skipped": 1}) else end("redirect")
    lost_at = (
        start("stop-application")
        if mode == "planned"
        else (promote.get("failure_at") or pre.get("failure_at") or start("preflight"))
    )
    first = start(next(iter(steps)))
    app = [t for n in ("start-application", "check-application") if n in steps and (t := steps[n].seconds)]
    rto = {
        "outage_seconds": round(users_back - lost_at, 3) if users_back and lost_at else None,
        "outage_from": iso(lost_at),
        "users_back_at": iso(users_back),
        "switchover_seconds": round(max(s.ended or 0 for s in run.steps) - first, 3) if first else None,
        "application_seconds": round(sum(app), 3) if app else None,
    }
    rpo = {
        "seconds": promote.get("rpo_seconds"),
        "last_applied_at": iso(promote.get("last_applied_at")),
        "failure_at": iso(promote.get("failure_at")),
        "proof": "equal tree digests after the drain" if mode == "planned" and "drain" in res else None,
    }
    failed = [s for s in run.steps if s.state == "failed"]
    return {
        "id": run.id,
        "kind": run.kind,
        "scenario": scenario,
        "host": host,
        "mode": mode,
        "from": pre.get("old_active") or res.get("find-active", {}).get("active"),
        "to": pre.get("new_active") or (host if "preflight" not in steps else None),
        "epoch": pre.get("epoch") or res.get("find-active", {}).get("epoch"),
        "finished": run.finished is not None,
        "result": "done" if run.finished else ("failed at " + failed[0].name if failed else "interrupted"),
        "error": failed[0].error if failed else None,
        "started_at": iso(run.created),
        "started_ts": run.created,
        "ended_ts": max((st.ended or 0.0 for st in run.steps), default=0.0) or None,
        "rto": rto,
        "rpo": rpo,
        "bookmark": res.get("bookmark", {}).get("bookmark"),
        "checks": res.get("check-application", {}).get("checks"),
        "redirect": res.get("redirect", {}).get("methods"),
        "verify": res.get("verify-users"),
        "set_aside": res.get("set-aside"),
        "steps": base["steps"],
    }


def text(r: dict[str, Any]) -> str:
    lines = [
        f"{r['kind']} {r['id']} of {r['scenario']}: {r['from']} -> {r['to']} ({r['mode']}), epoch {r['epoch']}: "
        f"{r['result'].upper()}",
    ]
    if r["error"]:
        lines.append(f"  error: {r['error']}")
    lines.append(f"  {'STEP':<19}{'STATE':<9}{'START':<26}{'SECONDS':>8}  RESULT")
    for s in r["steps"]:
        secs = f"{s['seconds']:.2f}" if s["seconds"] is not None else "-"
        brief = s["result"].get("skipped") or s["result"].get("note") or ""
        lines.append(f"  {s['step']:<19}{s['state']:<9}{iso(s['started']) or '-':<26}{secs:>8}  {brief[:70]}")
    rto, rpo = r["rto"], r["rpo"]
    if rto["outage_seconds"] is not None:
        lines.append(
            f"  RTO: users without the application for {rto['outage_seconds']:.2f} s "
            f"({rto['outage_from']} to {rto['users_back_at']}); the switchover took {rto['switchover_seconds']:.2f} s, "
            f"the application's start and checks {rto['application_seconds'] or 0:.2f} s of it"
        )
    if rpo["seconds"] is not None:
        lines.append(
            "  RPO: 0 s, no change lost (" + str(rpo["proof"]) + ")"
            if r["mode"] == "planned"
            else f"  RPO: {rpo['seconds']:.2f} s: changes made on {r['from']} between {rpo['last_applied_at']} "
            f"(the last applied here) and the failure at {rpo['failure_at']} are not on {r['to']}"
        )
    if r.get("bookmark"):
        lines.append(f"  bookmark: {r['bookmark']} (the data the application started from)")
    for m in r.get("redirect") or []:
        lines.append(f"  redirect {m['type']}: " + json.dumps({k: v for k, v in m.items() if k != "type"}))
    if r.get("set_aside") and r["set_aside"].get("paths"):
        sa = r["set_aside"]
        lines.append(f"  set aside: {sa['paths']} path(s), {sa['bytes']} bytes in {sa['directory']}")
    return "\n".join(lines)

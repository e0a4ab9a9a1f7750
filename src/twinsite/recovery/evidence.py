"""The evidence of assured-recovery tests: one JSON record per test, kept by state.evidence.

A record says what was tested (each root's replica ``seq`` and the source time of its last change, so the
age of the tested data: the real RPO at that moment), how long each step took (the time to a healthy
application: the real RTO), every check with its output, each root's tree digest before and after the test,
the spool, the post-test actions, and the result: ``passed``, ``failed`` (with why) or ``interrupted`` (a
crash, recovered by the agent). ``twinsite recover-test SCENARIO --history`` lists them.
"""

from __future__ import annotations

from typing import Any

from twinsite.audit import describe
from twinsite.clock import iso
from twinsite.ops.runner import report
from twinsite.state.runs import RunState


def when(ts: float | None) -> str | None:
    """Evidence times: to the second (the history table's width)."""
    return iso(ts, "seconds")


def summarize(run: RunState, *, scenario: str, host: str, result: str, reason: str | None) -> dict[str, Any]:
    """The record of a test from its run state (whatever step it reached)."""
    rep = report(run)
    res = run.results
    spool, check = res.get("spool", {}), res.get("check-application", {})
    steps = {s.name: s for s in run.steps}
    start, healthy = steps["start-application"], steps["check-application"]
    rto = (
        round(healthy.ended - start.started, 3)
        if start.started and healthy.ended and healthy.state == "done" and check.get("ok")
        else None
    )
    before = {d["root"]: d["digest"] for d in spool.get("digests", [])}
    after = {d["root"]: d["digest"] for d in res.get("unmount", {}).get("digests", [])}
    return {
        "id": run.id,
        "scenario": scenario,
        "host": host,
        "scheduled": bool(run.params.get("scheduled")),
        "result": result,
        "reason": reason,
        "started": when(run.created),
        "started_ts": run.created,
        "ended": when(run.finished or max((s.ended or 0.0 for s in run.steps), default=0.0)),
        "seconds": rep["seconds"],
        "tested": spool.get("tested", []),
        "rto_seconds": rto,
        "checks": check.get("checks", []),
        "digests": [
            {"root": root, "before": d, "after": after.get(root), "equal": after.get(root) == d}
            for root, d in before.items()
        ],
        "spool": res.get("apply-spool", {}),
        "actions": res.get("after-pass", {}).get("actions", []),
        "bookmark": res.get("bookmark", {}).get("bookmark"),
        "who": run.params.get("who"),
        "hold": res.get("hold") if "requested_seconds" in res.get("hold", {}) else None,
        "steps": [
            {"step": s["step"], "state": s["state"], "seconds": s["seconds"], "error": s["error"]} for s in rep["steps"]
        ],
    }


def history_text(records: list[dict[str, Any]]) -> str:
    if not records:
        return "no assured-recovery test has run here"
    lines = [f"{'started (UTC)':<26}{'id':<14}{'result':<13}{'data age':>10}{'RTO':>9}{'took':>9}  reason"]
    for r in records:
        ages = [t["age_seconds"] for t in r["tested"] if t.get("age_seconds") is not None]
        age = f"{max(ages):.1f} s" if ages else "-"
        rto = f"{r['rto_seconds']:.1f} s" if r.get("rto_seconds") is not None else "-"
        took = f"{r['seconds']:.1f} s" if r.get("seconds") is not None else "-"
        started, reason = r["started"] or "-", r.get("reason") or ""
        lines.append(f"{started:<26}{r['id']:<14}{r['result']:<13}{age:>10}{rto:>9}{took:>9}  {reason}")
    return "\n".join(lines)


def text(r: dict[str, Any]) -> str:
    """One record for people."""
    lines = [f"assured-recovery test {r['id']} of {r['scenario']} on {r['host']}: {r['result'].upper()}"]
    if r.get("reason"):
        lines.append(f"  why: {r['reason']}")
    for t in r["tested"]:
        lines.append(f"  tested {t['root']}: seq {t['seq']}, data from {t['time']} (age {t['age_seconds']} s)")
    if r.get("rto_seconds") is not None:
        lines.append(f"  time to a healthy application (RTO): {r['rto_seconds']} s")
    lines += _who_and_hold(r)
    for c in r["checks"]:
        lines.append(f"  check {'ok  ' if c['ok'] else 'FAIL'} {c['name']} ({c['seconds']} s): {c['output'][-160:]}")
    for d in r["digests"]:
        same = "unchanged" if d["equal"] else "CHANGED"
        lines.append(f"  replica {d['root']}: digest {d['before']} before, {d['after']} after: {same}")
    sp = r.get("spool") or {}
    if sp:
        lines.append(
            f"  spool: {sp.get('records', 0)} record(s), {sp.get('bytes', 0)} bytes kept during the test; "
            + ("applied" if sp.get("applied") else "not applied yet (it is when replication next connects)")
        )
    for a in r["actions"]:
        lines.append(f"  after: {a['type']} {'ok' if a.get('ok') else 'FAILED'}: {a.get('detail', '')}")
    for s in r["steps"]:
        secs = f"{s['seconds']:.3f} s" if s["seconds"] is not None else "-"
        lines.append(f"    {s['state']:<8}{s['step']:<19}{secs:>10}  {s['error'] or ''}".rstrip())
    return "\n".join(lines)


def _who_and_hold(r: dict[str, Any]) -> list[str]:
    lines = [f"  asked for by {describe(r['who'])}"] if r.get("who") else []
    h = r.get("hold")
    if h:
        lines.append(f"  held for testers {h['held_seconds']:.0f} s of {h['requested_seconds']:.0f} s: {h['ended']}")
        x = h.get("exposed")
        if x:
            gone = "removed" if x.get("removed") else f"NOT removed ({x.get('error')})"
            lines.append(f"  test name {x['name']} -> {x['address']}: {gone}")
    return lines

"""``twinsite report``: the site's history over a period, per scenario, from the hosts' own records.

Each host gives its ``twinsite history`` (agent.history: its minute samples, the switchovers run there, the
tests run there, its alerts and the changes made there, with who asked); this puts them together:

* **RPO**: the scenario's ``rpo_target`` against the lag the active host measured, minute by minute: the
  minutes observed, the time over the target (whole minutes, by each minute's worst look) and the worst lag;
* **tests**: run, passed, failed, and the longest time without a passing test (from the period's start to the
  first pass, between two passes, from the last pass to now);
* **switchovers**: every one of the period with its RTO (users' outage) and RPO, and who asked;
* **alerts** by kind and severity; **changes**, each with who asked and from where (twinsite.audit).

A host that does not answer is named, and what only it holds is missing from the figures (the report says so).
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Sequence
from typing import Any

from twinsite.audit import describe
from twinsite.clock import iso
from twinsite.plans.hosts import Hosts
from twinsite.site.status import ask
from twinsite.sync.progress import human_seconds

FORMATS = ("md", "json", "html")


def gather(
    hosts: Hosts,
    names: Sequence[str],
    declared: Sequence[dict[str, Any]],
    *,
    seconds: float,
    timeout: float,
    buckets: int,
    now: float | None = None,
) -> dict[str, Any]:
    """The report of the last ``seconds``: every host of ``names`` asked at once for its history (site.status.ask
    of ``twinsite history``), then put together (:func:`merge`)."""
    now = time.time() if now is None else now
    args = ["history", "--since", f"{seconds:.0f}s", "--buckets", str(buckets)]
    return merge(ask(hosts, names, timeout=timeout, args=args), declared, since=now - seconds, now=now)


def merge(
    answers: dict[str, dict[str, Any]], declared: Sequence[dict[str, Any]], *, since: float, now: float | None = None
) -> dict[str, Any]:
    """The report from the hosts' history summaries (site.status.ask of ``history``) and the inventory's
    scenarios (the order of the report; a scenario only on a host comes after them)."""
    now = time.time() if now is None else now
    parts: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for host, a in answers.items():
        for s in (a["view"] or {}).get("scenarios", []):
            parts.setdefault(s["scenario"], []).append((host, s))
    names = [s["name"] for s in declared if "name" in s]
    names += sorted(n for n in parts if n not in names)
    known = {s.get("name") for s in declared}
    return {
        "generated_at": round(now, 3),
        "since": round(since, 3),
        "period_seconds": round(now - since, 3),
        "hosts": [
            {"host": h, "answered": a["view"] is not None, "error": a["error"], "seconds": a["seconds"]}
            for h, a in answers.items()
        ],
        "scenarios": [_scenario(n, n in known, parts.get(n, []), since, now) for n in names],
    }


def _scenario(
    name: str, declared: bool, parts: list[tuple[str, dict[str, Any]]], since: float, now: float
) -> dict[str, Any]:
    changes = sorted(
        ({**c, "host": c.get("host") or h, "who_text": describe(c.get("who"))} for h, p in parts for c in p["changes"]),
        key=lambda c: c.get("at") or "",
    )
    asked = {c["ref"]: c["who_text"] for c in changes if c.get("ref")}
    switchovers = _unique(
        {**o, "host": h, "asked_by": asked.get(o["id"], "unknown")} for h, p in parts for o in p["switchovers"]
    )
    tests = _unique(
        {**t, "host": h, "asked_by": "the agent's schedule" if t.get("scheduled") else asked.get(t["id"], "unknown")}
        for h, p in parts
        for t in p["tests"]
    )
    target = next((p["rpo_target_seconds"] for _, p in parts if p.get("rpo_target_seconds") is not None), None)
    observed = sum(p["lag"]["observed_seconds"] for _, p in parts)
    over = sum(p["lag"]["over_target_seconds"] or 0.0 for _, p in parts) if target is not None else None
    worst = [p["lag"]["max_seconds"] for _, p in parts if p["lag"]["max_seconds"] is not None]
    alerts = sorted((a | {"host": h} for h, p in parts for a in p["alerts"]), key=lambda a: a.get("at") or "")
    by_kind: dict[str, dict[str, int]] = {}
    for a in alerts:
        per = by_kind.setdefault(str(a.get("kind")), {})
        per[str(a.get("severity"))] = per.get(str(a.get("severity")), 0) + 1
    return {
        "scenario": name,
        "declared": declared,
        "hosts": [h for h, _ in parts],
        "rpo_target_seconds": target,
        "lag": {
            "observed_seconds": observed,
            "over_target_seconds": over,
            "over_target_share": round(over / observed, 6) if over is not None and observed else None,
            "max_seconds": max(worst, default=None),
        },
        "series": sorted((b | {"host": h} for h, p in parts for b in p["series"]), key=lambda b: b["ts"]),
        "tests": {
            "run": len(tests),
            "passed": sum(1 for t in tests if t["result"] == "passed"),
            "failed": sum(1 for t in tests if t["result"] != "passed"),
            **longest_gap([t["ended_ts"] for t in tests if t["result"] == "passed"], since, now),
            "list": tests,
        },
        "switchovers": switchovers,
        "alerts": {"total": len(alerts), "by_kind": by_kind, "list": alerts[-100:]},
        "changes": changes,
        "bookmarks": sorted((b | {"host": h} for h, p in parts for b in p["bookmarks"]), key=lambda b: b["ts"] or 0),
        "history_bytes": {h: p["history_bytes"] for h, p in parts},
    }


def _unique(items: Any) -> list[dict[str, Any]]:
    """By id, oldest first (a record is on the one host that ran it; a copy seen twice counts once)."""
    seen: dict[str, dict[str, Any]] = {}
    for it in items:
        seen.setdefault(it["id"], it)
    return sorted(seen.values(), key=lambda it: it.get("started_ts") or 0)


def longest_gap(passes: Sequence[float], since: float, now: float) -> dict[str, Any]:
    """The longest time without a passing test: from ``since`` to the first pass, between passes, to ``now``."""
    marks = [since, *sorted(p for p in passes if since <= p <= now), now]
    gap, start = max((b - a, a) for a, b in itertools.pairwise(marks))
    return {"longest_gap_seconds": round(gap, 3), "longest_gap_from": iso(start), "longest_gap_to": iso(start + gap)}


# -- text forms -------------------------------------------------------------------------------------------------
def markdown(r: dict[str, Any]) -> str:
    lines = [f"# twinsite report: {iso(r['since'], 'seconds')} to {iso(r['generated_at'], 'seconds')}", ""]
    lines += [f"- **{h['host']} did not answer** ({h['error']}): {MISSING}" for h in silent(r)]
    for s in r["scenarios"]:
        lines += ["", f"## {s['scenario']}", "", *(f"- {f}" for f in facts(s))]
        for _title, none, head, rows in tables(s):
            lines.append("")
            if not rows:
                lines.append(f"({none})")
                continue
            cells = [[str("-" if v is None else v).replace("|", "\\|") for v in row] for row in rows]
            lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            lines += ["| " + " | ".join(c) + " |" for c in cells]
    return "\n".join(lines) + "\n"


MISSING = "what only it holds is missing from the figures"


def silent(r: dict[str, Any]) -> list[dict[str, Any]]:
    """The hosts that did not answer."""
    return [h for h in r["hosts"] if not h["answered"]]


def tables(s: dict[str, Any]) -> list[tuple[str, str, list[str], list[list[Any]]]]:
    """The scenario's tables (title, what to say when empty, head, rows): the markdown's and the HTML's."""
    hs = human_seconds
    return [
        (
            "Switchovers",
            "no switchovers",
            ["switchover", "kind", "from → to", "result", "RTO", "RPO", "asked by"],
            [
                [o["id"], f"{o['kind']} ({o['mode']})", f"{o['from']} → {o['to']}", o["result"],
                 hs(o["rto_seconds"]), hs(o["rpo_seconds"]), o["asked_by"]]
                for o in s["switchovers"]
            ],
        ),
        (
            "Assured-recovery tests",
            "no tests",
            ["test", "on", "started", "result", "RTO", "data age", "asked by"],
            [
                [t["id"], t["host"], t.get("started"), t["result"], hs(t.get("rto_seconds")),
                 hs(t.get("data_age_seconds")), t["asked_by"]]
                for t in s["tests"]["list"]
            ],
        ),
        (
            "Alerts by kind",
            "no alerts",
            ["alert kind", "severities"],
            [[k, ", ".join(f"{n} {sev}" for sev, n in sorted(v.items()))]
             for k, v in sorted(s["alerts"]["by_kind"].items())],
        ),
        (
            "Changes",
            "no changes",
            ["when", "on", "change", "outcome", "who asked"],
            [[c.get("at"), c["host"], c.get("action"), c.get("outcome"), c["who_text"]] for c in s["changes"]],
        ),
    ]  # fmt: skip


def facts(s: dict[str, Any]) -> list[str]:
    """The scenario's figures as sentences (the markdown's and the HTML's)."""
    lag, t = s["lag"], s["tests"]
    target = s["rpo_target_seconds"]
    if target is None:
        rpo = f"RPO target: none set (rpo_target); worst lag {human_seconds(lag['max_seconds'])}"
    else:
        share = lag["over_target_share"]
        rpo = (
            f"RPO target {human_seconds(target)}: lag over it for {human_seconds(lag['over_target_seconds'])}"
            f" of {human_seconds(lag['observed_seconds'])} observed"
            + (f" ({share * 100:.2f}%)" if share is not None else "")
            + f"; worst lag {human_seconds(lag['max_seconds'])}"
        )
    return [
        rpo,
        f"tests: {t['run']} run, {t['passed']} passed, {t['failed']} failed; longest without a passing test "
        f"{human_seconds(t['longest_gap_seconds'])} ({t['longest_gap_from']} to {t['longest_gap_to']})",
        f"switchovers: {len(s['switchovers'])}; alerts: {s['alerts']['total']}; changes: {len(s['changes'])}",
    ]


def as_json(r: dict[str, Any]) -> str:
    return json.dumps(r, indent=1, sort_keys=True)

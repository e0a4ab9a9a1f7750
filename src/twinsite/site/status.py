"""The whole site at a glance: every host's ``twinsite status`` asked at once from the controller, over the SSH
the playbooks use, each within a timeout, and put together per scenario (schemas/site-status.schema.json).

A host that does not answer is a row saying so, never a wait: the other hosts' answers still make the table.
The active host's answer gives each standby's replication (state, lag, backlog); each standby's own answer
gives what it holds (applied seq, last complete point, rewind window) and its tests. With the active host
unreachable, the standbys' views say who was active and at which epoch.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from twinsite.errors import HostUnreachableError, TwinsiteError
from twinsite.plans.hosts import Hosts


def ask(
    hosts: Hosts, names: Sequence[str], *, timeout: float, args: Sequence[str] = ("status",)
) -> dict[str, dict[str, Any]]:
    """``twinsite ARGS`` (``status``) on each of ``names`` at once; per host its answer, or why there is none."""

    def one(name: str) -> dict[str, Any]:
        t0 = time.monotonic()
        try:
            view = hosts.twinsite(name, list(args), timeout=timeout)
            return {"reachable": True, "error": None, "view": view, "seconds": round(time.monotonic() - t0, 3)}
        except HostUnreachableError as exc:
            return {"reachable": False, "error": exc.message, "view": None, "seconds": round(time.monotonic() - t0, 3)}
        except TwinsiteError as exc:  # (reached, but its twinsite failed, or it did not answer in time)
            reached = "did not end within" not in exc.message
            out = {"reachable": reached, "error": exc.message, "view": None}
            return out | {"seconds": round(time.monotonic() - t0, 3)}

    with ThreadPoolExecutor(max_workers=max(1, min(32, len(names)))) as pool:
        return dict(zip(names, pool.map(one, names), strict=True))


def merge(
    answers: dict[str, dict[str, Any]], declared: Sequence[dict[str, Any]], *, timeout: float, now: float | None = None
) -> dict[str, Any]:
    """The site's view from the hosts' answers (``ask``) and the inventory's scenarios."""
    now = time.time() if now is None else now
    rows: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for host, a in answers.items():
        for r in (a["view"] or {}).get("scenarios", []):
            rows.setdefault(r["scenario"], {}).setdefault(host, []).append(r)
    names = [s["name"] for s in declared if "name" in s]
    names += sorted(n for n in rows if n not in names)
    by_name = {s.get("name"): s for s in declared}
    return {
        "generated_at": round(now, 3),
        "timeout_seconds": timeout,
        "hosts": [
            {
                "host": h,
                "reachable": a["reachable"],
                "answered": a["view"] is not None,
                "error": a["error"],
                "seconds": a["seconds"],
                "version": (a["view"] or {}).get("version"),
            }
            for h, a in answers.items()
        ],
        "scenarios": [_scenario(n, by_name.get(n, {}), rows.get(n, {}), answers) for n in names],
    }


def _scenario(
    name: str, decl: dict[str, Any], seen: dict[str, list[dict[str, Any]]], answers: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    every = [r for rs in seen.values() for r in rs]
    newest = max(every, key=lambda r: r["epoch"], default=None)
    active = str(newest["active"] if newest else decl.get("master", ""))
    hosts = [decl.get("master"), *decl.get("replicas", [])] if decl else sorted(seen)
    answered = active in answers and answers[active]["view"] is not None
    sent = {(r["root"], r.get("replica")): r for r in seen.get(active, []) if r["role"] == "active"}
    standbys = []
    for host in [h for h in hosts if h and h != active]:
        own = {r["root"]: r for r in seen.get(host, []) if r["role"] != "active"}
        roots = sorted({root for root, replica in sent if replica == host} | set(own)) or [None]
        for root in roots:
            standbys.append(_standby(host, root, sent.get((root, host)), own.get(root), answers.get(host), answered))
    tests = [r["last_test"] for r in every if r.get("last_test")]
    open_kinds = sorted({k for r in every for k in r["alerts"]["open_kinds"]})
    firsts = {h: rs[0] for h, rs in seen.items()}  # (the alert counts are per host, given on each of its rows)
    return {
        "scenario": name,
        "declared": bool(decl),
        "active": active,
        "epoch": newest["epoch"] if newest else None,
        "active_answered": answered,
        "standbys": standbys,
        "last_test": max(tests, key=lambda t: t["ended_ts"], default=None),
        "alerts": {
            "open": len(open_kinds),
            "open_kinds": open_kinds,
            "recent": sum(r["alerts"]["recent"] for r in firsts.values()),
        },
        "problems": sorted({f"{h}: {p}" for h, rs in seen.items() for r in rs for p in r.get("problems", [])}),
    }


def _standby(
    host: str,
    root: str | None,
    sent: dict[str, Any] | None,
    own: dict[str, Any] | None,
    answer: dict[str, Any] | None,
    active_answered: bool,
) -> dict[str, Any]:
    """One standby's root: the sender's view of it (from the active host) and its own."""
    if sent is not None:
        state = sent["state"]
    elif not active_answered:
        state = "unknown (active host not answering)"
    else:
        state = "not replicated here" if own is None else own["state"]
    rewind = (own or {}).get("rewind")
    point = (own or {}).get("point")
    return {
        "host": host,
        "root": root,
        "answered": bool(answer and answer["view"] is not None),
        "state": state,
        "lag_seconds": sent.get("lag_seconds") if sent else None,
        "backlog_bytes": sent.get("backlog_bytes") if sent else None,
        "last_error": sent.get("last_error") if sent else None,
        "applied_seq": own.get("applied_seq") if own else None,
        "point_age_seconds": point["age_seconds"] if point else (sent or {}).get("point_age_seconds"),
        "rewind_window_seconds": rewind["window_seconds"] if rewind else None,
        "bookmarks": rewind["bookmarks"] if rewind else None,
        "rewound_to": rewind["rewound_to"] if rewind else None,
    }

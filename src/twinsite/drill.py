"""The drill's report: each phase of ``playbooks/drill.yml``, what it measured, and whether the drill passed.

The playbook records every phase as it runs (its name, when it started and ended, whether it passed, the
figures the modules measured, the error) and hands them over as one JSON document::

    {"id": "20261202T031500Z", "planned": ["lab", "provision", ...], "phases": [{"name": "lab", "ok": true,
     "started": 1764645300.1, "ended": 1764645300.9, "figures": {...}, "error": null}, ...]}

``twinsite drill-report FILE --out-dir DIR`` writes it as ``drill-<id>.json`` and ``drill-<id>.md`` and prints
it. The figures are the phases' own measurements (a switchover's RTO and RPO, a test's time to a healthy
application, a rewind's files and bytes); the report only arranges them. A planned phase that did not run
(the drill stopped at a failure) is listed as not run, and the drill as failed.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from twinsite.clock import iso
from twinsite.durable import write_json, write_text
from twinsite.errors import ConfigError

#: the headline figures, from the phase that measures them: (label, phase, figure)
HEADLINE = (
    ("RPO of the failover (from the data it started on to the failure)", "failover", "rpo_seconds"),
    ("RTO of the failover (users without the application)", "failover", "rto_seconds"),
    ("age of the data the assured-recovery test started from", "assured-recovery", "data_age_seconds"),
    ("time to a healthy application in that test", "assured-recovery", "rto_seconds"),
    ("RTO of the switch-back", "switchback", "rto_seconds"),
)


def _phase(raw: Any, i: int) -> dict[str, Any]:
    where = f"phases[{i}]"
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"]:
        raise ConfigError(f"{where}: a phase is a mapping with a name", where=where)
    if not isinstance(raw.get("ok"), bool):
        raise ConfigError(f"{where} ({raw['name']}): ok must be true or false, not {raw.get('ok')!r}", where=where)
    times = {k: raw.get(k) for k in ("started", "ended")}
    for k, v in times.items():
        if not isinstance(v, int | float) or isinstance(v, bool):
            raise ConfigError(f"{where} ({raw['name']}): {k} must be a Unix time, not {v!r}", where=where)
    figures = raw.get("figures") or {}
    if not isinstance(figures, dict):
        raise ConfigError(f"{where} ({raw['name']}): figures must be a mapping", where=where)
    return {
        "name": raw["name"],
        "title": str(raw.get("title") or raw["name"]),
        "ok": raw["ok"],
        "started_at": iso(times["started"], "seconds"),
        "seconds": round(float(times["ended"]) - float(times["started"]), 3),  # type: ignore[arg-type]
        "figures": figures,
        "error": str(raw["error"]) if raw.get("error") else None,
    }


def build(doc: Any) -> dict[str, Any]:
    """The report of a drill from the phases its playbook recorded (refused, with the reason, when malformed)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("phases"), list):
        raise ConfigError("a drill record is a mapping with a list of phases")
    phases = [_phase(p, i) for i, p in enumerate(doc["phases"])]
    ran = {p["name"] for p in phases}
    not_run = [str(n) for n in doc.get("planned") or [] if n not in ran]
    figures = {p["name"]: p["figures"] for p in phases}
    headline = [
        {"label": label, "phase": phase, "figure": key, "value": figures[phase].get(key)}
        for label, phase, key in HEADLINE
        if phase in figures and figures[phase].get(key) is not None
    ]
    passed = bool(phases) and all(p["ok"] for p in phases) and not not_run
    first = min((p["started_at"] for p in phases if p["started_at"]), default=None)
    return {
        "id": str(doc.get("id") or dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")),
        "result": "passed" if passed else "failed",
        "started_at": first,
        "seconds": round(sum(p["seconds"] for p in phases), 3),
        "phases": phases,
        "not_run": not_run,
        "headline": headline,
    }


def _value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3f}".rstrip("0").rstrip(".") if abs(v) < 1000 else f"{v:.0f}"
    if isinstance(v, list | dict):
        return json.dumps(v, sort_keys=True)
    return str(v)


def _figures(f: dict[str, Any]) -> str:
    return "; ".join(f"{k}: {_value(v)}" for k, v in f.items())


def markdown(r: dict[str, Any]) -> str:
    lines = [
        f"# DR drill {r['id']}: {r['result'].upper()}",
        "",
        f"Started {r['started_at']}, {r['seconds']:.1f} s in all.",
        "",
    ]
    if r["headline"]:
        lines += ["| measured | value |", "|---|---|"]
        lines += [f"| {h['label']} | {_value(h['value'])} s |" for h in r["headline"]]
        lines.append("")
    lines += ["| phase | result | seconds | figures |", "|---|---|---:|---|"]
    for p in r["phases"]:
        res = "pass" if p["ok"] else f"FAIL: {p['error'] or 'failed'}"
        lines.append(f"| {p['title']} | {res} | {p['seconds']:.1f} | {_figures(p['figures']).replace('|', '/')} |")
    lines += [f"| {n} | not run | | |" for n in r["not_run"]]
    return "\n".join(lines) + "\n"


def text(r: dict[str, Any]) -> str:
    lines = [f"drill {r['id']}: {r['result'].upper()} ({r['seconds']:.1f} s)"]
    for p in r["phases"]:
        lines.append(f"  {'pass' if p['ok'] else 'FAIL':<5}{p['title']:<46}{p['seconds']:>7.1f} s")
        if p["figures"]:
            lines.append(f"       {_figures(p['figures'])}")
        if p["error"]:
            lines.append(f"       error: {p['error']}")
    lines += [f"  {'-':<5}{n}: not run" for n in r["not_run"]]
    lines += [f"  {h['label']}: {_value(h['value'])} s" for h in r["headline"]]
    return "\n".join(lines)


def write(r: dict[str, Any], out_dir: Path) -> dict[str, str]:
    """``drill-<id>.json`` and ``drill-<id>.md`` in ``out_dir`` (durably); their paths."""
    paths = {"json": out_dir / f"drill-{r['id']}.json", "markdown": out_dir / f"drill-{r['id']}.md"}
    write_json(paths["json"], r)
    write_text(paths["markdown"], markdown(r))
    return {k: str(v) for k, v in paths.items()}

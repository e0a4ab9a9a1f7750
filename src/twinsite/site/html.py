"""HTML for people: the report's HTML form and the console's pages (site.console), rendered here on the server.

Plain HTML with the style inline and the charts as inline SVG drawn from the figures: a page needs nothing but
itself (no script, no font, no image, no CDN), so it works where the controller has no internet access, prints,
and can be mailed as one file. Every value is escaped.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from twinsite.clock import iso
from twinsite.site.report import MISSING, facts, silent, tables
from twinsite.sync.progress import human_bytes, human_seconds

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#f5f6f8}
header{background:#1d2330;color:#fff;padding:10px 20px;display:flex;gap:24px;align-items:baseline}
header a{color:#cfe0ff;text-decoration:none}header h1{font-size:17px;margin:0}
main{padding:16px 20px;max-width:1200px}
h2{font-size:16px;margin:22px 0 6px}h3{font-size:14px;margin:16px 0 4px}
table{border-collapse:collapse;background:#fff;margin:4px 0 10px;min-width:50%}
th,td{border:1px solid #d5d9e0;padding:3px 8px;text-align:left;vertical-align:top}th{background:#e9ecf1}
.ok{color:#176b2c;font-weight:600}.warn{color:#8a5a00;font-weight:600}.bad{color:#b3261e;font-weight:600}
.card{background:#fff;border:1px solid #d5d9e0;border-radius:6px;padding:8px 12px;margin:8px 0}
code,pre{background:#eef0f4;padding:1px 4px;border-radius:3px;font-size:13px}pre{padding:6px 8px;overflow:auto}
.muted{color:#5b6373}svg{background:#fff;border:1px solid #d5d9e0}
"""


def e(v: Any) -> str:
    return html.escape("-" if v is None else str(v), quote=True)


def page(title: str, body: str, *, nav: Sequence[tuple[str, str]] = (), note: str = "") -> str:
    links = "".join(f'<a href="{e(href)}">{e(text)}</a>' for href, text in nav)
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>'
        f'<meta name="viewport" content="width=device-width"><style>{STYLE}</style></head>'
        f"<body><header><h1>{e(title)}</h1>{links}<span class=muted>{e(note)}</span></header>"
        f"<main>{body}</main></body></html>"
    )


def table(
    head: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    none: str = "none",
    raw: int = -1,
    state: int = -1,
    ident: str = "",
) -> str:
    """A table (``ident``: its id); column ``raw`` holds HTML made here (a link), the others are escaped; column
    ``state`` is coloured by what it says."""
    if not rows:
        return f"<p class=muted>({e(none)})</p>"
    th = "".join(f"<th>{e(h)}</th>" for h in head)

    def cell(i: int, v: Any) -> str:
        kind = f' class="state {state_class(str(v))}"' if i == state else ""
        return f"<td{kind}>{v if i == raw else e(v)}</td>"

    body = "".join("<tr>" + "".join(cell(i, v) for i, v in enumerate(row)) + "</tr>" for row in rows)
    return f"<table{f' id={chr(34)}{e(ident)}{chr(34)}' if ident else ''}><tr>{th}</tr>{body}</table>"


def state_class(state: str | None) -> str:
    s = state or ""
    if s in ("replicating", "passed", "done", "standby") or s.startswith("in sync"):
        return "ok"
    if s.startswith(("unknown", "unreachable", "failed", "stale", "error", "degraded")):
        return "bad"
    return "warn"


def lag_chart(
    series: Sequence[dict[str, Any]], *, since: float, now: float, target: float | None, width: int = 900
) -> str:
    """The lag over the period (the worst of each slice) as an SVG line, the target as a dashed line."""
    height, pad = 180, 40
    points = [(b["ts"], b["lag"]) for b in series if b.get("lag") is not None]
    top = float(max([v for _, v in points] + [target or 0.0, 1.0])) * 1.15
    span = max(1.0, now - since)

    def x(ts: float) -> float:
        return pad + (width - 2 * pad) * (ts - since) / span

    def y(v: float) -> float:
        return height - pad - (height - 2 * pad) * v / top

    parts = [
        f'<svg class=chart role="img" aria-label="lag" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
        f'<line x1="{pad}" y1="{y(0):.1f}" x2="{width - pad}" y2="{y(0):.1f}" stroke="#8a93a3"/>',
        f'<text x="4" y="{y(top / 1.15):.1f}" font-size="11">{e(human_seconds(top / 1.15))}</text>',
        f'<text x="4" y="{y(0):.1f}" font-size="11">0</text>',
        f'<text x="{pad}" y="{height - 8}" font-size="11">{e(iso(since, "minutes"))}</text>',
        f'<text x="{width - pad}" y="{height - 8}" font-size="11" text-anchor="end">{e(iso(now, "minutes"))}</text>',
    ]
    if target is not None:
        parts.append(
            f'<line class=target x1="{pad}" y1="{y(target):.1f}" x2="{width - pad}" y2="{y(target):.1f}" '
            f'stroke="#b3261e" stroke-dasharray="5,4"/><text x="{width - pad}" y="{y(target) - 4:.1f}" '
            f'font-size="11" text-anchor="end" fill="#b3261e">RPO target {e(human_seconds(target))}</text>'
        )
    if points:
        line = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in points)
        parts.append(f'<polyline class=lag points="{line}" fill="none" stroke="#2458c6" stroke-width="1.5"/>')
    else:
        parts.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" class=muted>no lag measured</text>')
    return "".join(parts) + "</svg>"


def timeline(
    oldest: float | None, newest: float | None, marks: Sequence[dict[str, Any]], *, now: float, width: int = 900
) -> str:
    """The rewind window (oldest to newest point) on a time axis ending now, with each bookmark as a tick."""
    height, pad = 90, 40
    times = [t for t in (oldest, newest, *(m.get("ts") for m in marks)) if t]
    start = min(times, default=now - 3600.0)
    span = max(60.0, now - start) * 1.05

    def x(ts: float) -> float:
        return pad + (width - 2 * pad) * (ts - (now - span)) / span

    parts = [
        f'<svg class=timeline role="img" aria-label="rewind window" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
        f'<line x1="{pad}" y1="50" x2="{width - pad}" y2="50" stroke="#8a93a3"/>',
        f'<text x="{width - pad}" y="80" font-size="11" text-anchor="end">now {e(iso(now, "minutes"))}</text>',
    ]
    if oldest and newest:
        parts.append(
            f'<rect class=window x="{x(oldest):.1f}" y="40" width="{max(2.0, x(newest) - x(oldest)):.1f}" '
            f'height="20" fill="#9cc0ff"/><text x="{x(oldest):.1f}" y="80" font-size="11">'
            f"oldest {e(iso(oldest, 'minutes'))}</text>"
        )
    for i, m in enumerate(m for m in marks if m.get("ts")):
        label = 24 - 12 * (i % 2)  # (side by side bookmarks' names on two lines)
        parts.append(
            f'<line class=bookmark x1="{x(m["ts"]):.1f}" y1="{label + 4}" x2="{x(m["ts"]):.1f}" y2="62" '
            f'stroke="#b36b00" stroke-width="2"/><text x="{x(m["ts"]):.1f}" y="{label}" font-size="11" '
            f'text-anchor="start">{e(m["name"])}</text>'
        )
    return "".join(parts) + "</svg>"


def report_page(r: dict[str, Any], *, nav: Sequence[tuple[str, str]] = ()) -> str:
    """``twinsite report --format html``, and the console's report page."""
    title = f"twinsite report {iso(r['since'], 'minutes')} to {iso(r['generated_at'], 'minutes')}"
    return page(title, report_body(r), nav=nav)


def report_body(r: dict[str, Any]) -> str:
    body = [f"<p class=bad>{e(h['host'])} did not answer ({e(h['error'])}): {e(MISSING)}</p>" for h in silent(r)]
    for s in r["scenarios"]:
        body.append(f'<h2 id="{e(s["scenario"])}">{e(s["scenario"])}</h2>')
        body.append("<ul>" + "".join(f"<li>{e(f)}</li>" for f in facts(s)) + "</ul>")
        body.append(lag_chart(s["series"], since=r["since"], now=r["generated_at"], target=s["rpo_target_seconds"]))
        for title, none, head, rows in tables(s):
            body.append(f"<h3>{e(title)}</h3>" + table(head, rows, none=none))
        sizes = ", ".join(f"{h} {human_bytes(n)}" for h, n in s["history_bytes"].items())
        body.append(f"<p class=muted>history kept: {e(sizes)}</p>")
    return "".join(body)

"""The console's pages (site.console), rendered on the server from what it collected: the site status
(site.status), the hosts' recent history (the lag chart, the rewind window) and the period's report (site.report).

Read-only: a page describes, and shows the exact command of each action it describes (the playbooks act).
"""

from __future__ import annotations

import json
import shlex
import urllib.parse
from typing import Any

from twinsite.clock import iso
from twinsite.site.html import e, lag_chart, page, report_body, state_class, table, timeline
from twinsite.sync.progress import human_bytes, human_seconds

EVENTS = 40  # events on a scenario's page, the newest first
NAV = (("/", "overview"), ("/history", "switchovers and tests"), ("/report", "report"))


def link(href: str, text: str) -> str:
    return f'<a href="{e(href)}">{e(text)}</a>'


def scenario_href(name: str) -> str:
    return "/scenario/" + urllib.parse.quote(name, safe="")


def commands(lines: list[tuple[str, str]]) -> str:
    """What to run for each action, as the page's last card."""
    rows = "".join(f"<tr><td>{e(what)}</td><td><code>{e(cmd)}</code></td></tr>" for what, cmd in lines)
    return f'<div class="card commands"><h3>Commands</h3><table>{rows}</table></div>'


def _ansible(inventory: str, playbook: str, **extra: str) -> str:
    args = " ".join(f"-e {shlex.quote(f'{k}={v}')}" for k, v in extra.items())
    return f"ansible-playbook -i {shlex.quote(inventory)} playbooks/{playbook} {args}".rstrip()


def _note(snap: dict[str, Any]) -> str:
    status = snap.get("status")
    return f"collected {iso(status['generated_at'], 'seconds')}" if status else "collecting..."


def overview(snap: dict[str, Any], inventory: str) -> str:
    view = snap.get("status")
    if view is None:
        return page("twinsite site", "<p>Asking the hosts...</p>", nav=NAV, note=_note(snap))
    hosts = table(
        ["host", "answer", "seconds", "twinsite"],
        [[h["host"], "answered" if h["answered"] else f"NOT ANSWERING: {h['error']}", h["seconds"], h["version"]]
         for h in view["hosts"]],
        ident="hosts",
    )  # fmt: skip
    rows = []
    for s in view["scenarios"]:
        test = s["last_test"]
        tested = f"{test['result']} {human_seconds(test['age_seconds'])} ago" if test else "never"
        kinds = ", ".join(s["alerts"]["open_kinds"])
        alerts = f"{s['alerts']['open']} open" + (f" ({kinds})" if kinds else "")
        elsewhere = "" if s["declared"] else " <span class=muted>(not in the inventory)</span>"
        for b in s["standbys"] or [{"host": "-", "state": "no standby", "root": None}]:
            rows.append(
                "<tr>"
                f"<td class=scenario>{link(scenario_href(s['scenario']), s['scenario'])}{elsewhere}</td>"
                f"<td class=active>{e(s['active'])}{'' if s['active_answered'] else ' (NOT ANSWERING)'}</td>"
                f"<td>{e(s['epoch'])}</td><td>{e(b['host'])}</td><td>{e(b.get('root'))}</td>"
                f'<td class="state {state_class(b["state"])}">{e(b["state"])}</td>'
                f"<td class=lag>{e(human_seconds(b.get('lag_seconds')))}</td>"
                f"<td>{e(human_bytes(b['backlog_bytes']) if b.get('backlog_bytes') is not None else None)}</td>"
                f"<td>{e(human_seconds(b.get('point_age_seconds')))}</td>"
                f"<td>{e(human_seconds(b.get('rewind_window_seconds')))}</td>"
                f'<td class="{state_class(test["result"]) if test else "warn"}">{e(tested)}</td>'
                f'<td class="{"bad" if s["alerts"]["open"] else "ok"}">{e(alerts)}</td>'
                "</tr>"
            )
    head = ["scenario", "active", "epoch", "standby", "root", "state", "lag", "backlog", "point age", "rewind",
            "last test", "alerts"]  # fmt: skip
    th = "".join(f"<th>{e(h)}</th>" for h in head)
    body = (
        f'<h2>Scenarios</h2><table id="scenarios"><tr>{th}</tr>{"".join(rows)}</table>'
        f"<h2>Hosts</h2>{hosts}"
        + commands(
            [
                ("the same from a shell", f"twinsite site status -i {shlex.quote(inventory)}"),
                ("switch a scenario over to its standby", _ansible(inventory, "switchover.yml", scenario="NAME")),
                ("bring the configuration to what the inventory says", _ansible(inventory, "configure.yml")),
            ]
        )
    )
    return page("twinsite site", body, nav=NAV, note=_note(snap))


def scenario(snap: dict[str, Any], name: str, inventory: str) -> str | None:
    """The scenario's page (None: no such scenario)."""
    view, recent, month = snap.get("status"), snap.get("recent"), snap.get("month")
    s = next((x for x in (view or {}).get("scenarios", []) if x["scenario"] == name), None)
    if s is None:
        return None
    r = next((x for x in (recent or {}).get("scenarios", []) if x["scenario"] == name), None)
    m = next((x for x in (month or {}).get("scenarios", []) if x["scenario"] == name), None)
    standbys = table(
        ["standby", "root", "state", "lag", "backlog", "applied seq", "point age", "rewind window", "bookmarks",
         "last error"],
        [[b["host"], b["root"], b["state"], human_seconds(b["lag_seconds"]),
          human_bytes(b["backlog_bytes"]) if b["backlog_bytes"] is not None else None, b["applied_seq"],
          human_seconds(b["point_age_seconds"]), human_seconds(b["rewind_window_seconds"]), b["bookmarks"],
          b["last_error"]] for b in s["standbys"]],
        none="no standby",
        state=2,
        ident="standbys",
    )  # fmt: skip
    test = s["last_test"]
    facts = [
        f"active host <b class=active>{e(s['active'])}</b>, epoch {e(s['epoch'])}"
        + ("" if s["active_answered"] else " <span class=bad>(not answering: as its standbys last saw it)</span>"),
        f"last test: {e(test['result'])}, {e(human_seconds(test['age_seconds']))} ago" if test else "never tested",
        f"alerts open: {e(s['alerts']['open'])}"
        + (f" ({e(', '.join(s['alerts']['open_kinds']))})" if s["alerts"]["open_kinds"] else "")
        + f"; {e(s['alerts']['recent'])} in the last 24 h",
        *(f"<span class=bad>cannot read {e(p)}</span>" for p in s["problems"]),
    ]
    body = [f"<ul>{''.join(f'<li>{f}</li>' for f in facts)}</ul><h2>Standbys</h2>{standbys}"]
    if r is not None and recent is not None:
        body.append(f"<h2>Lag, last {e(human_seconds(recent['period_seconds']))}</h2>")
        body.append(
            lag_chart(r["series"], since=recent["since"], now=recent["generated_at"], target=r["rpo_target_seconds"])
        )
        window = [
            b for b in r["series"] if b.get("window") is not None and b["host"] in {x["host"] for x in s["standbys"]}
        ]
        oldest = window[-1].get("oldest_ts") if window else None
        newest = (oldest + window[-1]["window"]) if window and oldest else None
        marks = [b for b in r["bookmarks"] if b["host"] in standbys]
        body.append("<h2>Rewind window and bookmarks</h2>")
        body.append(timeline(oldest, newest, marks, now=recent["generated_at"]))
        rows = [[b["name"], b["host"], b["root"], b["seq"], iso(b["ts"])] for b in marks]
        body.append(table(["bookmark", "on", "root", "seq", "time"], rows, none="no bookmarks", ident="bookmarks"))
    if m is not None:
        body.append("<h2>Events</h2>" + events_table(m))
    first_standby = s["standbys"][0]["host"] if s["standbys"] else "STANDBY"
    body.append(
        commands(
            [
                ("switch over to the standby", _ansible(inventory, "switchover.yml", scenario=name)),
                ("switch back", _ansible(inventory, "switchback.yml", scenario=name)),
                ("test the replica now (assured recovery)", _ansible(inventory, "assured_recovery.yml", scenario=name)),
                ("rewind the replica to a bookmark", _ansible(inventory, "rewind.yml", scenario=name, to="BOOKMARK")),
                (
                    "bookmark the replica's current point",
                    f"ansible -i {shlex.quote(inventory)} {first_standby} -m twinsite.dr.bookmark "
                    f"-a 'scenario={name} name=NAME'",
                ),
                ("this host's view", f"ssh {first_standby} twinsite status"),
            ]
        )
    )
    return page(f"twinsite: {name}", "".join(body), nav=NAV, note=_note(snap))


def events_table(m: dict[str, Any]) -> str:
    """The scenario's events of the period, newest first: switchovers, tests, alerts, changes."""
    rows: list[tuple[str, str, str, str, str]] = []
    for o in m["switchovers"]:
        what = f"{o['kind']} {o['from']} → {o['to']} ({o['mode']}): {o['result']}"
        what += f", RTO {human_seconds(o['rto_seconds'])}"
        rows.append((iso(o["started_ts"]) or "", o["host"], "switchover", what, o["asked_by"]))
    for t in m["tests"]["list"]:
        what = f"test {t['id']}: {t['result']}" + (f" ({t['reason']})" if t.get("reason") else "")
        rows.append((iso(t["started_ts"]) or "", t["host"], "test", what, t["asked_by"]))
    for a in m["alerts"]["list"]:
        what = f"{a.get('kind')}: {a.get('what')}"
        rows.append((a.get("at") or "", a["host"], f"alert {a.get('severity')}", what, ""))
    shown = {o["id"] for o in m["switchovers"]} | {t["id"] for t in m["tests"]["list"]}
    for c in m["changes"]:
        if c.get("ref") not in shown:  # (a switchover's or a test's own row says who asked for it)
            rows.append(
                (c.get("at") or "", c["host"], "change", f"{c.get('action')}: {c.get('outcome')}", c["who_text"])
            )
    rows.sort(reverse=True)
    head = ["when", "on", "event", "what", "who asked"]
    more = (
        f"<p class=muted>the newest {EVENTS} of {len(rows)}: the report has them all</p>" if len(rows) > EVENTS else ""
    )
    return table(head, rows[:EVENTS], none="no events in the period", ident="events") + more


def history(snap: dict[str, Any]) -> str:
    month = snap.get("month")
    if month is None:
        return page("twinsite: switchovers and tests", "<p>Asking the hosts...</p>", nav=NAV, note=_note(snap))
    hs = human_seconds
    body = []
    for m in month["scenarios"]:
        body.append(f"<h2>{link(scenario_href(m['scenario']), m['scenario'])}</h2>")
        body.append(
            "<h3>Switchovers</h3>"
            + table(
                ["started", "on", "kind", "from → to", "result", "RTO", "RPO", "asked by", "report"],
                [[iso(o["started_ts"]), o["host"], f"{o['kind']} ({o['mode']})", f"{o['from']} → {o['to']}",
                  o["result"], hs(o["rto_seconds"]), hs(o["rpo_seconds"]), o["asked_by"],
                  link(f"/run/{urllib.parse.quote(o['host'])}/{urllib.parse.quote(m['scenario'])}/switchover/"
                       f"{urllib.parse.quote(o['id'])}", o["id"])]
                 for o in reversed(m["switchovers"])],
                none="no switchovers in the period",
                raw=8,
            )
        )  # fmt: skip
        body.append(
            "<h3>Assured-recovery tests</h3>"
            + table(
                ["started", "on", "result", "RTO", "data age (RPO)", "asked by", "evidence"],
                [[t.get("started"), t["host"], t["result"], hs(t.get("rto_seconds")), hs(t.get("data_age_seconds")),
                  t["asked_by"],
                  link(f"/run/{urllib.parse.quote(t['host'])}/{urllib.parse.quote(m['scenario'])}/test/"
                       f"{urllib.parse.quote(t['id'])}", t["id"])]
                 for t in reversed(m["tests"]["list"])],
                none="no tests in the period",
                raw=6,
            )
        )  # fmt: skip
    since = human_seconds(month["period_seconds"])
    return page(f"twinsite: switchovers and tests, last {since}", "".join(body), nav=NAV, note=_note(snap))


def report(snap: dict[str, Any], inventory: str) -> str:
    month = snap.get("month")
    if month is None:
        return page("twinsite report", "<p>Asking the hosts...</p>", nav=NAV, note=_note(snap))
    since = human_seconds(month["period_seconds"])
    cmd = f"twinsite report -i {shlex.quote(inventory)} --since {month['period_seconds']:.0f}s --format html"
    cmd += " -o report.html"
    body = report_body(month) + commands([("this report as a file", cmd)])
    return page(f"twinsite report, last {since}", body, nav=NAV, note=_note(snap))


def run(kind: str, host: str, name: str, run_id: str, record: dict[str, Any] | None, error: str | None) -> str:
    """One switchover's report or one test's evidence, as the host that ran it keeps it."""
    title = f"twinsite: {kind} {run_id} of {name} on {host}"
    cli = "switchover" if kind == "switchover" else "recover-test"
    cmd = [("the same on the host", f"ssh {host} twinsite {cli} {name} --report {run_id}")]
    if record is None:
        return page(title, f"<p class=bad>{e(error)}</p>" + commands(cmd), nav=NAV)
    steps = record.get("steps") or []
    rows = [
        [s.get("step") or s.get("name"), s.get("state"), iso(s.get("started")), human_seconds(s.get("seconds")),
         s.get("error") or (s.get("result") or {}).get("note") or (s.get("result") or {}).get("skipped")]
        for s in steps
    ]  # fmt: skip
    facts = {k: record.get(k) for k in ("result", "reason", "mode", "from", "to", "epoch", "started_at", "started")}
    body = (
        "<ul>" + "".join(f"<li>{e(k)}: {e(v)}</li>" for k, v in facts.items() if v is not None) + "</ul>"
        + "<h2>Steps</h2>" + table(["step", "state", "started", "took", "note"], rows, none="no steps")
        + f"<h2>The record</h2><pre>{e(json.dumps(record, indent=1, sort_keys=True))}</pre>"
        + commands(cmd)
    )  # fmt: skip
    return page(title, body, nav=NAV)

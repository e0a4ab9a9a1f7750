"""The web console (`twinsite console -i inventories/lab`) in a real browser: Debian's Chromium, headless, loads
each page from the lab's live data; a screenshot of each is kept in build/console/ (a CI artifact); the DOM is
checked against the hosts' own answers (scenarios, active hosts, epochs, standby states, a bookmark's seq); and
no page asks for anything outside the console (every request of the page itself, from Chromium's DevTools
protocol)."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser

import pytest

from harness.browser import Browser
from harness.cli import REPO, VENV_BIN, controller_env, on_controller
from harness.hosts import twinsite_on
from harness.scenarios import ensure_configured
from twinsite.lab.topology import Lab

pytestmark = pytest.mark.lab
SHOTS = REPO / "build" / "console"
SHOT_NAMES = {
    "/": "overview.png",
    "/scenario/db": "scenario-db.png",
    "/scenario/share": "scenario-share.png",
    "/history": "history.png",
    "/report": "report.png",
}


class Dom(HTMLParser):
    """The tables of a page by id (rows of cell texts) and every URL its elements name."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.urls: list[str] = []
        self.text: list[str] = []
        self._table: str | None = None
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.urls += [v for k, v in attrs if k in ("src", "href", "action", "srcset", "data", "poster") and v]
        self.urls += re.findall(r"url\(([^)]*)\)", a.get("style") or "")
        if tag == "table":
            self._table = a.get("id") or f"table-{len(self.tables)}"
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._table:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    def rows(self, ident: str) -> list[dict[str, str]]:
        head, *rest = self.tables[ident]
        return [dict(zip(head, r, strict=True)) for r in rest]


@pytest.fixture(scope="module")
def console(lab: Lab) -> Iterator[str]:
    ensure_configured(lab)
    marked = twinsite_on(lab, "dr1", "bookmark", "db", f"console-{int(time.time())}")
    assert marked["ok"], marked
    proc = subprocess.Popen(
        [str(VENV_BIN / "twinsite"), "console", "-i", "inventories/lab", "--listen", "127.0.0.1:0", "--refresh", "3"],
        cwd=REPO, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=controller_env(),
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        url = re.search(r"(http://127\.0\.0\.1:\d+)/", line)
        assert url, line
        deadline = time.monotonic() + 60
        while "Asking the hosts" in urllib.request.urlopen(url.group(1) + "/history", timeout=10).read().decode():  # noqa: S310
            assert time.monotonic() < deadline, "the console never collected"
            time.sleep(0.5)
        yield url.group(1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def browse(browser: Browser, console: str, path: str, shot: str) -> Dom:
    """The page's DOM after Chromium loaded it (its screenshot in build/console/), checking that it asked for
    nothing outside the console."""
    got = browser.load(console + path, SHOTS / shot)
    assert got.status == 200, (path, got.status)
    outside = [u for u in got.requests if not u.startswith(console + "/")]
    assert outside == [], f"{path} asked for {outside}"
    assert (SHOTS / shot).stat().st_size > 10_000
    return Dom(got.dom)


def test_every_page_in_a_real_browser_shows_the_hosts_own_figures_and_loads_nothing_else(
    lab: Lab, console: str
) -> None:
    t0 = time.monotonic()
    with Browser() as browser:
        pages = {path: browse(browser, console, path, shot) for path, shot in SHOT_NAMES.items()}
    overview = pages["/"]
    own = {h: twinsite_on(lab, h, "status")["result"]["scenarios"] for h in ("prod1", "dr1", "dr2")}
    every = overview.rows("scenarios")
    # (a scenario an earlier test left declared on a host is shown too, and marked as not in the inventory)
    rows = [r for r in every if not r["scenario"].endswith("(not in the inventory)")]
    assert sorted({r["scenario"] for r in rows}) == ["app", "db", "mariadb", "share", "web"]
    declared_on_hosts = {r["scenario"] for h in ("prod1", "dr1", "dr2")
                         for r in twinsite_on(lab, h, "status")["result"]["scenarios"]}  # fmt: skip
    assert {r["scenario"].split(" ")[0] for r in every} == declared_on_hosts
    for r in rows:  # each row as the active host and the standby say it
        sent = next(x for x in own["prod1"] if x["scenario"] == r["scenario"] and x["replica"] == r["standby"])
        assert (r["active"], r["epoch"]) == (sent["active"], str(sent["epoch"]))
        assert r["state"] == sent["state"] == "replicating", r
        assert r["root"] == sent["root"]
    assert {(r["scenario"], r["standby"]) for r in rows} == {("app", "dr1"), ("db", "dr1"), ("share", "dr1"),
                                                             ("share", "dr2"), ("mariadb", "dr1"),
                                                             ("web", "dr1")}  # fmt: skip
    assert [h["answer"] for h in overview.rows("hosts")] == ["answered"] * 3

    db = pages["/scenario/db"]
    [standby] = db.rows("standbys")
    assert (standby["standby"], standby["root"], standby["state"]) == ("dr1", "/srv/db", "replicating")
    points = twinsite_on(lab, "dr1", "rewind-points", "db")["result"]
    marks = {b["bookmark"]: b["seq"] for b in db.rows("bookmarks") if b["on"] == "dr1"}
    assert {b["on"] for b in db.rows("bookmarks")} == {"dr1"}  # (the standby's: not a former standby's)
    assert marks == {b["name"]: str(b["seq"]) for b in points["bookmarks"]}  # (names and seqs as dr1 keeps them)
    assert any(n.startswith("console-") for n in marks), marks
    assert "RPO target 30 s" in "".join(db.text)  # (the lab's db declares rpo_target: 30s; the chart draws it)
    commands = "".join(db.text)
    assert "ansible-playbook -i inventories/lab playbooks/switchover.yml -e scenario=db" in commands

    assert [b["standby"] for b in pages["/scenario/share"].rows("standbys")] == ["dr1", "dr2"]
    for path in ("/history", "/report"):
        text = "".join(pages[path].text)
        assert all(f"{name}" in text for name in ("app", "db", "share")), path
    for path, dom in pages.items():
        outside = [u for u in dom.urls if re.match(r"^[a-z][a-z0-9+.-]*:", u) or u.startswith("//")]
        assert outside == [], (path, outside)  # (every link stays in the console)
    head = urllib.request.urlopen(console + "/", timeout=10).headers  # noqa: S310
    assert "default-src 'none'" in head["Content-Security-Policy"]
    print(f"\nconsole pages in Chromium: {time.monotonic() - t0:.1f} s; screenshots in {SHOTS}")
    (SHOTS / "pages.json").write_text(json.dumps({"overview": rows}, indent=1))


def test_the_console_beyond_loopback_needs_tls_and_a_login() -> None:
    proc = on_controller("console", "-i", "inventories/lab", "--listen", "0.0.0.0:8471")
    assert proc.returncode != 0
    assert "0.0.0.0 is not a loopback address" in proc.stderr and "--tls-cert" in proc.stderr, proc.stderr

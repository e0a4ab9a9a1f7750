"""twinsite site status: the hosts' answers put together per scenario, an unreachable host as a row that says
so, the inventory's settings rendered by Ansible itself; the answer valid against its published schema."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import jsonschema

from twinsite.cli.site_cmd import render
from twinsite.lab import mariadb, web
from twinsite.site import inventory
from twinsite.site.status import merge

SCHEMA = json.loads(resources.files("twinsite").joinpath("schemas/site-status.schema.json").read_text())
DECLARED = [{"name": "db", "master": "prod1", "replicas": ["dr1", "dr2"], "roots": [{"path": "/srv/db"}]}]


def row(**kw: Any) -> dict[str, Any]:
    base = {"scenario": "db", "root": "/srv/db", "active": "prod1", "epoch": 3, "problems": [], "last_test": None,
            "alerts": {"open": 0, "open_kinds": [], "recent": 0}}  # fmt: skip
    return base | kw


def answer(*rows: dict[str, Any]) -> dict[str, Any]:
    return {"reachable": True, "error": None, "seconds": 0.2, "view": {"version": "0.1.0", "scenarios": list(rows)}}


SILENT = {"reachable": False, "error": "dr2 did not answer `twinsite status`: timed out", "seconds": 5.0, "view": None}
TEST = {"id": "t1", "result": "passed", "ended_ts": 1000.0, "age_seconds": 60.0, "data_age_seconds": 2.0}


def test_each_standby_has_the_senders_view_and_its_own_and_a_silent_host_says_so() -> None:
    answers = {
        "prod1": answer(
            row(role="active", replica="dr1", state="replicating", lag_seconds=0.2, backlog_bytes=10, last_error=None),
            row(
                role="active",
                replica="dr2",
                state="disconnected",
                lag_seconds=40.0,
                backlog_bytes=9000,
                last_error="ssh: connect to host dr2: timed out",
            ),
        ),
        "dr1": answer(
            row(
                role="standby",
                state="standby",
                applied_seq=77,
                last_test=TEST,
                rewind={"window_seconds": 3600.0, "bookmarks": 2, "rewound_to": None},
                point={"age_seconds": 4.0},
                alerts={"open": 1, "open_kinds": ["lag"], "recent": 3},
            ),
        ),
        "dr2": SILENT,
    }
    view = merge(answers, DECLARED, timeout=5.0, now=2000.0)
    jsonschema.validate(view, SCHEMA, cls=jsonschema.Draft202012Validator)
    [db] = view["scenarios"]
    assert (db["active"], db["epoch"], db["active_answered"]) == ("prod1", 3, True)
    dr1, dr2 = db["standbys"]
    assert dr1["state"] == "replicating" and dr1["lag_seconds"] == 0.2
    assert (dr1["applied_seq"], dr1["rewind_window_seconds"], dr1["point_age_seconds"]) == (77, 3600.0, 4.0)
    assert dr2["state"] == "disconnected" and dr2["answered"] is False and dr2["applied_seq"] is None
    assert db["last_test"]["result"] == "passed" and db["alerts"] == {"open": 1, "open_kinds": ["lag"], "recent": 3}
    hosts = {h["host"]: h for h in view["hosts"]}
    assert hosts["dr2"]["reachable"] is False and "timed out" in hosts["dr2"]["error"]
    text = render(view)
    assert "dr2          unreachable after 5.0 s: dr2 did not answer" in text
    assert "disconnected (host silent)" in text and "last error on dr2: ssh: connect to host dr2" in text
    assert "db: active prod1, epoch 3; last test passed 1 min ago; alerts: 1 open (lag), 3 in 24 h" in text


def test_with_the_active_host_silent_its_standbys_say_who_was_active_and_nothing_is_made_up() -> None:
    answers = {
        "prod1": SILENT | {"error": "prod1 did not answer"},
        "dr1": answer(row(role="standby", state="standby", applied_seq=70, epoch=4, rewind=None, point=None)),
        "dr2": answer(row(role="standby", state="standby", applied_seq=69, epoch=3, rewind=None, point=None)),
    }
    view = merge(answers, DECLARED, timeout=5.0, now=2000.0)
    jsonschema.validate(view, SCHEMA, cls=jsonschema.Draft202012Validator)
    [db] = view["scenarios"]
    assert (db["active"], db["epoch"], db["active_answered"]) == ("prod1", 4, False)  # (the newest epoch's view)
    assert [s["state"] for s in db["standbys"]] == ["unknown (active host not answering)"] * 2
    assert [s["lag_seconds"] for s in db["standbys"]] == [None, None]
    assert [s["applied_seq"] for s in db["standbys"]] == [70, 69]
    assert "active prod1 (NOT ANSWERING: as its standbys last saw it)" in render(view)


def test_a_scenario_found_on_a_host_but_not_in_the_inventory_is_shown_as_such() -> None:
    answers = {"prod1": answer(row(scenario="old", role="active", replica="dr1", state="stopped", lag_seconds=0.0,
                                   backlog_bytes=0, last_error=None))}  # fmt: skip
    view = merge(answers, [], timeout=5.0, now=2000.0)
    jsonschema.validate(view, SCHEMA, cls=jsonschema.Draft202012Validator)
    [old] = view["scenarios"]
    assert old["declared"] is False and old["standbys"] == []
    assert "old (not in the inventory: declared on a host only)" in render(view)


def test_the_inventorys_settings_are_rendered_by_ansible_as_a_playbook_would() -> None:
    """The lab's inventory names its SSH key and known_hosts through templates ({{ twinsite_lab_dir }}):
    Ansible renders them (no host is contacted)."""
    inv = inventory.read("inventories/lab")
    assert [s["name"] for s in inv.scenarios] == ["app", "db", "share", "mariadb", "web"]
    assert inv.scenario_hosts() == [h for h in inv.hostvars if h in ("prod1", "dr1", "dr2")]
    prod1 = inv.access_vars("prod1")
    assert prod1["ansible_host"] == "10.77.0.11" and prod1["ansible_ssh_private_key_file"].startswith("/")
    assert "{{" not in json.dumps(prod1)


def test_the_lab_starts_mariadb_and_nginx_as_the_inventorys_scenarios_do() -> None:
    """`lab up` starts prod1's MariaDB with the `mysql` plugin's settings and nginx with the `service`
    commands (lab/mariadb.py, lab/web.py); the scenarios must name the same, or their plugins would not find
    the servers `lab up` started."""
    found = {s["name"]: s for s in inventory.read("inventories/lab").scenarios}
    assert found["mariadb"]["application"] == mariadb.SETTINGS
    assert [r["path"] for r in found["mariadb"]["roots"]] == [mariadb.ROOT]
    app = found["web"]["application"]
    assert (app["start"], app["stop"], app["status"]) == (web.START, web.STOP, web.STATUS)
    assert [r["path"] for r in found["web"]["roots"]] == [web.ROOT]
    assert {"type": "http", "url": f"http://127.0.0.1:{web.PORT}/", "status": 200, "body": "the orders front page",
            "timeout": 5} in app["checks"] and "the orders front page" in web.PAGE  # fmt: skip

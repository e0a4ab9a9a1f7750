"""Scenario files: good ones load into typed values; bad ones give every error with file, line and key path."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from harness.cli import twinsite_cmd
from twinsite.apps.builtin import BUILTIN
from twinsite.config import load_file
from twinsite.config.loader import DATABASE_TYPES, EXPECTED, check_documents, schema
from twinsite.config.scenario import Root, parse_size
from twinsite.errors import ConfigError

GOOD = """\
scenarios:
  - name: app
    master: prod1
    replicas: [dr1]
    roots:
      - path: /srv/app/
        exclude: ["*.tmp", "cache/*"]
    replication:
      mode: periodic
      interval: 30
      bandwidth_limit: 10MiB
      ssh_options: {Port: 2222}
    journal:
      max_size: 256MiB
"""


def write(tmp_path: Path, text: str, name: str = "s.yml") -> Path:
    f = tmp_path / name
    f.write_text(textwrap.dedent(text))
    return f


def test_good_file_loads_into_typed_values(tmp_path: Path) -> None:
    [s] = load_file(write(tmp_path, GOOD))
    assert (s.name, s.master, s.replicas, s.application) == ("app", "prod1", ("dr1",), "files")
    assert s.roots == (Root(path="/srv/app", include=(), exclude=("*.tmp", "cache/*")),)
    assert s.replication.mode == "periodic"
    assert s.replication.interval == 30.0
    assert s.replication.bandwidth_limit == 10 * 2**20
    assert s.replication.ssh_options == (("Port", "2222"),)
    assert s.replication.transport == "openssh"  # default
    assert s.journal.max_size == 256 * 2**20
    assert s.journal.segment_size == 64 * 2**20  # default


def test_a_single_scenario_mapping_is_a_file_too(tmp_path: Path) -> None:
    f = write(tmp_path, "name: db\nmaster: prod1\nreplicas: [dr1]\nroots: [{path: /srv/db}]\n")
    assert [s.name for s in load_file(f)] == ["db"]


BAD = """\
scenarios:
  - name: app
    master: prod1
    replicas: [dr1]
    roots:
      - path: /srv/app
    replication:
      mode: continous
      bandwith_limit: 10MiB
      batch_ms: "20"
      ssh_options: {StrictHostKeyChecking: "no"}
  - name: app
    master: prod1
    replicas: []
    roots:
      - path: /srv/../etc
"""


def test_every_problem_is_reported_at_once_with_line_and_key_path(tmp_path: Path) -> None:
    f = write(tmp_path, BAD)
    with pytest.raises(ConfigError) as err:
        load_file(f)
    text = err.value.message
    expected = [
        f"{f}:8: scenarios[0].replication.mode: 'continous' is not one of 'continuous', 'periodic': "
        "did you mean 'continuous'?",
        f"{f}:9: scenarios[0].replication.bandwith_limit: unknown key 'bandwith_limit': "
        "did you mean 'bandwidth_limit'?",
        f"{f}:10: scenarios[0].replication.batch_ms: '20' is a string; expected an integer",
        f"{f}:11: scenarios[0].replication.ssh_options.StrictHostKeyChecking: 'StrictHostKeyChecking' is not "
        "allowed here; expected: an OpenSSH option name",
        f"{f}:12: scenarios[1].name: scenario name 'app' is used twice (first as item 0)",
        f"{f}:14: scenarios[1].replicas: [] should be non-empty; expected at least 1 item",
        f"{f}:16: scenarios[1].roots[0].path: '/srv/../etc' does not match",
    ]
    for line in expected:
        assert line in text, f"missing: {line}\nin:\n{text}"
    assert text.startswith("7 problem(s)")
    assert err.value.where == str(f)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("scenarios: [\n", "not valid YAML"),
        ("- just\n- a list\n", "expected a scenario (a mapping)"),
        ("scenarios: {name: x}\n", "expected a list of scenarios"),
        ("name: x\nmaster: a\nreplicas: [b]\nroots: [{path: relative/dir}]\n", "roots[0].path"),
        (
            "name: x\nmaster: a\nreplicas: [b]\nroots: [{path: /srv}]\nreplication: {bandwidth_limit: lots}\n",
            "'lots' is not valid; expected: A size in bytes",
        ),
        (
            "name: x\nmaster: a\nreplicas: [b]\nroots: [{path: /srv}]\nreplication: {transport: telnet}\n",
            "'telnet' is not one of 'openssh', 'paramiko'",
        ),
        ("name: Bad Name\nmaster: a\nreplicas: [b]\nroots: [{path: /srv}]\n", "name: 'Bad Name' does not match"),
        ("master: a\nreplicas: [b]\nroots: [{path: /srv}]\n", "missing required key 'name'"),
    ],
)
def test_bad_files_are_refused_with_the_reason(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_file(write(tmp_path, text))
    assert fragment in err.value.message


MINIMAL = {"name": "x", "master": "a", "replicas": ["b"], "roots": [{"path": "/srv"}]}


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ({"cdp": {"enabled": "yes"}}, "cdp.enabled: 'yes' is a string; expected true or false"),
        ({"master": 3}, "master: 3 is an integer; expected a string"),
        ({"replication": {"ssh_options": {"Port": [1]}}}, "Port: [1] is a list; expected a string or an integer"),
        (
            {"alerts": [{"type": "email", "smtp_host": "m", "to": ["a@b"]}]},
            "alerts[0]: missing required key 'from' (required here: type, smtp_host, from, to)",
        ),
        ({"switchover": {"mode": "auto"}}, "'auto' is not one of 'manual', 'automatic': did you mean 'automatic'?"),
        ({"replication": {"block_size": 1000}}, "1000 is not one of 4096, 8192, 16384, 65536, 131072"),
        ({"replication": {"remote_twinsite": "bin/twinsite"}}, "'bin/twinsite' does not match ^/; expected: Path of"),
        ({"replication": {"batch_ms": 0}}, "batch_ms: 0 is too small; expected at least 1"),
        ({"replication": {"interval": 0}}, "interval: 0 is too small; expected more than 0"),
        ({"monitoring": {"misses": 1000}}, "misses: 1000 is too large; expected at most 100"),
        ({"replicas": []}, "replicas: [] should be non-empty; expected at least 1 item"),
        ({"master": ""}, "master: '' should be non-empty; expected at least 1 character"),
        (
            {"alerts": [{"type": "email", "smtp_host": "m", "from": "ab", "to": ["a@b"]}]},
            "from: 'ab' has 2 characters; expected at least 3 characters",
        ),
        (
            {"redirect": [{"type": "ip", "address": "10.0.0.9/24", "interface": "i" * 16}]},
            "interface: 'iiiiiiiiiiiiiiii' has 16 characters; expected at most 15 characters",
        ),
        (
            {
                "switchover": {
                    "fence": {"type": "vsphere", "vms": {}, "hostname": "v", "username": "u", "password_file": "/p"}
                }
            },
            "fence.vms: {} should be non-empty; expected at least 1 entry",
        ),
        ({"replicas": ["b", "c", "b"]}, "replicas: 'b' is listed more than once; expected each item once"),
        (
            {"replication": {"ssh_options": {"UserKnownHostsFile": "/dev/null"}}},
            "ssh_options.UserKnownHostsFile: 'UserKnownHostsFile' is not allowed here; expected: an OpenSSH option",
        ),
        ({"replication": {"ssh_options": {"Port-1": 2}}}, "ssh_options.Port-1: 'Port-1' does not match ^[A-Za-z]+$"),
        ({"cdp": {"retention": "forever"}}, "'forever' is not valid; expected: Seconds, or a string with a unit"),
        ({"application": 5}, "application: 5 is not valid; expected: The application"),
        ({"monitoring": {"misses": 2, "intervall": "5s"}}, "unknown key 'intervall': did you mean 'interval'?"),
        ({"journal": {"zzz": 1}}, "unknown key 'zzz': allowed keys: max_size, segment_size"),
    ],
)
def test_each_kind_of_problem_says_what_was_expected(extra: dict[str, object], problem: str) -> None:
    _, problems = check_documents({**MINIMAL, **extra}, "f.yml", None)
    assert any(problem in str(p) for p in problems), f"{problem!r} not in {[str(p) for p in problems]}"


def test_every_keyword_of_the_schema_has_a_message_saying_what_was_expected() -> None:
    """A keyword without one would show jsonschema's own message, which often says only what was wrong."""
    structure = {"$schema", "$id", "$defs", "$ref", "title", "description", "default", "properties", "items"}
    structure |= {"allOf", "if", "then", "propertyNames", "additionalProperties"}  # (unknown keys: their own)

    def keywords(node: object, in_properties: bool = False) -> set[str]:
        if isinstance(node, list):
            return set().union(*(keywords(n) for n in node))
        if not isinstance(node, dict):
            return set()
        own = set() if in_properties else set(node)
        return own.union(*(keywords(v, k in ("properties", "$defs")) for k, v in node.items()))

    assert keywords(schema()) - structure - set(EXPECTED) == set()


def test_validate_cli_checks_every_file_and_fails_on_any_problem(tmp_path: Path) -> None:
    good, bad = write(tmp_path, GOOD, "good.yml"), write(tmp_path, BAD, "bad.yml")
    ok = twinsite_cmd("validate", str(good))
    assert ok.returncode == 0, ok.stderr
    assert "ok: 1 scenario(s) in 1 file(s): app" in ok.stdout
    both = twinsite_cmd("validate", str(good), str(bad))
    assert both.returncode == 3
    assert f"{bad}:8: scenarios[0].replication.mode" in both.stderr
    assert str(good) not in both.stderr
    missing = twinsite_cmd("validate", str(tmp_path / "nope.yml"), "--json")
    assert missing.returncode == 3
    assert "cannot read: No such file or directory" in missing.stdout


@pytest.mark.parametrize(
    ("text", "value"), [(512, 512), ("20MiB", 20 * 2**20), ("1.5GB", 1_500_000_000), ("4 KiB", 4096)]
)
def test_sizes(text: int | str, value: int) -> None:
    assert parse_size(text) == value


def test_root_selection_include_then_exclude() -> None:
    r = Root(path="/srv/app", include=("data/*", "*.db"), exclude=("*.tmp",))
    assert r.selects("data/x")
    assert r.selects("main.db")
    assert not r.selects("data/x.tmp")
    assert not r.selects("other/y")
    assert not Root(path="/srv/app").selects(".twinsite-points")  # (the point store: never replicated)
    assert not Root(path="/srv/app").selects(".twinsite-points/1700000000000/x")
    assert Root(path="/srv/app").selects("data/.twinsite-points")


@pytest.mark.parametrize("kind", sorted(DATABASE_TYPES))
def test_a_database_replicated_file_by_file_needs_the_acknowledgement(kind: str) -> None:
    torn = {**MINIMAL, "application": {"type": kind}, "replication": {"consistency": "file"}}
    _, problems = check_documents(torn, "f.yml", None)
    assert [p.path for p in problems] == ["replication.consistency"]
    assert f"a {kind} database replicated with consistency: file can reach the standby torn" in problems[0].message
    assert "accept_torn_database_copies: true" in problems[0].message
    accepted = {**torn, "replication": {"consistency": "file", "accept_torn_database_copies": True}}
    assert check_documents(accepted, "f.yml", None)[1] == []
    points = {**torn, "replication": {"consistency": "points"}}
    assert check_documents(points, "f.yml", None)[1] == []
    assert check_documents({**MINIMAL, "replication": {"consistency": "file"}}, "f.yml", None)[1] == []


def test_the_database_types_validate_knows_are_the_plugins_that_say_so() -> None:
    assert {k for k, cls in BUILTIN.items() if cls.database} == DATABASE_TYPES


def test_a_scenario_with_alerts_and_application_settings_is_run_by_the_agent(tmp_path: Path) -> None:
    """The agent keys its senders by the scenario's hash: mappings inside must not break it, and changing
    only them does not restart replication."""
    from twinsite.agent.loop import wanted

    text = """\
        name: db
        master: prod1
        replicas: [dr1]
        roots: [{path: /srv/db}]
        application: {type: postgresql, port: 5433, checks: [{type: tcp, port: 5433}]}
        alerts: [{type: webhook, url: "http://127.0.0.1:9/x", headers: {X-A: b}}]
        switchover:
          mode: automatic
          witness: {hosts: [client1]}
          fence: {type: script, name: fence-prod1}
          verify: {from: [client1], port: 5433, timeout: 30s}
        redirect: [{type: dns, name: db.example.com, zone: example.com, server: 10.0.0.1, key_file: /etc/k.json}]
        """
    [s] = load_file(write(tmp_path, text))
    assert (s.application, s.application_settings["port"]) == ("postgresql", 5433)
    assert s.alerts[0]["headers"] == {"X-A": "b"}
    so = s.switchover
    assert (so.mode, so.witness, so.fence, so.verify_from, so.verify_port, so.verify_timeout) == (
        "automatic",
        ("client1",),
        {"type": "script", "name": "fence-prod1"},
        ("client1",),
        5433,
        30.0,
    )
    assert s.redirect[0]["zone"] == "example.com"
    [key] = wanted([s], "prod1", tmp_path, tmp_path)
    [same] = wanted(load_file(write(tmp_path, text.replace("X-A: b", "X-A: c"))), "prod1", tmp_path, tmp_path)
    assert key == same


def test_the_agent_says_which_declarations_it_found_changed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """What the agent logs when it reads the config directory again: a line per scenario declared, changed
    (any key, the assured-recovery schedule included) or removed, and nothing when nothing changed."""
    from twinsite.agent.loop import _note_changes

    base = "name: {name}\nmaster: prod1\nreplicas: [dr1]\nroots: [{{path: /srv/{name}}}]\n"
    [db] = load_file(write(tmp_path, base.format(name="db")))
    [app] = load_file(write(tmp_path, base.format(name="app")))
    [db2] = load_file(write(tmp_path, base.format(name="db") + "assured_recovery: {schedule: '@hourly'}\n"))
    caplog.set_level("INFO", logger="twinsite")
    seen = _note_changes({}, [db, app])
    assert _note_changes(seen, [db, app]) == seen
    _note_changes(seen, [db2])
    assert [r.getMessage() for r in caplog.records] == [
        "scenario app declared", "scenario db declared", "scenario app removed", "scenario db changed",
    ]  # fmt: skip


SCHEDULED = """\
name: app
master: prod1
replicas: [dr1]
roots: [{path: /srv/app}]
replication:
  bandwidth_limit: 50MiB
  bandwidth_schedule:
    timezone: Europe/Paris
    windows:
      - {days: mon-fri, hours: "08-18", limit: 10MiB}
      - {days: "fri-mon", hours: "22-24", limit: 0}
      - {days: [sat, sun], limit: 20MiB}
"""


@pytest.mark.parametrize(
    ("utc", "limit"),
    [
        ("2026-12-02T07:30", 10 * 2**20),  # Wednesday 08:30 in Paris (UTC+1): business hours
        ("2026-12-02T06:59", 50 * 2**20),  # 07:59 in Paris: outside every window, bandwidth_limit
        ("2026-12-02T16:59", 10 * 2**20),  # 17:59: still in 08-18
        ("2026-12-02T17:00", 50 * 2**20),  # 18:00: out
        ("2026-12-04T21:30", 0),  # Friday 22:30: the night window, no limit
        ("2026-12-05T21:30", 0),  # Saturday 22:30: the night window comes first
        ("2026-12-05T12:00", 20 * 2**20),  # Saturday noon
        ("2026-12-07T21:30", 0),  # Monday 22:30: fri-mon wraps over the weekend
        ("2026-12-08T21:30", 50 * 2**20),  # Tuesday 22:30: not in fri-mon
        ("2026-07-01T06:30", 10 * 2**20),  # a July Wednesday 08:30 in Paris (summer time, UTC+2)
    ],
)
def test_a_bandwidth_schedule_gives_the_limit_by_weekday_and_hour_in_its_zone(
    tmp_path: Path, utc: str, limit: int
) -> None:
    import datetime as dt

    from twinsite.config.bandwidth import limit_now

    [s] = load_file(write(tmp_path, SCHEDULED))
    when = dt.datetime.fromisoformat(utc).replace(tzinfo=dt.UTC)
    assert limit_now(s.replication.bandwidth_limit, s.replication.bandwidth_schedule, when) == limit
    assert s.replication.bandwidth_lowest() == 10 * 2**20  # (what the sender sizes its batches for)


def test_without_a_schedule_the_limit_is_bandwidth_limit(tmp_path: Path) -> None:
    [s] = load_file(write(tmp_path, GOOD))
    assert s.replication.bandwidth_schedule is None
    assert s.replication.bandwidth_now() == s.replication.bandwidth_lowest() == 10 * 2**20


@pytest.mark.parametrize(
    ("schedule", "problem"),
    [
        ({"timezone": "Mars/Olympus", "windows": [{"limit": 0}]}, "unknown time zone 'Mars/Olympus'"),
        ({"windows": [{"days": "mon-fry", "limit": 0}]}, "window 1: 'mon-fry' is not a day or a range of days"),
        ({"windows": [{"limit": 1}, {"hours": "18-08", "limit": 0}]}, "window 2: hours '18-08': the start must"),
        ({"windows": [{"hours": "00-25", "limit": 0}]}, "within 00-24"),
        ({"windows": [{"hours": "8h-18h", "limit": 0}]}, "hours: '8h-18h' does not match"),
        ({"windows": [{"days": "mon"}]}, "missing required key 'limit'"),
        ({"windows": []}, "windows: [] should be non-empty"),
        ({"windows": [{"limit": "fast"}]}, "'fast' is not valid; expected: A size in bytes"),
    ],
)
def test_a_bad_bandwidth_schedule_is_refused_saying_where_and_why(schedule: dict[str, object], problem: str) -> None:
    _, problems = check_documents({**MINIMAL, "replication": {"bandwidth_schedule": schedule}}, "f.yml", None)
    assert any(problem in str(p) for p in problems), f"{problem!r} not in {[str(p) for p in problems]}"
    assert all("replication.bandwidth_schedule" in str(p) for p in problems), [str(p) for p in problems]


VCENTER = {"hostname": "vc.dr.test", "username": "svc@vsphere.local", "password_file": "/etc/twinsite/vc.pw"}


def test_a_vm_copy_after_a_pass_is_declared_with_its_datastore_and_from_snapshot_needs_a_snapshot_first() -> None:
    def problems(*actions: dict[str, object]) -> list[str]:
        doc = {**MINIMAL, "assured_recovery": {"after_pass": list(actions)}}
        return [f"{p.path}: {p.message}" for p in check_documents(doc, "f.yml", None)[1]]

    copy = {"type": "vm_copy", "vm": "dr1", "datastore": "CopyDS", **VCENTER}
    snap = {"type": "snapshot", "vm": "dr1", **VCENTER}
    assert problems(copy) == []
    assert problems({**copy, "datacenter": "DR2", "cluster": "C", "folder": "copies/db", "keep": 3}) == []
    assert problems(snap, {**copy, "from_snapshot": True}) == []
    [late] = problems({**copy, "from_snapshot": True}, snap)
    assert late.startswith("assured_recovery.after_pass[0].from_snapshot: from_snapshot copies the snapshot"), late
    assert "no snapshot action of 'dr1' comes before this vm_copy" in late
    [other] = problems({**snap, "vm": "web1"}, {**copy, "from_snapshot": True})
    assert "no snapshot action of 'dr1'" in other
    assert any("datastore" in p for p in problems({k: v for k, v in copy.items() if k != "datastore"}))
    assert any("keep: 0 is too small" in p for p in problems({**copy, "keep": 0}))
    assert any("unknown key 'memory'" in p for p in problems({**copy, "memory": True}))

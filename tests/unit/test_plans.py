"""Recovery plans: declared beside the scenarios, checked against the schema and against the scenarios they
name (every problem at once, with its line), filled with their defaults; and how the controller reaches the
inventory's hosts from their Ansible connection settings."""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import pytest

from twinsite.config import reference
from twinsite.config.loader import load_site, validate_text
from twinsite.config.plans import CONTINUE, PLANS_KEY, STOP, PlanStep, RecoveryPlan
from twinsite.errors import ConfigError
from twinsite.plans.hosts import HostAccess, Hosts
from twinsite.plans.run import PlanRun
from twinsite.state.role import this_host
from twinsite.transport.channels import openssh_argv
from twinsite.transport.remote import multiplexed

SCENARIOS = """\
twinsite_scenarios:
  - {name: db, master: prod1, replicas: [dr1, dr2], roots: [{path: /srv/db}]}
  - {name: app, master: prod1, replicas: [dr1], roots: [{path: /srv/app}]}
  - {name: web, master: prod2, replicas: [dr1], roots: [{path: /srv/web}]}
"""


def problems(plans: str) -> list[str]:
    """The problems of ``plans`` after the scenarios, each with its line in ``plans``."""
    _, found = validate_text(SCENARIOS + textwrap.dedent(plans), "inv.yml")
    below = SCENARIOS.count("\n")
    return [f"inv.yml:{p.line - below if p.line else '?'}: {p.path}: {p.message}" for p in found]


GOOD = """\
twinsite_recovery_plans:
  - name: site-a
    description: the site
    to: dr1
    on_failure: continue
    timeout: 10m
    groups:
      - {name: databases, scenarios: [db]}
      - name: apps
        parallel: 1
        on_failure: stop
        timeout: 90s
        scenarios:
          - {scenario: app, needs: [db], timeout: 30, to: dr1}
          - web
"""


def _paths(node: Any, prefix: str) -> set[str]:
    """The key paths a document sets, as the reference writes them (``groups[].name``)."""
    out: set[str] = set()
    items = node if isinstance(node, list) else [node]
    for item in items:
        for key, value in item.items() if isinstance(item, dict) else ():
            path = f"{prefix}{key}"
            out.add(path)
            if isinstance(value, list) and any(isinstance(v, dict) for v in value):
                out |= _paths([v for v in value if isinstance(v, dict)], path + "[].")
            elif isinstance(value, dict):
                out |= _paths(value, path + ".")
    return out


def test_the_good_plan_sets_every_key_of_the_plan_schema() -> None:
    """So the test below, which checks each value arrives in the plan, checks every key the schema has."""
    import yaml

    keys = {k.path for k in reference.all_keys() if k.path.startswith(PLANS_KEY)}
    assert keys and _paths(yaml.safe_load(GOOD)[PLANS_KEY], PLANS_KEY + "[].") == keys


def test_a_good_plan_loads_with_its_defaults() -> None:
    text = SCENARIOS + GOOD
    assert problems(GOOD) == []
    import yaml

    scenarios, [plan] = load_site(yaml.safe_load(text), "inv.yml")
    assert [s.name for s in scenarios] == ["db", "app", "web"]
    assert (plan.name, plan.description) == ("site-a", "the site")
    first, second = plan.groups
    assert (first.name, first.parallel, first.on_failure) == ("databases", 1, CONTINUE)
    assert first.steps == (PlanStep("db", (), "dr1", 600.0),)
    assert (second.name, second.parallel, second.on_failure) == ("apps", 1, STOP)
    assert second.steps == (PlanStep("app", ("db",), "dr1", 30.0), PlanStep("web", (), "dr1", 90.0))


def test_defaults_without_settings_all_at_once_stop_fifteen_minutes_first_replica() -> None:
    import yaml

    text = SCENARIOS + "twinsite_recovery_plans: [{name: p, groups: [{name: g, scenarios: [db, app]}]}]\n"
    _, [plan] = load_site(yaml.safe_load(text), "inv.yml")
    [g] = plan.groups
    assert (g.parallel, g.on_failure) == (2, STOP)
    assert [(s.to, s.timeout) for s in g.steps] == [(None, 900.0), (None, 900.0)]


def test_every_problem_of_the_schema_is_reported_with_its_line() -> None:
    found = problems("""\
        twinsite_recovery_plans:
          - name: Site A
            groups:
              - name: databases
                scenarios: [db]
                paralel: 2
                on_failure: carry-on
              - name: apps
                scenarios: []
                timeout: soon
          - groups: [{name: x, scenarios: [db]}]
        """)  # fmt: skip
    assert any(p.startswith("inv.yml:6: ") and "did you mean 'parallel'" in p for p in found), found
    assert any(p.startswith("inv.yml:7: ") and "'carry-on' is not one of 'stop', 'continue'" in p for p in found)
    assert any(p.startswith("inv.yml:9: ") and "should be non-empty" in p for p in found), found
    assert any(p.startswith("inv.yml:10: ") and "'soon' is not valid" in p for p in found), found
    assert any("twinsite_recovery_plans[0].name: 'Site A' does not match" in p for p in found), found
    assert any("twinsite_recovery_plans[1]: missing required key 'name'" in p for p in found), found


def test_what_a_plan_names_is_checked_against_the_scenarios() -> None:
    found = problems("""\
        twinsite_recovery_plans:
          - name: site-a
            groups:
              - name: apps
                scenarios:
                  - {scenario: app, needs: [db]}
                  - {scenario: web, needs: [mail], to: dr2}
              - name: databases
                scenarios: [db, ghost, app]
              - name: apps
                scenarios: [{scenario: db, needs: [app]}]
          - name: site-a
            to: dr2
            groups: [{name: all, scenarios: [app]}]
        """)  # fmt: skip
    expected = [
        "inv.yml:6: twinsite_recovery_plans[0].groups[0].scenarios[0].needs: 'app' needs 'db', which is in a later "
        "group or the same one; what a scenario needs must be in an earlier group",
        "inv.yml:7: twinsite_recovery_plans[0].groups[0].scenarios[1].needs: 'web' needs 'mail', which is in no "
        "group of this plan; what a scenario needs must be in an earlier group",
        "inv.yml:7: twinsite_recovery_plans[0].groups[0].scenarios[1].to: 'dr2' is not a replica of scenario 'web' "
        "(its replicas: dr1)",
        "inv.yml:9: twinsite_recovery_plans[0].groups[1].scenarios[1]: scenario 'ghost' is not declared in "
        "twinsite_scenarios (declared: app, db, web)",
        "inv.yml:9: twinsite_recovery_plans[0].groups[1].scenarios[2]: scenario 'app' is already in group 'apps' "
        "of this plan; a scenario is in one group",
        "inv.yml:10: twinsite_recovery_plans[0].groups[2].name: group name 'apps' is used twice in the plan (first "
        "as group 0)",
        "inv.yml:11: twinsite_recovery_plans[0].groups[2].scenarios[0]: scenario 'db' is already in group "
        "'databases' of this plan; a scenario is in one group",
        "inv.yml:12: twinsite_recovery_plans[1].name: plan name 'site-a' is used twice (first as item 0)",
        "inv.yml:13: twinsite_recovery_plans[1].to: 'dr2' is not a replica of scenario 'app' (its replicas: dr1)",
    ]
    assert sorted(found) == sorted(expected)


def test_a_plan_may_need_what_a_group_before_it_holds_and_share_scenarios_with_another_plan() -> None:
    assert problems("""\
        twinsite_recovery_plans:
          - name: site-a
            groups:
              - {name: one, scenarios: [db]}
              - {name: two, scenarios: [web]}
              - {name: three, scenarios: [{scenario: app, needs: [db, web]}]}
          - name: db-only
            to: dr2
            groups: [{name: one, scenarios: [db]}]
        """) == []  # fmt: skip


def test_load_site_raises_one_error_naming_every_problem() -> None:
    data = {
        "twinsite_scenarios": [{"name": "db", "master": "prod1", "replicas": ["dr1"], "roots": [{"path": "/srv"}]}],
        "twinsite_recovery_plans": [{"name": "p", "groups": [{"name": "g", "scenarios": ["db", "nope"]}]}],
    }
    with pytest.raises(ConfigError) as err:
        load_site(data, "the inventory")
    assert "1 problem(s)" in err.value.message and "scenario 'nope' is not declared" in err.value.message
    data["twinsite_recovery_plans"] = "site-a"
    with pytest.raises(ConfigError, match="expected a list of recovery plans"):
        load_site(data, "the inventory")


def test_host_access_takes_ansible_connection_settings() -> None:
    a = HostAccess.from_vars(
        "dr1",
        {
            "ansible_host": "10.77.0.12",
            "ansible_user": "root",
            "ansible_port": "2222",
            "ansible_ssh_private_key_file": "/keys/id",
            "ansible_ssh_common_args": "-o UserKnownHostsFile=/keys/known_hosts -oStrictHostKeyChecking=yes "
            "-o 'IdentitiesOnly yes' -F /keys/config",
        },
    )
    argv = openssh_argv(a.endpoint(["/opt/twinsite/bin/twinsite", "role", "db", "--json"]))
    assert argv[-2:] == ["10.77.0.12", "/opt/twinsite/bin/twinsite role db --json"]
    joined = " ".join(argv)
    for part in ("-F /keys/config", "-i /keys/id", "-l root", "-p 2222", "-o UserKnownHostsFile=/keys/known_hosts",
                 "-o IdentitiesOnly=yes", "-o BatchMode=yes"):  # fmt: skip
        assert part in joined, (part, argv)
    # twinsite's own StrictHostKeyChecking=yes comes first: OpenSSH takes the first value it is given
    assert argv.index("StrictHostKeyChecking=yes") < argv.index("UserKnownHostsFile=/keys/known_hosts")
    assert HostAccess.from_vars("web", {}).endpoint(["true"]).host == "web"


def test_a_host_where_twinsite_is_elsewhere_is_asked_there(monkeypatch: pytest.MonkeyPatch) -> None:
    """site_plan.yml passes where the agent role put twinsite on each host; empty means its default place."""
    hosts = Hosts.from_vars(
        {
            "dr1": {
                "twinsite_agent_install_dir": "/usr/local/tw",
                "twinsite_agent_config_dir": "/etc/tw",
                "twinsite_agent_state_dir": "/data/tw",
            },
            "prod1": {
                "twinsite_agent_install_dir": "",
                "twinsite_agent_config_dir": "",
                "twinsite_agent_state_dir": "",
            },
        }
    )
    monkeypatch.setenv("TWINSITE_ASKED_BY", "alice@ctl1")  # (who asks goes with every command: twinsite.audit)
    assert hosts.command(hosts.access["dr1"], ["switchover", "db", "--dry-run"]) == [
        "env", "TWINSITE_ASKED_BY=alice@ctl1", "/usr/local/tw/bin/twinsite", "switchover", "db", "--dry-run",
        "--config-dir", "/etc/tw", "--state-dir", "/data/tw", "--json",
    ]  # fmt: skip
    monkeypatch.delenv("TWINSITE_ASKED_BY")
    me = f"{pwd.getpwuid(os.geteuid()).pw_name}@{this_host()}"  # (unless told: the controller's user and host)
    assert hosts.command(hosts.access["prod1"], ["role", "db"]) == [
        "env",
        f"TWINSITE_ASKED_BY={me}",
        "/opt/twinsite/bin/twinsite",
        "role",
        "db",
        "--json",
    ]


def test_a_plan_reaches_each_host_over_one_persistent_connection_unless_the_host_says_otherwise(
    tmp_path: Path,
) -> None:
    plan = RecoveryPlan.from_document({"name": "site", "groups": [{"name": "g", "scenarios": ["db"]}]})
    short = Path(tempfile.mkdtemp(prefix="tw-", dir="/tmp"))  # (pytest's own directories have long names)
    run = PlanRun(plan, {}, Hosts({}), short / "state", "failover")
    sockets = short / "state" / "ssh"
    assert run.hosts.control_dir == sockets
    more = multiplexed(run.hosts.control_dir)
    assert dict(more) == {"ControlMaster": "auto", "ControlPath": f"{sockets}/%C", "ControlPersist": "60"}
    assert sockets.stat().st_mode & 0o777 == 0o700
    own = HostAccess.from_vars("dr1", {"ansible_ssh_common_args": "-o ControlPath=/mine/%C -o ControlMaster=no"})
    argv = openssh_argv(own.endpoint(["true"], more))
    assert argv.index("ControlPath=/mine/%C") < argv.index(f"ControlPath={sockets}/%C")  # (the first one counts)
    assert argv.index("ControlMaster=no") < argv.index("ControlMaster=auto")
    # a directory whose sockets would have names longer than a unix socket takes: a connection per command
    assert multiplexed(tmp_path / ("x" * 80)) == ()
    assert multiplexed(None) == ()
    shutil.rmtree(short)


@pytest.mark.parametrize(
    ("args", "said"),
    [
        ("-o StrictHostKeyChecking=no", "StrictHostKeyChecking=no is refused"),
        ("-o StrictHostKeyChecking=accept-new", "StrictHostKeyChecking=accept-new is refused"),
        ("-A", "'-A' is not an ssh option twinsite takes"),
        ("-o", "'-o' has no value"),
    ],
)
def test_host_access_refuses_what_would_weaken_or_is_not_understood(args: str, said: str) -> None:
    with pytest.raises(ConfigError, match=said) as err:
        HostAccess.from_vars("dr1", {"ansible_ssh_common_args": args})
    assert "host dr1: ansible_ssh_common_args" in err.value.message

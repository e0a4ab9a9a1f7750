"""The host-side modules' settings in one place: the module defaults group twinsite.dr.host, which every play of
the collection's playbooks sets from the agent role's variables, so a non-default directory works everywhere."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.cli import REPO, ansible
from harness.scenarios import install
from twinsite.lab.topology import Lab

COLLECTION = REPO / "collections" / "ansible_collections" / "twinsite" / "dr"
GROUP = "group/twinsite.dr.host"


def host_modules() -> set[str]:
    runtime = yaml.safe_load((COLLECTION / "meta" / "runtime.yml").read_text())
    return {f"twinsite.dr.{m}" for m in runtime["action_groups"]["host"]}


def modules_of(tasks: list[dict[str, Any]]) -> set[str]:
    found = set()
    for task in tasks or []:
        found |= set(task) & host_modules()
        for nested in ("block", "rescue", "always"):
            found |= modules_of(task.get(nested, []))
    return found


def plays() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for book in sorted((COLLECTION / "playbooks").glob("*.yml")):
        out += [(f"{book.name}: {p['name']}", p) for p in yaml.safe_load(book.read_text()) if "hosts" in p]
    return out


def test_every_host_side_module_is_in_the_group_and_takes_its_three_options() -> None:
    """Every module that runs twinsite on a host is in the group, and takes config_dir, state_dir, twinsite_cli
    and asked_by (module_defaults fails a module given an option it does not take)."""
    sources = {p.stem: p.read_text() for p in (COLLECTION / "plugins" / "modules").glob("*.py")}
    on_hosts = {name for name, text in sources.items() if "TwinsiteModule" in text and name != "lab_info"}
    assert {m.removeprefix("twinsite.dr.") for m in host_modules()} == on_hosts
    for name in on_hosts:
        assert "dirs_argument_spec()" in sources[name], f"{name} does not take config_dir and state_dir"
        assert "membership: [twinsite.dr.host]" in sources[name], f"{name}'s documentation does not say so"


def test_every_play_that_runs_a_host_side_module_sets_the_group_from_the_agent_roles_variables() -> None:
    using = [(name, p) for name, p in plays() if modules_of(p.get("tasks", [])) or modules_of(p.get("roles", []))]
    assert len(using) >= 6, [n for n, _ in using]
    first = using[0][1].get("module_defaults", {}).get(GROUP)
    assert first and set(first) == {"config_dir", "state_dir", "twinsite_cli", "asked_by"}, using[0][0]
    for what in ("twinsite_agent_config_dir", "twinsite_agent_state_dir", "twinsite_agent_install_dir"):
        assert what in json.dumps(first), what
    assert "twinsite_asked_by" in first["asked_by"]  # (who asks: twinsite.audit)
    for name, play in using:
        assert play.get("module_defaults", {}).get(GROUP) == first, f"{name}: not the same module defaults"


@pytest.mark.lab
def test_a_non_default_directory_reaches_every_host_side_module(lab: Lab, tmp_path: Path) -> None:
    """The playbooks' module defaults, on client1 (where no agent runs), with the agent role's variables set to
    other places: the scenario module declares into the other directory, scenario_info reads it from there,
    and an install directory without twinsite in it is what the modules look in."""
    play = {
        "name": "Another directory",
        "hosts": "client1",
        "gather_facts": False,
        "module_defaults": dict(plays_using_group()[0]["module_defaults"]),
        "tasks": [
            {
                "name": "Declare",
                "twinsite.dr.scenario": {
                    "name": "elsewhere",
                    "state": "stopped",
                    "definition": {"master": "client1", "replicas": ["dr2"], "roots": [{"path": "/srv/elsewhere"}]},
                },
            },
            {"name": "Read back", "twinsite.dr.scenario_info": {}, "register": "info"},
            {"name": "Show", "ansible.builtin.debug": {"msg": "{{ info.scenarios | map(attribute='scenario') }}"}},
        ],
    }
    install(lab)  # (twinsite on client1, where configure.yml puts no agent)
    book = tmp_path / "elsewhere.yml"
    book.write_text(yaml.safe_dump([play]))
    client1 = lab.host("client1")
    other = client1.private_dir("/etc/twinsite") / "elsewhere-test"
    try:
        extra = ["-e", "twinsite_agent_config_dir=/etc/twinsite/elsewhere-test", "-e", "twinsite_agent_state_dir=/tmp"]
        proc = ansible("ansible-playbook", str(book), *extra, "-e", "twinsite_agent_install_dir=/opt/twinsite")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert (other / "elsewhere.yml").is_file()
        assert not (client1.private_dir("/etc/twinsite") / "scenarios" / "elsewhere.yml").exists()
        assert re.search(r"^\s+- elsewhere$", proc.stdout.split("TASK [Show]")[1], re.M), proc.stdout
        proc = ansible("ansible-playbook", str(book), *extra, "-e", "twinsite_agent_install_dir=/nowhere")
        assert proc.returncode == 2 and "twinsite_cli=/nowhere/bin/twinsite is not an executable file" in proc.stdout
    finally:
        shutil.rmtree(other, ignore_errors=True)


def plays_using_group() -> list[dict[str, Any]]:
    return [p for _, p in plays() if GROUP in p.get("module_defaults", {})]

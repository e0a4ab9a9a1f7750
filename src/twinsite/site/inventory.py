"""An Ansible inventory's hosts and declared scenarios, each host's settings rendered by Ansible itself.

The library never imports Ansible: it runs ``ansible-playbook`` on a play of its own that writes each host's
connection settings and the agent role's directories, rendered as any playbook renders them (templates, vault),
to files on the controller. The play contacts no host.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twinsite.errors import ConfigError
from twinsite.plans.hosts import Hosts

#: what plans.hosts.HostAccess.from_vars takes from a host's variables: its connection settings, and where the
#: agent role put twinsite there
WANTED = (
    "ansible_host",
    "ansible_user",
    "ansible_port",
    "ansible_ssh_private_key_file",
    "ansible_ssh_common_args",
    "ansible_ssh_extra_args",
    "twinsite_agent_install_dir",
    "twinsite_agent_config_dir",
    "twinsite_agent_state_dir",
)


@dataclass
class Inventory:
    hostvars: dict[str, dict[str, Any]]
    scenarios: list[dict[str, Any]] = field(default_factory=list)

    def scenario_hosts(self) -> list[str]:
        """The hosts the declared scenarios name, by name (every host when none are declared)."""
        named = {s.get("master") for s in self.scenarios} | {r for s in self.scenarios for r in s.get("replicas", [])}
        return [h for h in self.hostvars if h in named] if self.scenarios else list(self.hostvars)

    def hosts(self) -> tuple[Hosts, list[str]]:
        """How the controller reaches the hosts the scenarios name (over the playbooks' SSH), and their names."""
        names = self.scenario_hosts()
        return Hosts.from_vars({h: self.access_vars(h) for h in names}), names

    def access_vars(self, host: str) -> dict[str, Any]:
        """What plans.hosts.HostAccess.from_vars takes for ``host`` (the names site_plan.yml passes)."""
        given = self.hostvars.get(host)
        if given is None:
            raise ConfigError(
                f"{host} is not a host of the inventory", hint="add it, or fix the scenario's name for it"
            )
        return {k: given[k] for k in WANTED if given.get(k) not in (None, "")}


#: a play that writes them, per host, to a file on the controller (it contacts no host)
PLAY = """
- name: The settings twinsite site status reaches the hosts with
  hosts: all
  gather_facts: false
  tasks:
    - name: Write this host's rendered settings on the controller
      ansible.builtin.copy:
        dest: "{{ __twinsite_out }}/{{ inventory_hostname }}.json"
        mode: "0600"
        content: >-
          {{ {'vars': dict(__twinsite_wanted | zip(query('ansible.builtin.vars', *__twinsite_wanted, default=''))),
              'scenarios': (twinsite_scenarios | default([])) if inventory_hostname == groups['all'][0] else []}
             | to_json }}
      delegate_to: localhost
"""


def ansible_command(name: str) -> str:
    """One of Ansible's commands: on PATH, or beside this Python (the same virtualenv)."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if not found:
        raise ConfigError(f"{name} is not installed here", hint="install ansible-core beside twinsite")
    return found


def read(inventory: str, *, vault_password_file: str | None = None, timeout: float = 120) -> Inventory:
    """The inventory at ``inventory`` (what ``-i`` takes), each host's settings rendered by Ansible itself."""
    with tempfile.TemporaryDirectory(prefix="twinsite-inventory-") as tmp:
        out = Path(tmp) / "hosts"
        out.mkdir()
        (Path(tmp) / "settings.yml").write_text(PLAY)
        extra = {"__twinsite_out": str(out), "__twinsite_wanted": list(WANTED)}
        cmd = [ansible_command("ansible-playbook"), "-i", inventory, str(Path(tmp) / "settings.yml")]
        cmd += ["-e", json.dumps(extra)]
        if vault_password_file:
            cmd += ["--vault-password-file", vault_password_file]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if proc.returncode != 0:
            raise ConfigError(
                f"Ansible cannot read the settings of the inventory {inventory}: {proc.stdout.strip()[-1500:]}",
                where=inventory,
            )
        results = {f.stem: json.loads(f.read_text()) for f in sorted(out.iterdir())}
    return Inventory(
        {h: {k: v for k, v in r["vars"].items() if v not in (None, "")} for h, r in results.items()},
        next((r["scenarios"] for r in results.values() if r["scenarios"]), []),
    )

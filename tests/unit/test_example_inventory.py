"""The example inventory a user adapts (inventories/example): Ansible loads it with its example vault password,
its secrets are encrypted and nowhere in plain text, and its scenarios, recovery plans and replica VMs are what
configure.yml and provision_replicas.yml take. And ansible.cfg names no inventory: each command names its own."""

from __future__ import annotations

import configparser
import json
import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.cli import REPO, VENV_BIN, ansible
from twinsite.config.loader import load_site, validate_text

EXAMPLE = REPO / "inventories" / "example"
PASSWORD = EXAMPLE / ".vault-password.example"
VAULT = ("--vault-password-file", str(PASSWORD))
ENCRYPTED = [EXAMPLE / "group_vars" / "all" / "vault.yml", *sorted((EXAMPLE / ".secrets").iterdir())]


@cache
def listed() -> dict[str, Any]:
    """``ansible-inventory --list`` of the example (vault.yml decrypted, nothing templated)."""
    done = ansible("ansible-inventory", "--list", *VAULT, inventory=EXAMPLE)
    assert done.returncode == 0, done.stderr
    assert "WARNING" not in done.stderr, done.stderr  # (a file Ansible could not read as inventory)
    out: dict[str, Any] = json.loads(done.stdout)
    return out


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The variables configure.yml's first play validates, templated by Ansible as it does (vault_* resolved)."""
    tmp = tmp_path_factory.mktemp("example")
    play = tmp / "render.yml"
    out = tmp / "vars.json"
    play.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Render the site's variables as configure.yml reads them",
                    "hosts": "localhost",
                    "gather_facts": False,
                    "vars": {"site": "{{ hostvars[groups['all'][0]] }}"},
                    "tasks": [
                        {
                            "name": "Write them",
                            "ansible.builtin.copy": {
                                "dest": str(out),
                                "mode": "0600",
                                "content": "{{ {'twinsite_scenarios': site.twinsite_scenarios,"
                                " 'twinsite_recovery_plans': site.twinsite_recovery_plans,"
                                " 'twinsite_replica_vms': site.twinsite_replica_vms,"
                                " 'twinsite_dr_site': site.twinsite_dr_site,"
                                " 'twinsite_agent_files': site.twinsite_agent_files,"
                                " 'twinsite_vcenter_password': site.twinsite_vcenter_password} | to_json }}",
                            },
                        }
                    ],
                }
            ]
        )
    )
    done = ansible("ansible-playbook", str(play), *VAULT, inventory=EXAMPLE)
    assert done.returncode == 0, done.stdout + done.stderr
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def decrypted(path: Path) -> str:
    done = subprocess.run(
        [str(VENV_BIN / "ansible-vault"), "view", *VAULT, str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_ansible_cfg_names_no_default_inventory() -> None:
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(REPO / "ansible.cfg")
    assert not any(cfg.has_option(section, "inventory") for section in cfg.sections())


def test_the_example_loads_with_its_sites_hosts_in_their_groups() -> None:
    inv = listed()
    assert inv["production_site"]["hosts"] == ["erp-db01", "files01"]
    assert inv["dr_site"]["hosts"] == ["erp-db01-dr", "files01-dr"]
    assert inv["witnesses"]["hosts"] == ["monitor01"]
    assert not inv.get("ungrouped", {}).get("hosts")  # (nothing stray read as a host)
    hostvars = inv["_meta"]["hostvars"]
    assert hostvars["erp-db01"]["vault_vcenter_password"]  # vault.yml was decrypted and applies to every host


def test_every_secret_is_encrypted_and_nowhere_in_plain_text() -> None:
    for path in ENCRYPTED:
        assert path.read_text().startswith("$ANSIBLE_VAULT;"), f"{path} is not encrypted with ansible-vault"
    vault = yaml.safe_load(decrypted(ENCRYPTED[0]))
    assert vault and all(k.startswith("vault_") for k in vault), vault
    main = (EXAMPLE / "group_vars" / "all" / "main.yml").read_text()
    for key in vault:  # each is used, by name
        assert re.search(r"\{\{\s*" + key + r"\s*\}\}", main), f"main.yml does not refer to {key}"
    secrets = [str(v) for v in vault.values()]
    secrets += [json.loads(decrypted(p))["secret"] for p in ENCRYPTED if p.name == "dns-tsig.json"]
    secrets += [decrypted(p).strip() for p in ENCRYPTED[1:] if p.name != "dns-tsig.json"]
    plain = [p for p in EXAMPLE.rglob("*") if p.is_file() and p not in ENCRYPTED and p != PASSWORD]
    assert plain
    for p in plain:
        text = p.read_text()
        assert "vault_" not in text or p.name == "main.yml", f"{p} defines or names a vault_ variable"
        for secret in secrets:
            assert secret not in text, f"a secret is in plain text in {p}"


def test_the_scenarios_and_plans_pass_the_validation_configure_yml_runs(site: dict[str, Any]) -> None:
    text = yaml.safe_dump(
        {k: site[k] for k in ("twinsite_scenarios", "twinsite_recovery_plans")}
    )  # what configure.yml sends to `twinsite validate -`
    assert "{{" not in text and "vault_" not in text
    _, problems = validate_text(text, "inventories/example")
    assert not problems, "\n".join(map(str, problems))
    scenarios, plans = load_site(site, "inventories/example")
    assert [s.name for s in scenarios] == ["erp-db", "files"]
    assert [p.name for p in plans] == ["production"]
    assert site["twinsite_vcenter_password"] == yaml.safe_load(decrypted(ENCRYPTED[0]))["vault_vcenter_password"]


def test_every_host_a_scenario_names_is_in_the_inventory_at_its_site(site: dict[str, Any]) -> None:
    inv = listed()
    for s in site["twinsite_scenarios"]:
        assert s["master"] in inv["production_site"]["hosts"]
        assert set(s["replicas"]) <= set(inv["dr_site"]["hosts"])
        sw = s.get("switchover", {})
        for hosts in (sw.get("witness", {}).get("hosts", []), sw.get("verify", {}).get("from", [])):
            assert set(hosts) <= set(inv["witnesses"]["hosts"])
    # each standby is a replica VM the example provisions, with the address hosts.yml gives it
    hostvars = inv["_meta"]["hostvars"]
    vms = {vm["name"]: vm for vm in site["twinsite_replica_vms"]}
    assert set(vms) == set(inv["dr_site"]["hosts"])
    assert all(vm["customization"]["ip"] == hostvars[name]["ansible_host"] for name, vm in vms.items())


def test_the_replica_vms_and_the_dr_site_use_only_what_provision_replicas_yml_reads(site: dict[str, Any]) -> None:
    playbook = (REPO / "playbooks" / "provision_replicas.yml").read_text()
    read = set(re.findall(r"\bitem\.(\w+)", playbook)) | {"state"}
    assert all(set(vm) <= read for vm in site["twinsite_replica_vms"]), read
    assert set(site["twinsite_dr_site"]) <= set(re.findall(r"\bprovision_site\.(\w+)", playbook))
    module = (REPO / "collections/ansible_collections/twinsite/dr/plugins/modules/replica_vm.py").read_text()
    doc = yaml.safe_load(re.search(r'DOCUMENTATION = r?"""(.*?)"""', module, re.S).group(1))  # type: ignore[union-attr]
    allowed = set(doc["options"]["customization"]["suboptions"])
    assert all(set(vm.get("customization", {})) <= allowed for vm in site["twinsite_replica_vms"])


def test_the_agent_files_come_from_the_encrypted_secrets(site: dict[str, Any]) -> None:
    files = site["twinsite_agent_files"]
    assert {Path(f["src"]).resolve() for f in files} == {p.resolve() for p in ENCRYPTED[1:]}

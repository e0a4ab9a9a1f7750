"""`twinsite plan-placement` on the documented example and on bad files (no vCenter needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from harness.cli import REPO, twinsite_cmd

EXAMPLE = REPO / "docs" / "examples" / "placement.yml"


def test_the_documented_example_places_14_servers_on_3_hosts_with_the_clusters_apart() -> None:
    proc = twinsite_cmd("plan-placement", str(EXAMPLE), "--json")
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)["result"]
    assert plan["server_count"] == 14 and plan["host_count"] == 3
    assert plan["consolidation_ratio"] == 4.67
    assert plan["failure_check"]["host_failures"] == 1 and plan["failure_check"]["cases_checked"] == 3
    for cluster, vms in plan["anti_affinity"].items():
        hosts = [plan["assignment"][vm] for vm in vms]
        assert len(set(hosts)) == len(hosts) == 2, cluster
    text = twinsite_cmd("plan-placement", str(EXAMPLE))
    assert "consolidation: 14 servers on 3 hosts = 4.67 servers per host" in text.stdout
    assert "failure reserve: any single host failure can be absorbed" in text.stdout


@pytest.mark.parametrize(
    ("content", "message", "code"),
    [
        ("hosts: [\n", "not valid YAML", 3),
        ("- a list\n", "a placement file is a mapping", 3),
        ("hosts: []\nservers: []\nextra: 1\n", "unknown key(s) 'extra'", 3),
        ("servers: []\n", "missing key 'hosts'", 3),
        (
            "hosts: [{name: h1, cores: 8, memory_mb: 16384}]\n"
            "servers: [{name: a, cpus: 2, memory_mb: 4096, cluster: c},\n"
            "          {name: b, cpus: 2, memory_mb: 4096, cluster: c}]\n"
            "rules: {host_failures: 0}\n",
            "cluster 'c'",
            16,
        ),
        ("hosts: [{name: h1, cores: 8}]\nservers: []\n", "missing key 'memory_mb'", 3),
    ],
    ids=["bad-yaml", "not-a-mapping", "unknown-key", "missing-hosts", "cluster-larger-than-site", "missing-field"],
)
def test_bad_placement_files_are_refused_with_the_reason(tmp_path: Path, content: str, message: str, code: int) -> None:
    f = tmp_path / "site.yml"
    f.write_text(content)
    proc = twinsite_cmd("plan-placement", str(f), "--json")
    assert proc.returncode == code, proc.stdout + proc.stderr
    error = json.loads(proc.stdout)["error"]
    assert message in error["message"], error
    assert error["exit_code"] == code
    assert str(f) in (error["where"] or ""), error  # the file is named


STORAGE = REPO / "docs" / "examples" / "placement-storage.yml"
GiB, TiB = 2**30, 2**40
# What the example declares, summed here from its text (journal 1GiB and spool 10GiB are the schema's defaults)
SSD_NEED = 60 * GiB + 800 * GiB + 20 * GiB + 200 * GiB + 50 * GiB  # erp-db-dr: template, disk 1, its room
SATA_NEED = 2 * TiB + 40 * GiB + 6 * TiB + 1 * GiB + 10 * GiB  # erp-db-dr's disk 2; files-dr: all, its room


def test_the_storage_example_fits_its_datastores_with_the_standbys_room() -> None:
    proc = twinsite_cmd("plan-placement", str(STORAGE), "--json")
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)["result"]
    assert [(d["datastore"], d["needed"], d["free"]) for d in plan["datastores"]] == [
        ("dr-ssd", SSD_NEED, 1.5 * TiB),
        ("dr-sata", SATA_NEED, 16 * TiB),
    ]
    text = twinsite_cmd("plan-placement", str(STORAGE)).stdout
    assert "datastore dr-ssd: 1.1 TiB needed of 1.5 TiB free (4.0 TiB capacity), 406.0 GiB left: erp-db-dr" in text


def test_scenarios_from_a_file_and_a_datastore_too_small(tmp_path: Path) -> None:
    doc = yaml.safe_load(STORAGE.read_text())
    (tmp_path / "scenarios.yml").write_text(yaml.safe_dump({"scenarios": doc.pop("scenarios")}))
    doc["scenarios"] = "scenarios.yml"
    doc["datastores"][0]["free"] = "1TiB"
    f = tmp_path / "site.yml"
    f.write_text(yaml.safe_dump(doc))
    proc = twinsite_cmd("plan-placement", str(f), "--json")
    assert proc.returncode == 16, proc.stdout + proc.stderr
    error = json.loads(proc.stdout)["error"]
    assert error["where"] == f"{f}: datastore 'dr-ssd'"
    assert error["message"].startswith(f"datastore 'dr-ssd' is short by {SSD_NEED - TiB} bytes (106.0 GiB): ")


@pytest.mark.parametrize(
    ("change", "where", "message"),
    [
        ({"datastores": [{"name": "dr-ssd"}]}, "datastores[0]", "missing key 'capacity'"),
        ({"datastores": {"dr-ssd": "1TiB"}}, "datastores", "must be a list of mappings, got dict"),
        ({"scenarios": 3}, "scenarios", "scenarios must be a list of scenarios or the path of a scenario file"),
        ({"scenarios": [{"name": "erp", "master": "a"}]}, "scenarios", "problem(s) in the scenarios"),
        ({"scenarios": "missing.yml"}, "missing.yml", "problem(s) in the scenario configuration"),
    ],
    ids=["datastore-without-capacity", "datastores-not-a-list", "scenarios-not-a-list", "bad-scenario", "no-file"],
)
def test_bad_storage_input_names_the_file_and_the_key(
    tmp_path: Path, change: dict[str, object], where: str, message: str
) -> None:
    doc = {**yaml.safe_load(STORAGE.read_text()), **change}
    f = tmp_path / "site.yml"
    f.write_text(yaml.safe_dump(doc))
    proc = twinsite_cmd("plan-placement", str(f), "--json")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    error = json.loads(proc.stdout)["error"]
    assert message in error["message"], error
    assert str(f.parent) in error["where"] and where in error["where"], error

"""`twinsite plan-placement` on the documented example and on bad files (no vCenter needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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

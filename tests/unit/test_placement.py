"""Placement of replica VMs on DR hosts: anti-affinity, capacity, the host-failure reserve, clear refusals.

Every successful plan is checked by :func:`problems`, written here independently of the planner: it recomputes the
limits from the rules and looks for a restart of each failure case by exhaustive search (the planner uses
first-fit decreasing), so the tests do not merely trust the plan's own fields.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twinsite.config.loader import load_file
from twinsite.config.scenario import Scenario
from twinsite.errors import ConfigError, PlacementError
from twinsite.sync.progress import human_bytes
from twinsite.vsphere.placement import (
    Datastore,
    Disk,
    Host,
    Plan,
    Rules,
    Server,
    datastores_from,
    hosts_from,
    plan,
    rules_from,
    servers_from,
    standby_room,
    storage,
)

GiB = 1024  # in MiB


def can_restart(vms: Sequence[Server], free: list[tuple[float, float]]) -> bool:
    """Whether the VMs fit into the free (memory, vCPUs) of the surviving hosts, by trying every assignment."""
    if not vms:
        return True
    first, rest = vms[0], vms[1:]
    for k, (mem, cpu) in enumerate(free):
        if first.memory_mb <= mem and first.cpus <= cpu:
            after = [*free[:k], (mem - first.memory_mb, cpu - first.cpus), *free[k + 1 :]]
            if can_restart(rest, after):
                return True
    return False


def problems(
    servers: Sequence[Server], hosts: Sequence[Host], rules: Rules, assignment: Mapping[str, str]
) -> list[str]:
    """Everything wrong with an assignment under the rules; [] when it is a valid placement."""
    found = []
    by_name = {s.name: s for s in servers}
    if sorted(assignment) != sorted(by_name):
        found.append(f"placed {sorted(assignment)}, expected {sorted(by_name)}")
    mem_limit = {h.name: (h.memory_mb - rules.reserve_memory_mb) * rules.memory_overcommit for h in hosts}
    cpu_limit = {h.name: h.cores * rules.cpu_overcommit for h in hosts}
    used_mem = dict.fromkeys(mem_limit, 0)
    used_cpu = dict.fromkeys(mem_limit, 0)
    for name, host in assignment.items():
        used_mem[host] += by_name[name].memory_mb
        used_cpu[host] += by_name[name].cpus
    found += [f"{h}: memory {used_mem[h]} > {mem_limit[h]}" for h in mem_limit if used_mem[h] > mem_limit[h]]
    found += [f"{h}: vCPUs {used_cpu[h]} > {cpu_limit[h]}" for h in cpu_limit if used_cpu[h] > cpu_limit[h]]
    for a, b in itertools.combinations(servers, 2):
        if a.cluster is not None and a.cluster == b.cluster and assignment[a.name] == assignment[b.name]:
            found.append(f"{a.name} and {b.name} of cluster {a.cluster} share {assignment[a.name]}")
    for failed in itertools.combinations(mem_limit, rules.host_failures):
        vms = sorted((by_name[n] for n, h in assignment.items() if h in failed), key=lambda s: -s.memory_mb)
        free = [(mem_limit[h] - used_mem[h], cpu_limit[h] - used_cpu[h]) for h in mem_limit if h not in failed]
        if not can_restart(vms, free):
            found.append(f"failure of {failed} cannot be absorbed")
    return found


def white_paper() -> tuple[list[Server], list[Host]]:
    """3 two-node production clusters and 8 standalone servers; a 3-host DR cluster like the lab's."""
    nodes = [Server(f"{c}{n}", cpus=4, memory_mb=16 * GiB, cluster=c) for c in ("sql", "ora", "pg") for n in (1, 2)]
    standalone = [Server(f"app{n}", cpus=2, memory_mb=8 * GiB) for n in range(1, 9)]
    hosts = [Host(f"esx{n}", cores=32, memory_mb=256 * GiB) for n in (1, 2, 3)]
    return nodes + standalone, hosts


def host_usage(p: Plan) -> dict[str, tuple[int, int, int]]:
    return {h.host: (len(h.vms), h.cpus, h.memory_mb) for h in p.hosts}


def test_the_independent_checker_finds_problems() -> None:
    servers, hosts = white_paper()
    assert problems(servers, hosts, Rules(), dict.fromkeys((s.name for s in servers), "esx1")) == [
        "sql1 and sql2 of cluster sql share esx1",
        "ora1 and ora2 of cluster ora share esx1",
        "pg1 and pg2 of cluster pg share esx1",
    ]
    big = [Server(f"vm{n:02}", cpus=40, memory_mb=48 * GiB) for n in range(12)]
    by_four = {s.name: f"esx{n % 3 + 1}" for n, s in enumerate(big)}
    assert problems(big, hosts, Rules(), by_four) == [
        "esx1: vCPUs 160 > 128.0",
        "esx2: vCPUs 160 > 128.0",
        "esx3: vCPUs 160 > 128.0",
        "failure of ('esx1',) cannot be absorbed",
        "failure of ('esx2',) cannot be absorbed",
        "failure of ('esx3',) cannot be absorbed",
    ]
    assert problems(big, hosts, Rules(cpu_overcommit=5.0, host_failures=0), by_four) == []


# --- the white paper's example -----------------------------------------------------------------------------


@pytest.mark.parametrize(("host_failures", "spare_gib"), [(1, 512 - 160), (2, 256 - 160)])
def test_white_paper_example_fits_with_its_failure_reserve(host_failures: int, spare_gib: int) -> None:
    servers, hosts = white_paper()
    rules = Rules(host_failures=host_failures)
    p = plan(servers, hosts, rules)

    assert problems(servers, hosts, rules, p.assignment) == []
    assert len(p.assignment) == 14
    for cluster in ("sql", "ora", "pg"):
        assert p.assignment[f"{cluster}1"] != p.assignment[f"{cluster}2"]
    assert p.anti_affinity == {"ora": ("ora1", "ora2"), "pg": ("pg1", "pg2"), "sql": ("sql1", "sql2")}
    assert p.consolidation_ratio == pytest.approx(14 / 3)
    # balanced: two cluster nodes per host, the 8 standalone servers spread 3/3/2
    assert sorted(u[2] for u in host_usage(p).values()) == [48 * GiB, 56 * GiB, 56 * GiB]
    assert sorted(u[1] for u in host_usage(p).values()) == [12, 14, 14]
    assert {h.host: sorted(h.vms) for h in p.hosts} == {
        h: sorted(n for n, on in p.assignment.items() if on == h) for h in ("esx1", "esx2", "esx3")
    }
    # whichever hosts fail, what is left spare is the survivors' capacity minus all 160 GiB and 40 vCPUs
    assert p.failures_checked == 3
    assert p.worst_failure is not None
    assert p.worst_failure.ok
    assert p.worst_failure.failed_hosts == ("esx1", "esx2")[:host_failures]
    assert p.worst_failure.spare_memory_mb == spare_gib * GiB
    assert p.worst_failure.spare_cpus == 128 * (3 - host_failures) - 40


def test_white_paper_description() -> None:
    servers, hosts = white_paper()
    p = plan(servers, hosts)
    lines = p.describe()
    assert lines[0].split() == ["DR", "host", "VMs", "vCPUs", "(limit)", "memory", "(limit)", "servers"]
    for line, usage in zip(lines[1:4], p.hosts, strict=True):
        assert line.split()[:2] == [usage.host, str(len(usage.vms))]
        assert line.endswith(", ".join(usage.vms))
        assert f"{usage.cpus}/128" in line
        assert f"{usage.memory_mb / GiB:.1f} GiB/256.0 GiB" in line
    assert lines[4] == "consolidation: 14 servers on 3 hosts = 4.67 servers per host"
    assert lines[5:8] == [
        "anti-affinity rule ora: ora1, ora2",
        "anti-affinity rule pg: pg1, pg2",
        "anti-affinity rule sql: sql1, sql2",
    ]
    assert lines[8] == (
        "failure reserve: any single host failure can be absorbed (3 cases checked);"
        " worst case: esx1 down leaves 352.0 GiB memory and 216 vCPUs spare"
    )


def test_plan_is_deterministic_and_its_dict_plain_json() -> None:
    servers, hosts = white_paper()
    first, second = plan(servers, hosts), plan(servers, hosts)
    assert first == second
    d = first.to_dict()
    assert json.loads(json.dumps(d)) == d  # plain types only: a tuple would come back as a list
    assert json.dumps(d) == json.dumps(second.to_dict())
    assert list(d["assignment"]) == sorted(d["assignment"])
    assert d["server_count"] == 14
    assert d["host_count"] == 3
    assert d["consolidation_ratio"] == 4.67
    assert d["anti_affinity"] == {"ora": ["ora1", "ora2"], "pg": ["pg1", "pg2"], "sql": ["sql1", "sql2"]}
    assert [h["host"] for h in d["hosts"]] == ["esx1", "esx2", "esx3"]
    assert sum(h["vm_count"] for h in d["hosts"]) == 14
    assert d["failure_check"]["host_failures"] == 1
    assert d["failure_check"]["worst"]["spare_memory_mb"] == 352 * GiB
    assert d["rules"] == {"cpu_overcommit": 4.0, "memory_overcommit": 1.0, "host_failures": 1, "reserve_memory_mb": 0}
    # the order in which servers are listed does not matter
    assert plan(list(reversed(servers)), hosts).to_dict() == d


def test_plain_dicts_give_the_same_plan() -> None:
    servers, hosts = white_paper()
    server_items = [{"name": s.name, "cpus": s.cpus, "memory_mb": s.memory_mb, "cluster": s.cluster} for s in servers]
    host_items = [{"name": h.name, "cores": h.cores, "memory_mb": h.memory_mb} for h in hosts]
    assert servers_from(server_items) == tuple(servers)
    assert hosts_from(host_items) == tuple(hosts)
    assert rules_from(None) == Rules()
    assert rules_from({"host_failures": 2, "cpu_overcommit": 3}) == Rules(cpu_overcommit=3.0, host_failures=2)
    assert plan(servers_from(server_items), hosts_from(host_items), rules_from({})) == plan(servers, hosts)


@pytest.mark.parametrize("nodes", [2, 3])
def test_anti_affinity_wins_over_balancing(nodes: int) -> None:
    """Balancing alone would put every node on the big host, the one with the most free memory."""
    servers = [Server(f"db{n}", cpus=4, memory_mb=16 * GiB, cluster="db") for n in range(nodes)]
    servers.append(Server("app", cpus=2, memory_mb=8 * GiB))
    hosts = [Host("big", cores=64, memory_mb=1024 * GiB)] + [
        Host(f"small{n}", cores=16, memory_mb=128 * GiB) for n in range(nodes - 1)
    ]
    rules = Rules(host_failures=0)
    p = plan(servers, hosts, rules)
    assert problems(servers, hosts, rules, p.assignment) == []
    assert sorted(p.assignment[f"db{n}"] for n in range(nodes)) == sorted(h.name for h in hosts)
    assert p.assignment["app"] == "big"
    assert p.anti_affinity == {"db": tuple(f"db{n}" for n in range(nodes))}


# --- refusals ------------------------------------------------------------------------------------------------


def test_a_cluster_with_more_nodes_than_hosts_is_refused() -> None:
    servers, hosts = white_paper()
    rac = [Server(f"rac{n}", cpus=4, memory_mb=16 * GiB, cluster="rac") for n in range(1, 5)]
    with pytest.raises(PlacementError) as e:
        plan(servers + rac, hosts)
    assert e.value.where == "cluster 'rac'"
    assert e.value.message == (
        "cluster 'rac' has 4 nodes but the DR site has 3 hosts: anti-affinity needs a separate host for each"
        " node's replica"
    )
    assert e.value.hint == "add DR hosts (at least 4), or protect fewer nodes of 'rac'"
    assert e.value.exit_code == 16
    # three nodes on three hosts are fine, one per host
    p = plan(servers + rac[:3], hosts)
    assert sorted(p.assignment[f"rac{n}"] for n in (1, 2, 3)) == ["esx1", "esx2", "esx3"]


def test_memory_that_fits_only_without_the_failure_reserve() -> None:
    servers = [Server(f"vm{n:02}", cpus=4, memory_mb=48 * GiB) for n in range(12)]  # 576 GiB on 3 x 256 GiB
    _, hosts = white_paper()
    with pytest.raises(PlacementError) as e:
        plan(servers, hosts)
    assert e.value.where == "failure: DR host 'esx1' fails"
    assert e.value.message == (
        f"the 12 servers need {576 * GiB} MiB memory and 48 vCPUs, but if DR host 'esx1' fails the remaining"
        f" hosts allow {512 * GiB} MiB and 256 vCPUs (missing {64 * GiB} MiB memory)"
    )
    assert e.value.hint is not None
    assert "add a DR host" in e.value.hint
    assert "host_failures=0" in e.value.hint

    rules = Rules(host_failures=0)
    p = plan(servers, hosts, rules)
    assert problems(servers, hosts, rules, p.assignment) == []
    assert host_usage(p) == {h: (4, 16, 192 * GiB) for h in ("esx1", "esx2", "esx3")}
    assert (p.worst_failure, p.failures_checked) == (None, 0)
    assert p.describe()[-1] == "failure reserve: not checked (host_failures=0)"


def test_spare_memory_in_pieces_too_small_is_no_reserve() -> None:
    """128 GiB spare in total would hold a 40 GiB VM, but no single host keeps 40 GiB free."""
    servers = [Server(f"vm{n}", cpus=2, memory_mb=40 * GiB) for n in range(3)]
    hosts = [Host(f"esx{n}", cores=16, memory_mb=64 * GiB) for n in (1, 2, 3)]
    with pytest.raises(PlacementError) as e:
        plan(servers, hosts)
    assert e.value.where == "failure: DR host 'esx1' fails"
    assert e.value.message == (
        "found no placement with a reserve for 1 host failure (the servers fit without one): in the best placement"
        " found, if DR host 'esx1' fails, vSphere HA cannot restart 1 of the 1 VMs that ran there (vm0): they need"
        f" {40 * GiB} MiB and 2 vCPUs, the remaining hosts have {48 * GiB} MiB and 124 vCPUs free (enough in total,"
        " but no single remaining host has room for 'vm0'); 3 of 3 failure cases fail"
    )
    assert e.value.hint is not None
    assert e.value.hint.startswith("add a DR host (the spare capacity is split")
    rules = Rules(host_failures=0)
    assert problems(servers, hosts, rules, plan(servers, hosts, rules).assignment) == []


def test_a_reserve_that_balancing_alone_misses_is_found() -> None:
    """Balancing puts the two small VMs on two hosts; then no host could take the big one. The improvement step
    puts them together and keeps a whole host free."""
    servers = [
        Server("small1", cpus=2, memory_mb=32 * GiB),
        Server("big", cpus=2, memory_mb=64 * GiB),
        Server("small2", cpus=2, memory_mb=32 * GiB),
    ]
    hosts = [Host(f"esx{n}", cores=32, memory_mb=64 * GiB) for n in (1, 2, 3)]
    p = plan(servers, hosts)
    assert problems(servers, hosts, Rules(), p.assignment) == []
    assert p.assignment["small1"] == p.assignment["small2"] != p.assignment["big"]
    assert sorted(u[2] for u in host_usage(p).values()) == [0, 64 * GiB, 64 * GiB]
    assert p.worst_failure is not None
    assert p.worst_failure.spare_memory_mb == 0


@pytest.mark.parametrize(
    ("server_cpus", "cpu_overcommit", "host_failures", "refusal"),
    [
        ([8, 8, 8, 8], 2.0, 0, None),  # 16 vCPUs per 8-core host: two VMs each
        ([8, 8, 8, 8], 1.5, 0, "the 2 hosts allow 131072 MiB and 24 vCPUs (missing 8 vCPUs)"),
        ([8, 8, 8, 8], 4.0, 1, None),  # one host takes all four after a failure
        ([8, 8, 8, 8], 2.0, 1, "the remaining hosts allow 65536 MiB and 16 vCPUs (missing 16 vCPUs)"),
        (
            [5, 5, 5],  # 15 of 16 vCPUs, but no host takes two
            1.0,
            0,
            "found no DR host for server 'vm2' (5 vCPUs, 8192 MiB) after placing 2 of 3 servers, largest first:"
            " esx1 has 3 vCPUs free (missing 2); esx2 has 3 vCPUs free (missing 2)",
        ),
    ],
)
def test_cpu_overcommit_limits_vcpus_per_host(
    server_cpus: list[int], cpu_overcommit: float, host_failures: int, refusal: str | None
) -> None:
    servers = [Server(f"vm{n}", cpus=c, memory_mb=8 * GiB) for n, c in enumerate(server_cpus)]
    hosts = [Host(f"esx{n}", cores=8, memory_mb=64 * GiB) for n in (1, 2)]
    rules = Rules(cpu_overcommit=cpu_overcommit, host_failures=host_failures)
    if refusal is None:
        p = plan(servers, hosts, rules)
        assert problems(servers, hosts, rules, p.assignment) == []
        assert [h.cpu_capacity for h in p.hosts] == [int(8 * cpu_overcommit)] * 2
        return
    with pytest.raises(PlacementError) as e:
        plan(servers, hosts, rules)
    assert refusal in e.value.message
    assert e.value.hint is not None
    assert f"raise cpu_overcommit (now {cpu_overcommit})" in e.value.hint


@pytest.mark.parametrize(
    ("server", "rules", "why"),
    [
        (
            Server("huge", cpus=8, memory_mb=300 * GiB),
            Rules(),
            f"the largest DR host (esx2) has {256 * GiB} MiB usable memory, missing {44 * GiB} MiB",
        ),
        (
            Server("huge", cpus=8, memory_mb=250 * GiB),
            Rules(reserve_memory_mb=8 * GiB),
            f"the largest DR host (esx2) has {248 * GiB} MiB usable memory, missing {2 * GiB} MiB",
        ),
        (
            Server("huge", cpus=200, memory_mb=8 * GiB),
            Rules(),
            "the DR host with most vCPUs (esx1) allows 128 (cores x cpu_overcommit 4.0), missing 72 vCPUs",
        ),
    ],
)
def test_a_server_bigger_than_any_host_is_refused(server: Server, rules: Rules, why: str) -> None:
    hosts = [Host("esx1", cores=32, memory_mb=128 * GiB), Host("esx2", cores=16, memory_mb=256 * GiB)]
    with pytest.raises(PlacementError) as e:
        plan([Server("small", cpus=2, memory_mb=8 * GiB), server], hosts, rules)
    assert e.value.where == "server 'huge'"
    assert e.value.message.startswith("server 'huge' (")
    assert e.value.message.endswith(f") fits on no DR host: {why}")


@pytest.mark.parametrize(("memory_gib", "fits"), [(248, True), (249, False)])
def test_reserve_and_overcommit_set_the_memory_limit(memory_gib: int, fits: bool) -> None:
    hosts = [Host("esx1", cores=32, memory_mb=256 * GiB)]
    rules = Rules(host_failures=0, reserve_memory_mb=8 * GiB)
    servers = [Server("a", cpus=4, memory_mb=memory_gib * GiB)]
    if fits:
        [usage] = plan(servers, hosts, rules).hosts
        assert (usage.memory_mb, usage.memory_capacity_mb, usage.memory_percent) == (248 * GiB, 248 * GiB, 100.0)
    else:
        with pytest.raises(PlacementError, match=f"has {248 * GiB} MiB usable memory, missing 1024 MiB"):
            plan(servers, hosts, rules)
    over = Rules(host_failures=0, reserve_memory_mb=8 * GiB, memory_overcommit=1.5, cpu_overcommit=2.5)
    [usage] = plan([Server("a", cpus=80, memory_mb=372 * GiB)], hosts, over).hosts
    assert (usage.memory_capacity_mb, usage.cpu_capacity, usage.cpu_percent) == (372 * GiB, 80, 100.0)


@pytest.mark.parametrize(
    ("servers", "hosts", "rules", "error", "where", "message"),
    [
        ([], [], Rules(), PlacementError, "hosts", "no DR hosts to place the replicas on"),
        (
            [Server("a", 1, 1024)],
            [Host("esx1", 8, 4096)],
            Rules(),
            PlacementError,
            "rules",
            "host_failures=1 cannot be tolerated with 1 DR hosts: no host would be left",
        ),
        (
            [Server("a", 1, 1024), Server("b", 1, 1024), Server("a", 2, 2048)],
            [Host("esx1", 8, 4096), Host("esx2", 8, 4096)],
            Rules(),
            ConfigError,
            "servers[2]",
            "name 'a' is already used by servers[0]",
        ),
        (
            [Server("a", 1, 1024)],
            [Host("esx1", 8, 4096), Host("esx1", 8, 4096)],
            Rules(),
            ConfigError,
            "hosts[1]",
            "name 'esx1' is already used by hosts[0]",
        ),
        (
            [Server("a", 1, 1024)],
            [Host("esx1", 8, 4096), Host("esx2", 8, 4096)],
            Rules(reserve_memory_mb=4096),
            PlacementError,
            "host 'esx1'",
            "reserve_memory_mb 4096 leaves no memory of its 4096 MiB",
        ),
    ],
)
def test_impossible_or_inconsistent_input_is_refused(
    servers: list[Server], hosts: list[Host], rules: Rules, error: type[Exception], where: str, message: str
) -> None:
    with pytest.raises(error) as e:
        plan(servers, hosts, rules)
    assert isinstance(e.value, PlacementError | ConfigError)
    assert (e.value.where, e.value.message) == (where, message)


# --- malformed input -----------------------------------------------------------------------------------------

GOOD = {"name": "db1", "cpus": 4, "memory_mb": 16384, "cluster": "db"}


@pytest.mark.parametrize(
    ("items", "where", "message"),
    [
        (
            [GOOD, {**GOOD, "name": "db2", "mem": 3}],
            "servers[1]",
            "unknown key 'mem' (known keys: name, cpus, memory_mb, cluster, datastore, disk_size, disks, standby)",
        ),
        ([GOOD, {"name": "db2", "cpus": 4}], "servers[1]", "missing key 'memory_mb'"),
        ([{**GOOD, "cpus": -4}], "servers[0]", "cpus must be positive, got -4"),
        ([{**GOOD, "memory_mb": 0}], "servers[0]", "memory_mb must be positive, got 0"),
        ([{**GOOD, "memory_mb": "16GiB"}], "servers[0]", "memory_mb must be an integer, got str '16GiB'"),
        ([{**GOOD, "cpus": True}], "servers[0]", "cpus must be an integer, got bool True"),
        ([{**GOOD, "cluster": ""}], "servers[0]", "cluster must be a non-empty string, got ''"),
        ([GOOD, {**GOOD, "cluster": None}], "servers[1]", "name 'db1' is already used by servers[0]"),
        ([GOOD, "db2"], "servers[1]", "must be a mapping, got str 'db2'"),
        ({"db1": GOOD}, "servers", "must be a list of mappings, got dict"),
    ],
)
def test_malformed_servers_name_the_item_and_key(items: Any, where: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        servers_from(items)
    assert (e.value.where, e.value.message) == (where, message)
    assert str(e.value) == f"{where}: {message}"


@pytest.mark.parametrize(
    ("items", "where", "message"),
    [
        ([{"name": "esx1", "cores": 32}], "hosts[0]", "missing key 'memory_mb'"),
        (
            [{"name": "esx1", "cores": 32, "memory_mb": 1, "cpus": 2}],
            "hosts[0]",
            "unknown key 'cpus' (known keys: name, cores, memory_mb)",
        ),
        ([{"name": "esx1", "cores": 0, "memory_mb": 1}], "hosts[0]", "cores must be positive, got 0"),
        (
            [{"name": "esx1", "cores": 1, "memory_mb": 1}, {"name": "esx1", "cores": 1, "memory_mb": 1}],
            "hosts[1]",
            "name 'esx1' is already used by hosts[0]",
        ),
    ],
)
def test_malformed_hosts_name_the_item_and_key(items: Any, where: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        hosts_from(items)
    assert (e.value.where, e.value.message) == (where, message)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"host_failure": 1},
            "unknown key 'host_failure'"
            " (known keys: cpu_overcommit, memory_overcommit, host_failures, reserve_memory_mb)",
        ),
        ({"host_failures": -1}, "host_failures must be at least 0, got -1"),
        ({"cpu_overcommit": "4"}, "cpu_overcommit must be a number, got str '4'"),
        ({"memory_overcommit": 0}, "memory_overcommit must be a positive number, got 0"),
        ({"reserve_memory_mb": 1.5}, "reserve_memory_mb must be an integer, got float 1.5"),
    ],
)
def test_malformed_rules_name_the_key(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as e:
        rules_from(data)
    assert (e.value.where, e.value.message) == ("rules", message)


def test_dataclasses_check_their_fields_too() -> None:
    with pytest.raises(ConfigError, match=r"^server 'db1': cpus must be positive, got 0$"):
        Server("db1", cpus=0, memory_mb=1024)
    with pytest.raises(ConfigError, match=r"^host 'esx1': memory_mb must be positive, got -1$"):
        Host("esx1", cores=8, memory_mb=-1)
    with pytest.raises(ConfigError, match=r"^rules: cpu_overcommit must be a positive number, got -1.0$"):
        Rules(cpu_overcommit=-1.0)


# --- storage: datastores, data disks, the standby's room for journal, rewind log and spool -----------------

MiB_B, GiB_B = 2**20, 2**30  # in bytes

# Three scenarios as a site declares them, read by the real loader: explicit sizes, defaults (journal 1GiB,
# cdp 10GiB but only when enabled, spool 10GiB), and one whose standby is another host.
SCENARIOS = """
scenarios:
  - name: db
    master: prod1
    replicas: [db-dr]
    roots: [{path: /srv/db}]
    journal: {max_size: 512MiB}
    cdp: {enabled: true, max_size: 3GiB}
    assured_recovery: {spool: {max_size: 2GiB}}
  - name: share
    master: prod1
    replicas: [db-dr, files-dr]
    roots: [{path: /srv/share}]
    cdp: {max_size: 50GiB}
  - name: web
    master: prod2
    replicas: [files-dr]
    roots: [{path: /srv/www}]
    cdp: {enabled: true}
    journal: {max_size: 100MiB}
    assured_recovery: {spool: {max_size: 1GiB}}
"""
# What those declare, by standby (journal, rewind log, spool), worked out by hand from the text above:
ROOM = {
    "db-dr": (512 * MiB_B + 1 * GiB_B, 3 * GiB_B, 2 * GiB_B + 10 * GiB_B),  # share's cdp is off: no rewind log
    "files-dr": (1 * GiB_B + 100 * MiB_B, 10 * GiB_B, 10 * GiB_B + 1 * GiB_B),
}


def scenarios_from_text(tmp_path: Path) -> list[Scenario]:
    f = tmp_path / "scenarios.yml"
    f.write_text(SCENARIOS)
    return load_file(f)


def storage_shortfalls(
    servers: Sequence[Server], datastores: Sequence[Datastore], room: Mapping[str, tuple[int, int, int]]
) -> dict[str, int]:
    """The independent checker: bytes missing on each datastore (only the short ones), summed here directly."""
    used = {d.name: 0 for d in datastores}
    for s in servers:
        used[s.datastore or ""] += s.disk_size + sum(room.get(s.standby or s.name, (0, 0, 0)))
        for disk in s.disks:
            used[disk.datastore or s.datastore or ""] += disk.size
    free = {d.name: d.capacity if d.free is None else d.free for d in datastores}
    return {name: used[name] - free[name] for name in free if used[name] > free[name]}


def storage_site(db_disk_ds: str = "fast") -> tuple[list[Server], list[Host]]:
    servers = [
        Server("db-dr", cpus=4, memory_mb=8 * GiB, datastore="fast", disk_size=16 * GiB_B,
               disks=(Disk(40 * GiB_B), Disk(100 * GiB_B, db_disk_ds))),
        Server("files-dr", cpus=2, memory_mb=4 * GiB, datastore="bulk", disk_size=16 * GiB_B,
               disks=(Disk(500 * GiB_B),)),
        Server("app-dr", cpus=2, memory_mb=4 * GiB, datastore="fast", disk_size=8 * GiB_B),  # standby of none
    ]  # fmt: skip
    return servers, [Host("esx1", cores=16, memory_mb=64 * GiB), Host("esx2", cores=16, memory_mb=64 * GiB)]


def test_the_storage_checker_finds_shortfalls() -> None:
    servers, _ = storage_site()
    assert storage_shortfalls(servers, [Datastore("fast", 100 * GiB_B), Datastore("bulk", 10**15)], ROOM) == {
        "fast": 16 * GiB_B + 40 * GiB_B + 100 * GiB_B + 8 * GiB_B + sum(ROOM["db-dr"]) - 100 * GiB_B
    }


def test_a_plan_that_fits_its_datastores(tmp_path: Path) -> None:
    servers, hosts = storage_site()
    scenarios = scenarios_from_text(tmp_path)
    fast_need = 16 * GiB_B + 40 * GiB_B + 100 * GiB_B + 8 * GiB_B + sum(ROOM["db-dr"])
    datastores = [Datastore("fast", 2048 * GiB_B, free=fast_need), Datastore("bulk", 1024 * GiB_B)]
    assert storage_shortfalls(servers, datastores, ROOM) == {}

    p = plan(servers, hosts, Rules(), datastores=datastores, scenarios=scenarios)

    assert problems(servers, hosts, Rules(), p.assignment) == []
    fast, bulk = p.to_dict()["datastores"]
    assert (fast["datastore"], fast["needed"], fast["free"], fast["left"]) == ("fast", fast_need, fast_need, 0)
    assert bulk["needed"] == 16 * GiB_B + 500 * GiB_B + sum(ROOM["files-dr"])
    parts = {(x["vm"], x["what"]): x["bytes"] for x in fast["parts"]}
    assert parts[("db-dr", "journal")] == ROOM["db-dr"][0]
    assert parts[("db-dr", "rewind log")] == ROOM["db-dr"][1]
    assert parts[("db-dr", "spool")] == ROOM["db-dr"][2]
    assert parts[("db-dr", "data disk 2")] == 100 * GiB_B
    assert ("app-dr", "journal") not in parts  # the standby of no scenario needs no room
    assert (
        p.describe()[-2]
        == "datastore fast: 180.5 GiB needed of 180.5 GiB free (2.0 TiB capacity), 0 B left: db-dr, app-dr"
    )


def test_a_plan_short_of_datastore_space_says_by_how_much(tmp_path: Path) -> None:
    servers, hosts = storage_site()
    scenarios = scenarios_from_text(tmp_path)
    datastores = [Datastore("fast", 2048 * GiB_B, free=150 * GiB_B), Datastore("bulk", 1024 * GiB_B)]
    short = storage_shortfalls(servers, datastores, ROOM)
    assert short == {"fast": 30 * GiB_B + 512 * MiB_B}  # 180.5 GiB needed

    with pytest.raises(PlacementError) as e:
        plan(servers, hosts, Rules(), datastores=datastores, scenarios=scenarios)

    assert e.value.where == "datastore 'fast'"
    assert e.value.message.startswith(f"datastore 'fast' is short by {short['fast']} bytes (30.5 GiB): ")
    assert f"and it has {150 * GiB_B} bytes (150.0 GiB) free" in e.value.message
    assert "db-dr: template disks 16.0 GiB, journal 1.5 GiB, rewind log 3.0 GiB, spool 12.0 GiB" in e.value.message
    assert "lower the scenarios' journal.max_size" in (e.value.hint or "")


def test_every_short_datastore_is_named(tmp_path: Path) -> None:
    servers, hosts = storage_site()
    datastores = [Datastore("fast", 100 * GiB_B), Datastore("bulk", 500 * GiB_B)]
    short = storage_shortfalls(servers, datastores, ROOM)
    with pytest.raises(PlacementError) as e:
        plan(servers, hosts, datastores=datastores, scenarios=scenarios_from_text(tmp_path))
    assert e.value.where == "datastore 'fast', datastore 'bulk'"
    for name, n in short.items():
        assert f"datastore {name!r} is short by {n} bytes" in e.value.message


def test_data_disks_go_to_their_own_datastore() -> None:
    servers, hosts = storage_site(db_disk_ds="bulk")  # db-dr's 100 GiB disk on bulk
    datastores = [Datastore("fast", 64 * GiB_B + 8 * GiB_B), Datastore("bulk", 616 * GiB_B)]
    assert storage_shortfalls(servers, datastores, {}) == {}
    p = plan(servers, hosts, datastores=datastores)  # no scenarios: no room for them
    assert [d.short for d in p.datastores] == [0, 0]
    with pytest.raises(PlacementError) as e:
        plan(servers, hosts, datastores=[datastores[0], Datastore("bulk", 616 * GiB_B - 1)])
    assert e.value.message.startswith("datastore 'bulk' is short by 1 bytes (1 B): ")


def test_plans_without_datastores_ignore_scenarios_and_stay_as_they_were(tmp_path: Path) -> None:
    servers, hosts = white_paper()
    with_scenarios = plan(servers, hosts, scenarios=scenarios_from_text(tmp_path))
    assert with_scenarios == plan(servers, hosts)
    assert "datastores" not in with_scenarios.to_dict()


def test_standby_room_sums_the_scenarios_max_sizes(tmp_path: Path) -> None:
    scenarios = scenarios_from_text(tmp_path)
    for host, (journal, rewind_log, spool) in ROOM.items():
        room = standby_room(scenarios, host)
        assert (room.journal, room.rewind_log, room.spool, room.total) == (
            journal,
            rewind_log,
            spool,
            journal + rewind_log + spool,
        )
    assert standby_room(scenarios, "db-dr").scenarios == ("db", "share")
    assert standby_room(scenarios, "prod1").total == 0  # the active host is no standby


def test_the_standby_key_maps_a_replica_vm_to_its_scenarios_host(tmp_path: Path) -> None:
    server = Server("db-replica-vm", cpus=2, memory_mb=1024, datastore="ds", standby="db-dr")
    need = sum(ROOM["db-dr"])
    ds = Datastore("ds", need)
    hosts = [Host("esx1", cores=4, memory_mb=4096), Host("esx2", cores=4, memory_mb=4096)]
    assert plan([server], hosts, datastores=[ds], scenarios=scenarios_from_text(tmp_path)).datastores[0].needed == need
    with pytest.raises(PlacementError, match="is short by 1 bytes"):
        plan([server], hosts, datastores=[Datastore("ds", need - 1)], scenarios=scenarios_from_text(tmp_path))


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(
        st.tuples(
            st.integers(0, 3),  # home datastore
            st.integers(0, 10 * GiB_B),  # template disks
            st.lists(st.tuples(st.integers(1, 10 * GiB_B), st.sampled_from([None, 0, 1, 2, 3])), max_size=3),
        ),
        min_size=1,
        max_size=6,
    ),
    free=st.lists(st.integers(0, 40 * GiB_B), min_size=4, max_size=4),
)
def test_storage_refuses_exactly_what_the_checker_finds_short(
    sizes: list[tuple[int, int, list[tuple[int, int | None]]]], free: list[int]
) -> None:
    servers = [
        Server(f"vm{i}", cpus=1, memory_mb=64, datastore=f"ds{home}", disk_size=disk,
               disks=tuple(Disk(n, None if d is None else f"ds{d}") for n, d in data))
        for i, (home, disk, data) in enumerate(sizes)
    ]  # fmt: skip
    datastores = [Datastore(f"ds{k}", 50 * GiB_B, free=f) for k, f in enumerate(free)]
    short = storage_shortfalls(servers, datastores, {})
    if not short:
        usage = storage(servers, datastores)
        assert [u.short for u in usage] == [0] * len(datastores)
        assert sum(u.needed for u in usage) == sum(s.disk_size + sum(d.size for d in s.disks) for s in servers)
        return
    with pytest.raises(PlacementError) as e:
        storage(servers, datastores)
    assert e.value.where == ", ".join(f"datastore {name!r}" for name in short)
    for name, n in short.items():
        assert f"datastore {name!r} is short by {n} bytes ({human_bytes(n)})" in e.value.message


# --- malformed storage input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("items", "where", "message"),
    [
        ([{"name": "ds1"}], "datastores[0]", "missing key 'capacity'"),
        (
            [{"name": "ds1", "capacity": "1TiB", "size": 3}],
            "datastores[0]",
            "unknown key 'size' (known keys: name, capacity, free)",
        ),
        (
            [{"name": "ds1", "capacity": "lots"}],
            "datastores[0]",
            "capacity must be a size (bytes, or a number with a unit: 20GiB, 1.5TB), got 'lots'",
        ),
        ([{"name": "ds1", "capacity": 0}], "datastores[0]", "capacity must be positive, got 0"),
        ([{"name": "ds1", "capacity": "1TiB", "free": -1}], "datastores[0]", "free must be at least 0, got -1"),
        ([{"name": "ds1", "capacity": True}], "datastores[0]", "capacity must be an integer, got bool True"),
        (
            [{"name": "ds1", "capacity": "1GiB", "free": "2GiB"}],
            "datastores[0]",
            f"free ({2 * GiB_B}) is more than capacity ({GiB_B})",
        ),
        (
            [{"name": "ds1", "capacity": 1}, {"name": "ds1", "capacity": 2}],
            "datastores[1]",
            "name 'ds1' is already used by datastores[0]",
        ),
        ({"ds1": {}}, "datastores", "must be a list of mappings, got dict"),
    ],
)
def test_malformed_datastores_name_the_item_and_key(items: Any, where: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        datastores_from(items)
    assert (e.value.where, e.value.message) == (where, message)


@pytest.mark.parametrize(
    ("extra", "where", "message"),
    [
        ({"disks": [{"size": "10GiB", "thin": True}]}, "servers[0].disks[0]",
         "unknown key 'thin' (known keys: size, datastore, provisioning)"),
        ({"disks": [{"datastore": "ds1"}]}, "servers[0].disks[0]", "missing key 'size'"),
        ({"disks": [{"size": "10 parsecs"}]}, "servers[0].disks[0]",
         "size must be a size (bytes, or a number with a unit: 20GiB, 1.5TB), got '10 parsecs'"),
        ({"disks": [{"size": 0}]}, "servers[0].disks[0]", "size must be positive, got 0"),
        ({"disks": [{"size": 1, "datastore": ""}]}, "servers[0].disks[0]",
         "datastore must be a non-empty string, got ''"),
        ({"disks": {"size": 1}}, "servers[0].disks", "must be a list of mappings, got dict"),
        ({"disk_size": -1}, "servers[0]", "disk_size must be at least 0, got -1"),
        ({"datastore": 7}, "servers[0]", "datastore must be a non-empty string, got 7"),
    ],
)  # fmt: skip
def test_malformed_server_storage_names_the_item_and_key(extra: dict[str, Any], where: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        servers_from([{**GOOD, **extra}])
    assert (e.value.where, e.value.message) == (where, message)


def test_server_storage_from_plain_values() -> None:
    item = {**GOOD, "datastore": "ds1", "disk_size": "16GiB", "standby": "dr1",
            "disks": [{"size": "20GiB", "provisioning": "thick"}, {"size": 1024, "datastore": "ds2"}]}  # fmt: skip
    assert servers_from([item]) == (
        Server("db1", 4, 16384, "db", datastore="ds1", disk_size=16 * GiB_B, standby="dr1",
               disks=(Disk(20 * GiB_B), Disk(1024, "ds2"))),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("server", "datastores", "where", "message"),
    [
        (Server("a", 1, 64, datastore="nope"), [Datastore("ds1", 1)], "server 'a'",
         "datastore 'nope' is not one of the datastores ('ds1')"),
        (Server("a", 1, 64, datastore="ds1", disks=(Disk(1), Disk(1, "nope"))), [Datastore("ds1", 9)], "server 'a'",
         "disks[1].datastore 'nope' is not one of the datastores ('ds1')"),
        (Server("a", 1, 64), [Datastore("ds1", 1)], "server 'a'",
         "datastore is missing: with datastores given, every replica VM needs the one its files go on"),
        (Server("a", 1, 64, datastore="ds1"), [], "server 'a'",
         "storage (datastore, disk_size, disks) is given, but no datastores to check it against"),
        (Server("a", 1, 64, datastore="ds1"), [Datastore("ds1", 1), Datastore("ds1", 2)], "datastores[1]",
         "name 'ds1' is already used by datastores[0]"),
    ],
)  # fmt: skip
def test_inconsistent_storage_is_refused_naming_the_server(
    server: Server, datastores: list[Datastore], where: str, message: str
) -> None:
    with pytest.raises(ConfigError) as e:
        plan([server], [Host("esx1", 4, 4096)], Rules(host_failures=0), datastores=datastores)
    assert (e.value.where, e.value.message) == (where, message)


def test_storage_dataclasses_check_their_fields() -> None:
    with pytest.raises(ConfigError, match=r"^datastore 'ds1': free \(3\) is more than capacity \(2\)$"):
        Datastore("ds1", capacity=2, free=3)
    with pytest.raises(ConfigError, match=r"^disk: size must be positive, got 0$"):
        Disk(0)
    with pytest.raises(ConfigError, match=r"^server 'a': disk_size must be at least 0, got -5$"):
        Server("a", 1, 64, disk_size=-5)

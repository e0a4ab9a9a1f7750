"""``twinsite plan-placement FILE`` and ``twinsite fence VM``: vSphere work that scripts and runbooks call.

``plan-placement`` is pure computation over a YAML file of DR hosts, protected servers and rules, and optionally
datastores with the scenarios (inline, or the path of a scenario file) whose standbys need room on them (see
docs/examples/placement.yml). ``fence`` powers off a VM through vCenter; it reads the connection from
TWINSITE_VCENTER_HOSTNAME, _PORT, _USERNAME, _PASSWORD, _CA_FILE, _VALIDATE_CERTS and _TIMEOUT (never from the
command line, where other users could read the password).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import yaml

from twinsite.errors import ConfigError, TwinsiteError

PLACEMENT_KEYS = ("hosts", "servers", "rules", "datastores", "scenarios")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("plan-placement", help="place protected servers' replica VMs on DR hosts (anti-affinity, HA)")
    p.add_argument("file", type=Path, metavar="FILE", help="YAML with hosts, servers and rules")
    p.add_argument("--json", action="store_true", help="print the JSON contract instead of text")
    p.set_defaults(handler=_plan)
    f = sub.add_parser("fence", help="power off a VM through vCenter (the fence step of an unplanned switchover)")
    f.add_argument("vm", metavar="VM", help="the VM to power off")
    f.add_argument("--datacenter", help="the datacenter to look for it in (default: all)")
    f.add_argument("--record", type=Path, help="append the result to this JSON-lines file (fsynced)")
    f.add_argument("--release", action="store_true", help="power the VM on again: its site is repaired")
    f.add_argument("--json", action="store_true", help="print the JSON contract instead of text")
    f.set_defaults(handler=_fence)


def load_placement(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read the placement file: {exc.strerror}", where=str(path)) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", where=str(path)) from exc
    if not isinstance(doc, dict):
        raise ConfigError("a placement file is a mapping with hosts, servers and rules", where=str(path))
    unknown = sorted(set(doc) - set(PLACEMENT_KEYS))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(map(repr, unknown))}",
            where=str(path),
            hint=f"keys: {', '.join(PLACEMENT_KEYS)}",
        )
    for key in ("hosts", "servers"):
        if key not in doc:
            raise ConfigError(f"missing key {key!r}", where=str(path))
    return doc


def placement_scenarios(value: Any, path: Path) -> list[Any]:
    """The ``scenarios`` of a placement file: a list of scenario documents, or the path of a scenario file
    (relative to the placement file); checked by the scenario schema."""
    from twinsite.config.loader import load_file, load_site

    if value is None:
        return []
    if isinstance(value, str):
        return load_file(path.parent / value)
    if not isinstance(value, list):
        raise ConfigError(
            f"scenarios must be a list of scenarios or the path of a scenario file, got {type(value).__name__}",
            where=f"{path}: scenarios",
        )
    return load_site({"twinsite_scenarios": value}, f"{path}: scenarios")[0]


def _plan(args: argparse.Namespace) -> tuple[Any, str]:
    from twinsite.vsphere.placement import datastores_from, hosts_from, plan, rules_from, servers_from

    doc = load_placement(args.file)
    scenarios = placement_scenarios(doc.get("scenarios"), args.file)
    try:
        result = plan(
            servers_from(doc["servers"]),
            hosts_from(doc["hosts"]),
            rules_from(doc.get("rules")),
            datastores=datastores_from([] if doc.get("datastores") is None else doc["datastores"]),
            scenarios=scenarios,
        )
    except TwinsiteError as exc:  # bad input or no placement: name the file
        exc.where = f"{args.file}: {exc.where}" if exc.where else str(args.file)
        raise
    return result.to_dict(), "\n".join(result.describe())


def credentials_from_env() -> Any:
    from twinsite.vsphere.connection import Credentials

    env = os.environ
    try:
        port = int(env.get("TWINSITE_VCENTER_PORT", "443"))
        timeout = float(env.get("TWINSITE_VCENTER_TIMEOUT", "30"))
    except ValueError as exc:
        raise ConfigError("TWINSITE_VCENTER_PORT or TWINSITE_VCENTER_TIMEOUT is not a number") from exc
    return Credentials(
        hostname=env.get("TWINSITE_VCENTER_HOSTNAME", ""),
        username=env.get("TWINSITE_VCENTER_USERNAME", ""),
        password=env.get("TWINSITE_VCENTER_PASSWORD", ""),
        port=port,
        validate_certs=env.get("TWINSITE_VCENTER_VALIDATE_CERTS", "true").lower() not in ("0", "false", "no"),
        ca_file=env.get("TWINSITE_VCENTER_CA_FILE") or None,
        timeout=timeout,
    )


def _fence(args: argparse.Namespace) -> tuple[Any, str]:
    from twinsite.vsphere.connection import connect
    from twinsite.vsphere.fence import fence, release

    with connect(credentials_from_env()) as session:
        if args.release:
            result = release(session, args.vm, datacenter=args.datacenter)
        else:
            result = fence(session, args.vm, datacenter=args.datacenter, record=args.record)
    return result, f"{args.vm}: {result['action']} (was {result['previous_state']}) at {result['at']}"

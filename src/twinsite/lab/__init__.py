"""The lab: a production host, a DR host and a client on one machine, plus DNS and a vCenter simulator.

``up`` and ``down`` are idempotent; ``down`` leaves no namespace, process, mount or loop device behind.
``cut`` and ``heal`` pull and replug a host's network cable. See docs/lab.md.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from twinsite.errors import LabError
from twinsite.lab import dns, hosts, mariadb, netns, pg, vcsim, volumes, web
from twinsite.lab.topology import DNS_ZONE, VCENTER_USER, Lab, LabHost
from twinsite.proc import run

__all__ = ["Lab", "LabHost", "cut", "down", "exec_argv", "heal", "partition", "status", "up"]


def _require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, mounts)", hint="run it as root")


def _ensure_ctl(lab: Lab) -> None:
    ns = lab.ctl_netns
    netns.add(ns)
    if not netns.link_exists("br0", ns):
        run(["ip", "-n", ns, "link", "add", "br0", "type", "bridge"])
        run(["ip", "-n", ns, "addr", "add", f"{lab.ctl_address}/24", "dev", "br0"])
        run(["ip", "-n", ns, "link", "set", "br0", "up"])
    if not netns.link_exists(lab.uplink):
        # The controller's own namespace joins the bridge, so ansible, ssh and the CLI reach the lab
        # without `ip netns exec`. Only this /24 is routed there; the lab has no route anywhere else.
        run(["ip", "link", "add", lab.uplink, "type", "veth", "peer", "name", "up0", "netns", ns])
        run(["ip", "-n", ns, "link", "set", "up0", "master", "br0", "up"])
        run(["ip", "addr", "add", f"{lab.uplink_address}/24", "dev", lab.uplink])
        run(["ip", "link", "set", lab.uplink, "up"])


@dataclass(frozen=True)
class UpReport:
    seconds: dict[str, float]


def up(lab: Lab) -> UpReport:
    """Bring every part of the lab up; parts already running are left alone."""
    _require_root()
    timings: dict[str, float] = {}

    def step(name: str, fn: Any, *args: Any) -> None:
        t0 = time.monotonic()
        fn(*args)
        timings[name] = round(time.monotonic() - t0, 3)

    lab.root.mkdir(parents=True, exist_ok=True, mode=0o700)
    step("network", _ensure_ctl, lab)
    step("keys", hosts.ensure_keys, lab)
    hosts.write_client_files(lab)
    for h in lab.hosts:
        step(h.name, hosts.start, lab, h)
    step("dns", dns.start, lab)
    step("vcenter", vcsim.start, lab)
    step("postgresql", pg.ensure, lab)
    step("mariadb", mariadb.ensure, lab)
    _ensure_app_data(lab)
    step("nginx", web.ensure, lab)
    return UpReport(seconds=timings)


def _ensure_app_data(lab: Lab) -> None:
    """The data of the lab's file-server applications: prod1's /srv/app (scenario `app`, to dr1) and /srv/share
    (scenario `share`, to dr1 and dr2)."""
    for name, text in (
        ("app", "The lab's file-server data (scenario app), replicated from prod1 to dr1.\n"),
        ("share", "The lab's file share (scenario share), replicated from prod1 to dr1 and to dr2.\n"),
    ):
        data = lab.host("prod1").private_dir("/srv") / name
        if not data.exists():
            data.mkdir(parents=True)
            (data / "README").write_text(text)


def down(lab: Lab) -> None:
    """Stop everything the lab started and delete its namespaces. Keys and the simulator build stay; the btrfs
    volumes (prod1's and dr1's /srv/db and /srv/mariadb) are unmounted and deleted with their data."""
    _require_root()
    for h in lab.hosts:
        netns.delete(h.netns)
        (h.dir / "sshd.pid").unlink(missing_ok=True)
    dns.stop(lab)
    vcsim.stop(lab)
    netns.delete(lab.ctl_netns)  # takes the bridge, the hosts' ports and the uplink with it
    if netns.link_exists(lab.uplink):
        run(["ip", "link", "del", lab.uplink])
    for h in lab.hosts:  # last: the hosts' mount namespaces, which hold the volumes too, are gone by now
        volumes.remove(h)


def _set_cable(lab: Lab, name: str, *, up: bool) -> LabHost:
    _require_root()
    h = lab.host(name)
    if not netns.link_exists(h.veth, lab.ctl_netns):
        raise LabError(f"lab host {h.name} is not running", hint="run `twinsite lab up`")
    netns.set_link(h.veth, lab.ctl_netns, up=up)
    return h


def cut(lab: Lab, name: str) -> LabHost:
    """Simulate a site failure: the host's network link goes down (the host itself keeps running)."""
    return _set_cable(lab, name, up=False)


def heal(lab: Lab, name: str) -> LabHost:
    """Undo :func:`cut`, and every :func:`partition` that involves the host."""
    h = _set_cable(lab, name, up=True)
    _nft(h, "delete table inet twinsite_lab", check=False)
    for other in lab.hosts:
        if other != h:
            _nft(other, f"delete element inet twinsite_lab cut {{ {h.address} }}", check=False)
    return h


# Drops what comes from the addresses in the set `cut` (multi-line: nft 1.0.6 refuses the one-line form).
PARTITION_TABLE = """table inet twinsite_lab {
  set cut {
    type ipv4_addr
  }
  chain in {
    type filter hook input priority 0; policy accept;
    ip saddr @cut drop
  }
}
"""


def _nft(h: LabHost, command: str, *, check: bool = True, script: str | None = None) -> None:
    argv = ["ip", "netns", "exec", h.netns, "nft", *(["-f", "-"] if script else command.split())]
    run(argv, check=check, input_data=script.encode() if script else None)


def partition(lab: Lab, a: str, b: str) -> tuple[LabHost, LabHost]:
    """Cut only the link between two hosts (both directions); each still reaches everyone else."""
    _require_root()
    ha, hb = lab.host(a), lab.host(b)
    if ha == hb:
        raise LabError(f"a partition needs two different hosts, not {ha.name} twice")
    for here, there in ((ha, hb), (hb, ha)):
        _nft(here, "", script=PARTITION_TABLE)  # (adding an existing table and set changes nothing)
        _nft(here, f"add element inet twinsite_lab cut {{ {there.address} }}")
    return ha, hb


def exec_argv(lab: Lab, name: str, command: list[str]) -> list[str]:
    """The argv that runs ``command`` inside lab host ``name``."""
    return hosts.exec_argv(lab.host(name), command)


def status(lab: Lab) -> dict[str, Any]:
    """What runs, where it is reachable, and the files a client needs. Never raises for a down lab."""
    ctl_up = netns.exists(lab.ctl_netns)
    host_rows = []
    for h in lab.hosts:
        ns_up = netns.exists(h.netns)
        host_rows.append(
            {
                "name": h.name,
                "fqdn": h.fqdn,
                "site": h.site,
                "address": h.address,
                "netns": h.netns,
                "sshd_pid": hosts.sshd_pid(h),
                "link": ("up" if netns.link_is_up(h.veth, lab.ctl_netns) else "cut") if ctl_up and ns_up else "absent",
            }
        )
    dns_pid, vc_pid = dns.pid(lab), vcsim.pid(lab)
    running = ctl_up and dns_pid is not None and vc_pid is not None and all(r["sshd_pid"] for r in host_rows)
    return {
        "name": lab.name,
        "root": str(lab.root),
        "network": str(lab.network),
        "state": "up" if running else ("partial" if ctl_up or any(r["sshd_pid"] for r in host_rows) else "down"),
        "controller_address": lab.uplink_address,
        "hosts": host_rows,
        "dns": {
            "server": lab.ctl_address,
            "port": 53,
            "zone": DNS_ZONE,
            "tsig_key_file": str(lab.tsig_file),
            "pid": dns_pid,
        },
        "vcenter": {
            "hostname": lab.ctl_address,
            "port": 443,
            "username": VCENTER_USER,
            "password_file": str(lab.vcenter_password_file),
            "ca_file": str(lab.ca_cert),
            "pid": vc_pid,
        },
        "ssh": {
            "config": str(lab.ssh_config),
            "known_hosts": str(lab.known_hosts),
            "private_key": str(lab.ssh_key),
        },
    }

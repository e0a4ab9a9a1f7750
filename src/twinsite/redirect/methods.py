"""Moving users to the new active host: the redirect methods of a scenario (``redirect`` in its definition).

* ``dns``: replace the A record of a name by the new active host's address (RFC 2136, signed with TSIG),
  then read it back from the server. The old TTL is reported: resolvers that cached the old answer
  follow within it.
* ``ip``: move a service address: removed from the old active host when it answers, added here, then
  announced with gratuitous ARP so that neighbours' caches follow at once.
* ``script``: a site script ``<plugins>/redirect/NAME``, run here with ``TWINSITE_SCENARIO``,
  ``TWINSITE_NEW_ACTIVE``, ``TWINSITE_OLD_ACTIVE`` and ``TWINSITE_OLD_REACHABLE`` (``1``/``0``).

Every method is idempotent (run again, it finds its work done and says ``changed: false``), and every
failure is an error naming the method and what it answered: a switchover is never declared done on a
redirect that did not happen. :func:`expectations` says what the users' side must then see.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twinsite.apps.checks import run, site_script
from twinsite.config.scenario import Replication, parse_duration
from twinsite.errors import AppError, CommandError, ConfigError, RedirectError, TwinsiteError
from twinsite.proc import run as proc_run
from twinsite.redirect.dns import TsigKey, lookup, update_address
from twinsite.transport.remote import run_on


@dataclass(frozen=True)
class Move:
    """One redirection: from the old active host to the new one (this host)."""

    scenario: str
    new_active: str
    old_active: str
    old_reachable: bool
    rep: Replication  # how to reach the old active host
    plugins_dir: Path


def address_of(spec: dict[str, Any], host: str) -> str:
    """The address users should reach ``host`` at: from the method's ``addresses``, else ``host`` resolved here."""
    given = dict(spec.get("addresses") or {})
    if host in given:
        return str(given[host])
    try:
        addr = socket.gethostbyname(host)
    except OSError as exc:
        raise ConfigError(
            f"cannot resolve {host} to an address here", hint="set addresses: {HOST: ADDRESS} in the redirect"
        ) from exc
    if ipaddress.ip_address(addr).is_loopback:
        raise ConfigError(
            f"{host} resolves to {addr} (loopback) here: users could not reach that",
            hint="set addresses: {HOST: ADDRESS} in the redirect, or fix /etc/hosts",
        )
    return addr


def check(specs: tuple[dict[str, Any], ...], plugins_dir: Path) -> None:
    """Before anything changes: every method can run (key files readable, scripts present)."""
    for i, spec in enumerate(specs):
        where = f"redirect[{i}] ({spec['type']})"
        try:
            if spec["type"] == "dns":
                TsigKey.load(Path(spec["key_file"]))
            elif spec["type"] == "script":
                site_script(plugins_dir, "redirect", spec["name"])
            elif spec["type"] == "ip":
                ipaddress.ip_interface(spec["address"])
        except (TwinsiteError, ValueError) as exc:
            raise ConfigError(f"{where}: {exc}", hint="nothing was changed") from exc


def apply(specs: tuple[dict[str, Any], ...], move: Move) -> list[dict[str, Any]]:
    out = []
    for spec in specs:
        fn: Callable[[dict[str, Any], Move], dict[str, Any]] = _METHODS[spec["type"]]
        t0 = time.monotonic()
        result = fn(spec, move)
        out.append({"type": spec["type"], **result, "seconds": round(time.monotonic() - t0, 3)})
    return out


def _dns(spec: dict[str, Any], move: Move) -> dict[str, Any]:
    server, name, port = spec["server"], spec["name"], int(spec.get("port", 53))
    ttl = int(spec.get("ttl", 60))
    new = address_of(spec, move.new_active)
    before, ttl_before = lookup(server=server, name=name, port=port)
    changed = before != [new] or ttl_before != ttl
    if changed:
        key = TsigKey.load(Path(spec["key_file"]))
        update_address(server=server, zone=spec["zone"], name=name, addresses=[new], ttl=ttl, key=key, port=port)
    after, ttl_after = lookup(server=server, name=name, port=port)
    if after != [new]:
        raise RedirectError(
            f"{name} resolves to {', '.join(after) or 'nothing'} after the update, not {new}",
            where=f"DNS server {server}:{port}",
            hint="another writer may have changed it; look at the zone",
        )
    return {
        "name": name,
        "from": before,
        "to": after,
        "ttl": ttl_after,
        "ttl_before": ttl_before,
        "changed": changed,
        "note": f"resolvers that cached the old answer follow within {ttl_before or 0} s",
    }


def _ip(spec: dict[str, Any], move: Move) -> dict[str, Any]:
    iface_addr = ipaddress.ip_interface(spec["address"])
    dev = spec["interface"]
    removed = None
    if move.old_reachable:
        a = run_on(move.rep, move.old_active, ["ip", "addr", "del", str(iface_addr), "dev", dev], timeout=15)
        if not a.reached:
            raise RedirectError(f"{move.old_active} stopped answering while its address was moved", where=dev)
        gone = a.code == 0 or "Cannot assign" in a.err
        if not gone:
            raise RedirectError(f"cannot remove {iface_addr} from {move.old_active}: {a.err.strip()}", where=dev)
        removed = a.code == 0
    have = holds(dev, iface_addr)
    if not have:
        try:
            proc_run(["ip", "addr", "add", str(iface_addr), "dev", dev])
        except CommandError as exc:
            raise RedirectError(f"cannot add {iface_addr} here: {exc.message}", where=dev) from exc
    announce(dev, str(iface_addr.ip))
    return {"address": str(iface_addr), "interface": dev, "removed_from_old": removed, "changed": not have}


def holds(dev: str, addr: ipaddress.IPv4Interface | ipaddress.IPv6Interface) -> bool:
    """Whether interface ``dev`` of this host has ``addr``."""
    proc = proc_run(["ip", "-j", "addr", "show", "dev", dev], check=False)
    if proc.returncode != 0:
        raise RedirectError(f"no interface {dev} here: {proc.stderr.decode().strip()}", where=dev)
    for link in json.loads(proc.stdout or b"[]"):
        for a in link.get("addr_info", []):
            if a.get("local") == str(addr.ip) and int(a.get("prefixlen", -1)) == addr.network.prefixlen:
                return True
    return False


def release(specs: tuple[dict[str, Any], ...]) -> list[str]:
    """Remove this host's service addresses (a host that becomes a standby must not answer for them)."""
    removed = []
    for spec in specs:
        if spec["type"] == "ip":
            addr = ipaddress.ip_interface(spec["address"])
            if holds(spec["interface"], addr):
                proc_run(["ip", "addr", "del", str(addr), "dev", spec["interface"]])
                removed.append(str(addr))
    return removed


def announce(dev: str, ip: str, count: int = 3) -> None:
    """Gratuitous ARP for ``ip`` from ``dev``: neighbours that know the address update their caches."""
    if ipaddress.ip_address(ip).version != 4:
        return  # (IPv6: unsolicited neighbour advertisements are the kernel's job on address add)
    mac = bytes.fromhex(Path(f"/sys/class/net/{dev}/address").read_text().strip().replace(":", ""))
    addr = socket.inet_aton(ip)
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, mac, addr, b"\0" * 6, addr)  # request: who-has ip
    frame = b"\xff" * 6 + mac + struct.pack("!H", 0x0806) + arp
    try:
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
            sock.bind((dev, 0))
            for _ in range(count):
                sock.send(frame)
                time.sleep(0.05)
    except OSError as exc:
        raise RedirectError(f"cannot send gratuitous ARP for {ip}: {exc.strerror or exc}", where=dev) from exc


def _script(spec: dict[str, Any], move: Move) -> dict[str, Any]:
    try:
        path = site_script(move.plugins_dir, "redirect", spec["name"])
        env = dict(
            os.environ,
            TWINSITE_SCENARIO=move.scenario,
            TWINSITE_NEW_ACTIVE=move.new_active,
            TWINSITE_OLD_ACTIVE=move.old_active,
            TWINSITE_OLD_REACHABLE="1" if move.old_reachable else "0",
        )
        timeout = parse_duration(spec.get("timeout", 60))
        code, out = run([str(path), *map(str, spec.get("args", []))], timeout=timeout, what=spec["name"], env=env)
    except AppError as exc:
        raise RedirectError(exc.message, where=f"redirect script {spec['name']}") from exc
    if code != 0:
        raise RedirectError(f"exit {code}: {out.strip()[-500:]}", where=f"redirect script {path}")
    return {"name": spec["name"], "output": out.strip()[-500:], "changed": True}


_METHODS: dict[str, Callable[[dict[str, Any], Move], dict[str, Any]]] = {"dns": _dns, "ip": _ip, "script": _script}


def expectations(specs: tuple[dict[str, Any], ...], new_active: str) -> list[tuple[str, str | None]]:
    """What users must see afterwards: (what they connect to, the address it must resolve to, if a name)."""
    out: list[tuple[str, str | None]] = []
    for spec in specs:
        if spec["type"] == "dns":
            out.append((spec["name"], address_of(spec, new_active)))
        elif spec["type"] == "ip":
            addr = str(ipaddress.ip_interface(spec["address"]).ip)
            out.append((addr, addr))
    return out

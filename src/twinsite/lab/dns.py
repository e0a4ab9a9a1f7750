"""The lab's authoritative DNS server: knot, zone dr.test, RFC 2136 updates signed with TSIG."""

from __future__ import annotations

import base64
import json
import os
import shutil

from twinsite.errors import DnsError, LabError
from twinsite.lab.topology import DNS_ZONE, Lab
from twinsite.proc import pid_alive, read_pid, run, spawn, stop_pidfile, wait_until
from twinsite.redirect.dns import TsigKey, resolve_addresses

KNOTD = "/usr/sbin/knotd"

KNOT_CONF = """\
# written by `twinsite lab up`
server:
  rundir: {dir}/run
  listen: {address}@53
database:
  storage: {dir}/db
log:
  - target: stderr
    any: info
key:
  - id: {key.name}
    algorithm: {key.algorithm}
    secret: {key.secret}
acl:
  - id: ddns
    address: [{network}]
    key: {key.name}
    action: update
zone:
  - domain: {zone}
    storage: {dir}/zones
    file: {zone}.zone
    acl: ddns
    zonefile-sync: 0
"""


def zone_text(lab: Lab) -> str:
    lines = [
        f"$ORIGIN {DNS_ZONE}.",
        "$TTL 60",
        "@ SOA ns1 hostmaster 1 3600 600 86400 60",
        "@ NS ns1",
        f"ns1 A {lab.ctl_address}",
        f"vcenter A {lab.ctl_address}",
    ]
    lines += [f"{h.name} A {h.address}" for h in lab.hosts]
    prod = lab.host("prod1").address
    lines += [f"app A {prod}", f"db A {prod}", f"mariadb A {prod}", f"web A {prod}"]
    return "\n".join(lines) + "\n"


def ensure_key(lab: Lab) -> TsigKey:
    """The lab's TSIG key (made once, file mode 0600)."""
    lab.dns_dir.mkdir(parents=True, exist_ok=True)
    if not lab.tsig_file.exists():
        secret = base64.b64encode(os.urandom(32)).decode()
        fd = os.open(lab.tsig_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"name": "twinsite-lab", "algorithm": "hmac-sha256", "secret": secret}, f)
    return TsigKey.load(lab.tsig_file)


def pid(lab: Lab) -> int | None:
    return read_pid(lab.dns_dir / "knotd.pid", comm="knotd")


def start(lab: Lab) -> None:
    """Start knotd in the controller namespace with a pristine zone. Idempotent."""
    if pid(lab) is not None:
        return
    key = ensure_key(lab)
    d = lab.dns_dir
    for sub in ("db", "run", "zones"):
        shutil.rmtree(d / sub, ignore_errors=True)
        (d / sub).mkdir(parents=True)
    (d / "zones" / f"{DNS_ZONE}.zone").write_text(zone_text(lab))
    conf = d / "knot.conf"
    conf.write_text(KNOT_CONF.format(dir=d, address=lab.ctl_address, key=key, network=lab.network, zone=DNS_ZONE))
    conf.chmod(0o600)  # holds the TSIG secret
    run(["knotc", "-c", str(conf), "conf-check"])
    started = spawn(
        ["ip", "netns", "exec", lab.ctl_netns, KNOTD, "-c", str(conf)], pidfile=d / "knotd.pid", logfile=d / "knotd.log"
    )
    wait_until(lambda: _answers(lab) or not pid_alive(started), timeout=10, what="the lab DNS server answering")
    if not _answers(lab):
        raise LabError("the lab DNS server (knotd) exited at start", where=str(d / "knotd.log"), hint="read its log")


def _answers(lab: Lab) -> bool:
    try:
        return bool(resolve_addresses(server=lab.ctl_address, name=f"ns1.{DNS_ZONE}", timeout=0.2))
    except DnsError:
        return False


def stop(lab: Lab) -> None:
    stop_pidfile(lab.dns_dir / "knotd.pid", comm="knotd")

"""What the lab is made of: its hosts, addresses, namespaces and files. Plain values, no side effects."""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path

from twinsite.errors import ConfigError

DEFAULT_ROOT = Path("/var/lib/twinsite-lab")
DEFAULT_NAME = "twl"
DEFAULT_NET = "10.77.0.0/24"
DNS_ZONE = "dr.test"
VCENTER_USER = "administrator@vsphere.local"

#: Directories every lab host has for itself (bind-mounted in its private mount namespace), so that
#: nothing can pass a test because two hosts share a directory or an installation.
PRIVATE_DIRS = ("/srv", "/var/lib/twinsite", "/etc/twinsite", "/opt/twinsite", "/root/.ssh")
#: Files every lab host has for itself: name resolution points at the lab's DNS server, and root's shell
#: start-up files are a fresh Debian host's (the controller's own, e.g. a pyenv set-up, would run on every
#: SSH command a lab host serves: with 14 scenarios that kept both cores busy, lab-notes.md).
PRIVATE_FILES = ("/etc/hosts", "/etc/resolv.conf", "/root/.bashrc", "/root/.profile")
#: Where a fresh Debian host's root gets its start-up files from (base-files).
ROOT_DOTFILES = {
    "/root/.bashrc": "/usr/share/base-files/dot.bashrc",
    "/root/.profile": "/usr/share/base-files/dot.profile",
}
#: Directories (under /srv) that are a btrfs subvolume, each on a loop-file filesystem of its own, per host:
#: the scenario `db` takes consistency points (read-only snapshots) of /srv/db on prod1 and on dr1. How they
#: are made and mounted: lab/volumes.py.
BTRFS_VOLUMES: dict[str, tuple[str, ...]] = {
    "prod1": ("/srv/db", "/srv/mariadb"),
    "dr1": ("/srv/db", "/srv/mariadb"),
}
#: The size of each volume's loop file (sparse: it takes only what the filesystem writes).
BTRFS_SIZE = 4 * 1024**3


@dataclass(frozen=True)
class LabHost:
    """One lab host: a network namespace with its own hostname, mounts and sshd."""

    name: str
    site: str
    address: str
    netns: str
    veth: str  # the host's port on the lab bridge (in the controller namespace)
    dir: Path  # controller-side directory that holds its sshd files and private directories

    @property
    def fqdn(self) -> str:
        return f"{self.name}.{DNS_ZONE}"

    def private_dir(self, path: str) -> Path:
        """Where the host's private copy of ``path`` (one of PRIVATE_DIRS/FILES) lives on the controller."""
        return self.dir / "root" / path.strip("/").replace("/", "_")


@dataclass(frozen=True)
class Lab:
    """The lab: a bridge in a controller namespace, four hosts, a DNS server and a vCenter simulator.

    ``name`` prefixes every namespace and interface, so that two labs (the demo's and a throw-away one
    in a test) can run side by side on different subnets.
    """

    name: str
    root: Path
    network: ipaddress.IPv4Network

    @classmethod
    def from_env(cls) -> Lab:
        """The lab selected by TWINSITE_LAB_DIR / TWINSITE_LAB_NAME / TWINSITE_LAB_NET, defaulting to the demo lab."""
        return cls.create(
            name=os.environ.get("TWINSITE_LAB_NAME", DEFAULT_NAME),
            root=Path(os.environ.get("TWINSITE_LAB_DIR", str(DEFAULT_ROOT))),
            network=os.environ.get("TWINSITE_LAB_NET", DEFAULT_NET),
        )

    @classmethod
    def create(cls, *, name: str, root: Path, network: str) -> Lab:
        if not re.fullmatch(r"[a-z][a-z0-9]{0,3}", name):
            raise ConfigError(
                f"lab name {name!r} must be 1-4 lower-case letters or digits, starting with a letter",
                where="TWINSITE_LAB_NAME",
                hint="it prefixes interface names, which Linux limits to 15 characters",
            )
        try:
            net = ipaddress.IPv4Network(network)
        except ValueError as exc:
            raise ConfigError(f"not an IPv4 network: {network!r}", where="TWINSITE_LAB_NET") from exc
        if net.prefixlen != 24 or not net.is_private:
            raise ConfigError(
                f"lab network {network} must be a private /24", where="TWINSITE_LAB_NET", hint="e.g. 10.77.0.0/24"
            )
        if not root.is_absolute():
            raise ConfigError(f"lab directory {root} must be an absolute path", where="TWINSITE_LAB_DIR")
        return cls(name=name, root=root, network=net)

    def _addr(self, last: int) -> str:
        return str(self.network.network_address + last)

    @property
    def ctl_netns(self) -> str:
        return f"{self.name}-ctl"

    @property
    def ctl_address(self) -> str:
        """Where the lab's services (DNS, vCenter simulator) listen, inside the controller namespace."""
        return self._addr(1)

    @property
    def uplink(self) -> str:
        """The veth in the host's own namespace that joins the lab bridge."""
        return f"{self.name}-up"

    @property
    def uplink_address(self) -> str:
        return self._addr(254)

    @property
    def hosts(self) -> tuple[LabHost, ...]:
        specs = (("prod1", "site-a", 11), ("dr1", "site-b", 12), ("client1", "users", 13), ("dr2", "site-c", 14))
        return tuple(
            LabHost(
                name=n,
                site=site,
                address=self._addr(last),
                netns=f"{self.name}-{n}",
                veth=f"{self.name}-{n}",
                dir=self.root / "hosts" / n,
            )
            for n, site, last in specs
        )

    def host(self, name: str) -> LabHost:
        for h in self.hosts:
            if name in (h.name, h.fqdn, h.address):
                return h
        known = ", ".join(h.name for h in self.hosts)
        raise ConfigError(f"no lab host called {name!r}", hint=f"the lab's hosts are {known}")

    # files on the controller
    @property
    def ssh_dir(self) -> Path:
        return self.root / "ssh"

    @property
    def ssh_key(self) -> Path:
        return self.ssh_dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.ssh_dir / "known_hosts"

    @property
    def ssh_config(self) -> Path:
        return self.ssh_dir / "config"

    @property
    def dns_dir(self) -> Path:
        return self.root / "dns"

    @property
    def tsig_file(self) -> Path:
        return self.dns_dir / "tsig.json"

    @property
    def vcsim_dir(self) -> Path:
        return self.root / "vcsim"

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca" / "ca.pem"

    @property
    def vcenter_password_file(self) -> Path:
        return self.vcsim_dir / "password"

"""Lab hosts: each a network namespace with its own hostname, private mounts and a real OpenSSH server."""

from __future__ import annotations

import shlex
import socket
from pathlib import Path

from twinsite.errors import LabError
from twinsite.lab import netns, volumes
from twinsite.lab.topology import DNS_ZONE, PRIVATE_DIRS, PRIVATE_FILES, ROOT_DOTFILES, Lab, LabHost
from twinsite.proc import read_pid, run, wait_until

SSHD = "/usr/sbin/sshd"

SSHD_CONFIG = """\
# written by `twinsite lab up`
ListenAddress {address}:22
HostKey {dir}/ssh_host_ed25519_key
PidFile {dir}/sshd.pid
AuthorizedKeysFile {dir}/authorized_keys .ssh/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
MaxSessions 64
MaxStartups 64:30:128
ClientAliveInterval 5
ClientAliveCountMax 3
Subsystem sftp /usr/lib/openssh/sftp-server
"""

# Client options shared by the controller's and the hosts' ssh config: verify host keys, give up fast on
# a cut link.
SSH_CLIENT_OPTIONS = """\
  User root
  IdentitiesOnly yes
  StrictHostKeyChecking yes
  ConnectTimeout 5
  ServerAliveInterval 2
  ServerAliveCountMax 3
"""


def ensure_keys(lab: Lab) -> None:
    """The lab's client key and each host's host key: made once, kept across up/down."""
    lab.ssh_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not lab.ssh_key.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "twinsite-lab", "-f", str(lab.ssh_key)])
    for h in lab.hosts:
        h.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        hostkey = h.dir / "ssh_host_ed25519_key"
        if not hostkey.exists():
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", h.fqdn, "-f", str(hostkey)])


def known_hosts_text(lab: Lab) -> str:
    lines = []
    for h in lab.hosts:
        pub = (h.dir / "ssh_host_ed25519_key.pub").read_text().split()
        lines.append(f"{h.name},{h.fqdn},{h.address} {pub[0]} {pub[1]}\n")
    return "".join(lines)


def ssh_config_text(lab: Lab, *, identity: str, known_hosts: str) -> str:
    blocks = []
    for h in lab.hosts:
        blocks.append(
            f"Host {h.name} {h.fqdn}\n  HostName {h.address}\n  HostKeyAlias {h.name}\n"
            f"  IdentityFile {identity}\n  UserKnownHostsFile {known_hosts}\n{SSH_CLIENT_OPTIONS}"
        )
    return "\n".join(blocks)


def write_client_files(lab: Lab) -> None:
    """known_hosts and ssh config for the controller (ssh -F LAB/ssh/config prod1)."""
    lab.known_hosts.write_text(known_hosts_text(lab))
    lab.ssh_config.write_text(
        "# written by `twinsite lab up`: ssh -F this-file prod1\n"
        + ssh_config_text(lab, identity=str(lab.ssh_key), known_hosts=str(lab.known_hosts))
    )


def _prepare_private_files(lab: Lab, h: LabHost) -> None:
    for d in PRIVATE_DIRS:
        h.private_dir(d).mkdir(parents=True, exist_ok=True)
    dot_ssh = h.private_dir("/root/.ssh")
    dot_ssh.chmod(0o700)
    (dot_ssh / "id_ed25519").write_bytes(lab.ssh_key.read_bytes())
    (dot_ssh / "id_ed25519").chmod(0o600)
    (dot_ssh / "id_ed25519.pub").write_bytes(lab.ssh_key.with_suffix(".pub").read_bytes())
    (dot_ssh / "known_hosts").write_text(known_hosts_text(lab))
    (dot_ssh / "config").write_text(
        ssh_config_text(lab, identity="~/.ssh/id_ed25519", known_hosts="~/.ssh/known_hosts")
    )
    hosts = (
        "127.0.0.1 localhost\n"
        + "".join(f"{o.address} {o.fqdn} {o.name}\n" for o in lab.hosts)
        + f"{lab.ctl_address} ns1.{DNS_ZONE} vcenter.{DNS_ZONE}\n"
    )
    h.private_dir("/etc/hosts").write_text(hosts)
    h.private_dir("/etc/resolv.conf").write_text(f"nameserver {lab.ctl_address}\nsearch {DNS_ZONE}\n")
    for path, default in ROOT_DOTFILES.items():
        h.private_dir(path).write_bytes(Path(default).read_bytes() if Path(default).is_file() else b"")
    (h.dir / "authorized_keys").write_bytes(lab.ssh_key.with_suffix(".pub").read_bytes())
    (h.dir / "sshd_config").write_text(SSHD_CONFIG.format(address=h.address, dir=h.dir))


def _start_script(h: LabHost) -> str:
    """Runs inside the host's fresh UTS and mount namespaces: hostname, private mounts, then sshd."""
    q = shlex.quote
    lines = ["set -e", f"hostname {q(h.name)}"]
    for d in PRIVATE_DIRS:
        lines.append(f"mkdir -p {q(d)}")
        # --rbind: what is mounted under the private directory on the controller comes along (a btrfs volume
        # on /srv/db, lab/volumes.py); a plain --bind would show the empty directory under it instead.
        lines.append(f"mount --rbind {q(str(h.private_dir(d)))} {q(d)}")
    for f in PRIVATE_FILES:  # (a file the machine does not have needs no private copy over it)
        lines.append(f"if [ -e {q(f)} ]; then mount --bind {q(str(h.private_dir(f)))} {q(f)}; fi")
    lines.append(f"exec {SSHD} -f {q(str(h.dir / 'sshd_config'))} -E {q(str(h.dir / 'sshd.log'))}")
    return "\n".join(lines) + "\n"


def sshd_pid(h: LabHost) -> int | None:
    return read_pid(h.dir / "sshd.pid", comm="sshd")


def start(lab: Lab, h: LabHost) -> None:
    """Create the host's namespace and link, and start its sshd. Idempotent."""
    if not netns.exists(h.netns):
        netns.add(h.netns)
    if not netns.link_exists(h.veth, lab.ctl_netns):
        run(
            [
                "ip",
                "link",
                "add",
                h.veth,
                "netns",
                lab.ctl_netns,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                h.netns,
            ]
        )
        run(["ip", "-n", lab.ctl_netns, "link", "set", h.veth, "master", "br0", "up"])
        run(["ip", "-n", h.netns, "addr", "add", f"{h.address}/24", "dev", "eth0"])
        run(["ip", "-n", h.netns, "link", "set", "eth0", "up"])
    pid = sshd_pid(h)
    if pid is not None:
        volumes.check_running(h, pid)
        return
    _prepare_private_files(lab, h)
    volumes.ensure(lab, h)  # before the host's mount namespace is made: it starts as a copy of ours
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory sshd insists on
    run([SSHD, "-t", "-f", str(h.dir / "sshd_config")])
    script = h.dir / "start.sh"
    script.write_text(_start_script(h))
    run(["ip", "netns", "exec", h.netns, "unshare", "--uts", "--mount", "--propagation", "private", "sh", str(script)])
    wait_until(lambda: sshd_pid(h) is not None and _answers(h.address, 22), timeout=10, what=f"sshd on {h.name}")


def _answers(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.5):
            return True
    except OSError:
        return False


def exec_argv(h: LabHost, command: list[str]) -> list[str]:
    """The argv that runs ``command`` inside ``h``: its network, hostname and mounts."""
    pid = sshd_pid(h)
    if pid is None:
        raise LabError(f"lab host {h.name} is not running", hint="run `twinsite lab up`")
    return ["nsenter", "--target", str(pid), "--net", "--uts", "--mount", "--", *command]

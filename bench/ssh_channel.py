"""One SSH channel's throughput into the lab's dr1: the OpenSSH client (twinsite's default transport) vs paramiko.

Both stream the same incompressible bytes into ``cat > /dev/null`` on dr1 over one session, host key
verified against the lab's known_hosts. The figure is MiB/s (wall clock), plus client CPU seconds per GiB.
"""

from __future__ import annotations

import os
import resource
import subprocess
import time
from typing import Any

import paramiko

from twinsite.lab.topology import Lab

CHUNK = os.urandom(1 << 20)


def _cpu() -> float:
    self_, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return self_.ru_utime + self_.ru_stime + kids.ru_utime + kids.ru_stime


def openssh(lab: Lab, mib: int) -> tuple[float, float]:
    cpu0, t0 = _cpu(), time.monotonic()
    proc = subprocess.Popen(["ssh", "-F", str(lab.ssh_config), "dr1", "cat > /dev/null"], stdin=subprocess.PIPE)
    stdin = proc.stdin
    if stdin is None:
        raise RuntimeError("no pipe to ssh")
    for _ in range(mib):
        stdin.write(CHUNK)
    stdin.close()
    if proc.wait() != 0:
        raise RuntimeError("ssh to dr1 failed")
    return time.monotonic() - t0, _cpu() - cpu0


def with_paramiko(lab: Lab, mib: int) -> tuple[float, float]:
    cpu0, t0 = _cpu(), time.monotonic()
    client = paramiko.SSHClient()
    client.load_host_keys(str(lab.known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        lab.host("dr1").address, username="root", key_filename=str(lab.ssh_key), look_for_keys=False, allow_agent=False
    )
    try:
        stdin, stdout, _ = client.exec_command("cat > /dev/null")
        for _ in range(mib):
            stdin.write(CHUNK)
        stdin.channel.shutdown_write()
        if stdout.channel.recv_exit_status() != 0:
            raise RuntimeError("paramiko session to dr1 failed")
    finally:
        client.close()
    return time.monotonic() - t0, _cpu() - cpu0


def run(lab: Lab, *, quick: bool = False) -> list[dict[str, Any]]:
    mib = 64 if quick else 512
    ours_t, ours_cpu = openssh(lab, mib)
    peer_t, peer_cpu = with_paramiko(lab, mib)
    ours, peer = mib / ours_t, mib / peer_t
    return [
        {
            "name": f"one SSH channel, {mib} MiB into dr1",
            "unit": "MiB/s",
            "twinsite": {
                "transport": "openssh",
                "value": ours,
                "seconds": ours_t,
                "cpu_s_per_gib": ours_cpu * 1024 / mib,
            },
            "peer": {"name": "paramiko", "value": peer, "seconds": peer_t, "cpu_s_per_gib": peer_cpu * 1024 / mib},
            "ratio": ours / peer,
            "ratio_meaning": "throughput, higher is better for twinsite",
        }
    ]

"""``twinsite lab wan HOST``: a WAN path to a lab host, a round-trip delay and a rate (docs/lab.md, A WAN path).

The rate is ``tc tbf`` on both ends of the host's link (to it on its bridge port, from it on its eth0): every
connection to or from the host shares it. The delay cannot be made by the kernel here (``tc netem`` does not
exist on every kernel), so it is a relay (lab.relay) in the host's namespace on port ``RELAY_PORT``, in front of
its sshd: a connection to ``HOST:2222`` (ssh ``-p 2222``, or ``ssh_options: {Port: 2222}`` in a scenario) has
the round trip; port 22 has only the rate. ``--off`` removes both. ``twinsite lab down`` ends the relay with the
host's namespace.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any

from twinsite.errors import LabError
from twinsite.lab import netns
from twinsite.lab.topology import Lab, LabHost
from twinsite.proc import run

RELAY_PORT = 2222


def _state_file(lab: Lab, h: LabHost) -> Any:
    return lab.root / f"wan-{h.name}.json"


def state(lab: Lab, name: str) -> dict[str, Any] | None:
    """The WAN path to ``name`` as it was set (rtt in seconds, rate as tc says it, the relay's pid), or None."""
    try:
        data: dict[str, Any] = json.loads(_state_file(lab, lab.host(name)).read_text())
    except (FileNotFoundError, ValueError):
        return None
    return data


def on(lab: Lab, name: str, *, rtt: float, rate: str) -> dict[str, Any]:
    """Give the path to ``name`` a round trip of ``rtt`` seconds through RELAY_PORT and a rate of ``rate``
    (tc's units: 100mbit, 20mbit); replaces an earlier setting."""
    h = lab.host(name)
    if not netns.link_exists(h.veth, lab.ctl_netns):
        raise LabError(f"lab host {h.name} is not running", hint="run `twinsite lab up`")
    if rtt < 0 or rtt > 10:
        raise LabError(f"a round trip of {rtt:g} s", hint="from 0 to 10 seconds, e.g. --rtt 50ms")
    off(lab, name)
    tbf = ["tc", "qdisc", "replace", "dev", "DEV", "root", "tbf", "rate", rate, "burst", "64kb", "latency", "200ms"]
    for ns, dev in ((lab.ctl_netns, h.veth), (h.netns, "eth0")):
        run(["ip", "netns", "exec", ns, *[dev if a == "DEV" else a for a in tbf]])
    argv = [sys.executable, "-m", "twinsite.lab.relay", str(RELAY_PORT), h.address, "22", f"{rtt / 2:.6f}"]
    relay = subprocess.Popen(  # (our own module, in the host's namespace)
        ["ip", "netns", "exec", h.netns, *argv],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    st = {"host": h.name, "rtt_seconds": rtt, "rate": rate, "port": RELAY_PORT, "relay_pid": relay.pid}
    _state_file(lab, h).write_text(json.dumps(st))
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection((h.address, RELAY_PORT), timeout=1).close()
            return st
        except OSError as exc:
            if relay.poll() is not None or time.monotonic() > deadline:
                off(lab, name)
                raise LabError(f"the WAN relay of {h.name} did not start: {exc}") from exc
            time.sleep(0.05)


def off(lab: Lab, name: str) -> None:
    """Remove the delay and the rate of the path to ``name`` (nothing to do when there are none)."""
    h = lab.host(name)
    st = state(lab, name)
    if st is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError, ValueError):
            os.killpg(int(st["relay_pid"]), signal.SIGTERM)
        _state_file(lab, h).unlink(missing_ok=True)
    for ns, dev in ((lab.ctl_netns, h.veth), (h.netns, "eth0")):
        if netns.exists(ns) and netns.link_exists(dev, ns):
            run(["ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", dev, "root"], check=False)

"""The users of the lab-scale site (inventories/lab-scale: the white paper's 14 servers, each a scenario from
prod1 to dr1): a light write load on every server at once, through each server's own name.

Each write goes to the host that ``<scenario>.dr.test`` names at the lab's DNS server at that moment (asked
before every write, as a client without a cache). Each server's application is a gate (its ``service``
commands in the profile open it, close it and ask it): a write is taken only while the gate is open on
that host, under the gate's lock, so that stopping the application waits for the write under way and
refuses the next ones, as a real server does. A write is acknowledged once its file and the directory
holding it are on disk; every acknowledged write must be found, byte for byte, wherever the server is
active afterwards.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from twinsite.lab.topology import DNS_ZONE, Lab
from twinsite.redirect.dns import resolve_addresses


@dataclass(frozen=True)
class Write:
    scenario: str
    name: str  # the file's name in the scenario's root
    sha256: str
    host: str  # where it was acknowledged
    at: float


def scale_dir(lab: Lab, host: str) -> Path:
    """Where the profile's roots are on ``host`` (``/srv/scale``, seen from the controller)."""
    return lab.host(host).private_dir("/srv") / "scale"


def gate(lab: Lab, host: str, scenario: str) -> Path:
    """The file that says the server's application runs on ``host`` (outside its root: not replicated)."""
    return scale_dir(lab, host) / f".{scenario}.up"


def gate_lock(lab: Lab, host: str, scenario: str) -> Path:
    return scale_dir(lab, host) / f".{scenario}.lock"


class SiteUsers(threading.Thread):
    """Writes ``size`` random bytes as a new file, one server after the other, every ``every`` seconds."""

    def __init__(self, lab: Lab, scenarios: list[str], *, every: float = 0.05, size: int = 16384) -> None:
        super().__init__(daemon=True)
        self.lab, self.scenarios, self.every, self.size = lab, list(scenarios), every, size
        self.acked: list[Write] = []
        self.refused = 0  # the name did not answer, or the application was stopped where it pointed
        self.error: BaseException | None = None
        self.stopping = threading.Event()
        self._by_address = {h.address: h.name for h in lab.hosts}

    def run(self) -> None:
        try:
            i = 0
            while not self.stopping.is_set():
                scenario = self.scenarios[i % len(self.scenarios)]
                self._write(scenario, f"u{i:07d}")
                i += 1
                self.stopping.wait(self.every)
        except BaseException as exc:  # (seen by stop(): a load that broke must not look like a quiet one)
            self.error = exc

    def _write(self, scenario: str, name: str) -> None:
        try:
            address = resolve_addresses(server=self.lab.ctl_address, name=f"{scenario}.{DNS_ZONE}")[0]
        except (OSError, IndexError):
            self.refused += 1
            return
        host = self._by_address[address]
        with gate_lock(self.lab, host, scenario).open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not gate(self.lab, host, scenario).exists():
                self.refused += 1
                return
            data = os.urandom(self.size)
            root = scale_dir(self.lab, host) / scenario
            with (root / name).open("wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            self.acked.append(Write(scenario, name, hashlib.sha256(data).hexdigest(), host, time.time()))

    def stop(self) -> None:
        self.stopping.set()
        self.join(30)
        if self.error is not None:
            raise RuntimeError(f"the users' load failed: {self.error!r}") from self.error

    def on(self, host: str, since: float = 0.0) -> dict[str, int]:
        """How many writes each server acknowledged on ``host`` since ``since``."""
        out = dict.fromkeys(self.scenarios, 0)
        for w in list(self.acked):
            if w.host == host and w.at >= since:
                out[w.scenario] += 1
        return out

    def missing_on(self, host: str) -> list[str]:
        """Every acknowledged write that ``host`` does not hold with its content (by scenario/name)."""
        out = []
        for w in list(self.acked):
            path = scale_dir(self.lab, host) / w.scenario / w.name
            try:
                same = hashlib.sha256(path.read_bytes()).hexdigest() == w.sha256
            except FileNotFoundError:
                same = False
            if not same:
                out.append(f"{w.scenario}/{w.name} (acknowledged on {w.host})")
        return out

"""Scenarios on the lab. A test's own scenario: prod1 -> dr1 with its own root /srv/<name> and config
directory, run by an agent the test starts and kills, from the agent bundle installed the way the agent role
installs it. And the lab's declared scenarios, as ``playbooks/configure.yml`` leaves them."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import asdict
from typing import Any

from harness.cli import REPO, VENV_BIN, ansible
from harness.hosts import kill_receivers, twinsite_on
from harness.wait import eventually
from twinsite import bundle
from twinsite.errors import TwinsiteError
from twinsite.lab import netns
from twinsite.lab.topology import Lab
from twinsite.proc import argv_of
from twinsite.state import sender_status, stopped
from twinsite.state.layout import ScenarioState
from twinsite.tree import differences, digest, entries

BUNDLES = REPO / "build"  # the same place configure.yml's agent role builds it: one build per source version
_OWN: set[str] = set()  # the tests' own scenarios, declared on dr1 beside configure.yml's (not among them)


def install(lab: Lab) -> None:
    """What the agent role does, done directly: unpack the controller-built bundle (with the paramiko extra, as
    the lab inventory asks) into a release directory of each host's /opt/twinsite and switch to it."""
    b = bundle.build(BUNDLES, bundle.local_target(), extras=("paramiko",))
    for h in lab.hosts:
        install_dir = h.private_dir("/opt/twinsite")
        bundle.activate(install_dir, bundle.unpack(b, install_dir).name)


class Scenario:
    """One scenario on prod1 -> dr1 with its own root /srv/<name>, and the agent process that runs it."""

    def __init__(self, lab: Lab, name: str, **replication: Any) -> None:
        self.lab, self.name = lab, name
        self.src = lab.host("prod1").private_dir("/srv") / name
        self.dst = lab.host("dr1").private_dir("/srv") / name
        self.place = ScenarioState(lab.host("prod1").private_dir("/var/lib/twinsite"), name)  # prod1's state
        self.state = self.place.dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.log = lab.host("prod1").private_dir("/var/lib/twinsite") / f"{name}-agent.log"
        self.kill_strays()
        dr1 = ScenarioState(lab.host("dr1").private_dir("/var/lib/twinsite"), name)
        for p in (self.src, self.dst, self.state, dr1.dir):
            shutil.rmtree(p, ignore_errors=True)
        self.src.mkdir(parents=True)
        doc = {"name": name, "master": "prod1", "replicas": ["dr1"], "roots": [{"path": f"/srv/{name}"}]}
        # (/srv/<name> is on the lab hosts' ordinary filesystem: file by file unless a test says otherwise)
        # (the workloads chmod files setuid: replicated as they are, so that replica and source compare byte for
        # byte; the default, privileged metadata dropped, has its own tests)
        doc["replication"] = {"consistency": "file", "privileged_metadata": "keep", **replication}
        # Its own config directory: an agent configured elsewhere (configure.yml's) must not pick it up.
        self.config_dir = f"/etc/twinsite/only-{name}"
        self.config = lab.host("prod1").private_dir("/etc/twinsite") / f"only-{name}"
        shutil.rmtree(self.config, ignore_errors=True)
        self.config.mkdir(parents=True)
        self.write_definition(doc)

    def write_definition(self, doc: dict[str, Any]) -> None:
        """The definition in prod1's agent's own directory, and on both hosts where `twinsite receive` finds it
        (a standby acts on its own declaration only; after a switchover prod1 is the standby). There it is
        stopped, so that the agents configure.yml runs run nothing for it (a test that wants a monitor or a
        switchover runs its own agents)."""
        (self.config / f"{self.name}.yml").write_text(json.dumps(doc))  # JSON is YAML
        _OWN.add(self.name)
        for host in ("prod1", "dr1"):
            declared = self.lab.host(host).private_dir("/etc/twinsite") / "scenarios"
            declared.mkdir(parents=True, exist_ok=True)
            stopped.mark(declared, self.name, True)
            (declared / f"{self.name}.yml").write_text(json.dumps(doc))

    def definition(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.config / f"{self.name}.yml").read_text())
        return data

    def status(self) -> dict[str, Any]:
        """What prod1's sender to dr1 last said (empty before it said anything)."""
        try:
            st = sender_status.read(self.place.sender(0, "dr1").status)
        except TwinsiteError:  # (a damaged file says nothing)
            return {}
        return asdict(st) if st is not None else {}

    def start(self) -> None:
        self.started_at = time.time()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    str(VENV_BIN / "twinsite"),
                    "lab",
                    "exec",
                    "prod1",
                    "--",
                    "/opt/twinsite/bin/twinsite",
                    "agent",
                    "--config-dir",
                    self.config_dir,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)
            self.proc = None

    def stop(self) -> None:
        self.kill(signal.SIGTERM)

    def kill_strays(self) -> None:
        """An agent for this scenario left by an interrupted run would share its journal: stop it first."""
        mark = f"/etc/twinsite/only-{self.name}".encode()
        for pid in netns.pids(self.lab.host("prod1").netns):
            argv = argv_of(pid) or []
            if b"agent" in argv and mark in argv:
                with contextlib.suppress(ProcessLookupError):  # (it may have exited meanwhile)
                    os.kill(pid, signal.SIGKILL)

    def kill_receiver(self) -> int:
        """kill -9 every `twinsite receive` of this scenario on dr1; returns how many."""
        return kill_receivers(self.lab, self.name)

    def wait_synced(self, timeout: float = 120, settle: float = 1.0) -> dict[str, Any]:
        """Until everything planned is acknowledged, nothing captured waits to be planned (``pending``), no file
        is unsettled (read while it was being written: sync.planner) and nothing new was planned for ``settle``
        seconds."""
        stable_since: float | None = None
        last: tuple[Any, Any] | None = None
        synced: dict[str, Any] = {}

        def settled() -> bool:
            nonlocal stable_since, last
            st = self.status()
            key = (st.get("planned_seq"), st.get("acked_seq"))
            fresh = st.get("updated_at", 0) >= self.started_at  # written by this run of the agent
            done = fresh and st.get("state") == "replicating" and key[0] == key[1]
            done = done and not st.get("unsettled") and not st.get("pending")
            if done and key == last:
                if stable_since and time.monotonic() - stable_since >= settle:
                    synced.update(st)
                    return True
                stable_since = stable_since or time.monotonic()
            else:
                stable_since = None
            last = key
            return False

        if not eventually(settled, timeout=timeout, interval=0.05, what=f"{self.name} in sync"):
            raise AssertionError(f"not in sync after {timeout} s: {self.status()}\n{self.log.read_text()[-3000:]}")
        return synced

    def assert_equal(self) -> None:
        """The replica is the source byte for byte, as the scenario replicates it: without privileged metadata
        unless it keeps it (replication.privileged_metadata, as `twinsite verify` compares)."""
        raw = src = entries(self.src)
        if self.definition().get("replication", {}).get("privileged_metadata", "drop") == "drop":
            src = {k: e.unprivileged() for k, e in raw.items()}
        diffs = differences(src, entries(self.dst))
        if diffs != []:
            raise AssertionError(f"{len(diffs)} differences, first: {diffs[:10]}")
        if src == raw and digest(self.src) != digest(self.dst):
            raise AssertionError(f"the digest of {self.src} differs from the replica's, {self.dst}")


_DECLARED: dict[str, bytes] = {}  # every host's scenario declarations as configure.yml last left them


def _declarations(lab: Lab) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for h in lab.hosts:
        d = lab.host(h.name).private_dir("/etc/twinsite") / "scenarios"
        if d.is_dir():
            mine = [f for f in sorted(d.iterdir()) if f.is_file() and f.name.split(".")[0] not in _OWN]
            found |= {f"{h.name}/{f.name}": f.read_bytes() for f in mine}
    return found


def ensure_configured(lab: Lab) -> None:
    """The lab as playbooks/configure.yml declares it: the playbook runs unless it already ran in this session
    and every host's scenario declarations are still byte for byte as it left them, with every agent running
    (a test that changed a declaration, stopped a scenario or an agent gets a real run)."""
    if _DECLARED and _declarations(lab) == _DECLARED:
        agents = ("prod1", "dr1", "dr2")  # (every host the lab inventory's scenarios name)
        running = [twinsite_on(lab, h, "service", "status").get("result", {}).get("running") for h in agents]
        if all(running):
            return
    configured = ansible("ansible-playbook", "playbooks/configure.yml", timeout=600)
    if configured.returncode != 0:
        raise AssertionError(configured.stdout[-3000:])
    _DECLARED.clear()
    _DECLARED.update(_declarations(lab))


def reconfigure(lab: Lab) -> None:
    """configure.yml runs again, whatever the declarations say: for a test that changed what they do not show
    (an agent's options or release, the authorized replication keys)."""
    _DECLARED.clear()
    ensure_configured(lab)

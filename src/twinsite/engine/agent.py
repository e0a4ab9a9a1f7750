"""The agent: runs every scenario this host is active for, and keeps their state under the state directory.

Layout of ``STATE_DIR/<scenario>/``:

    root-<n>/<replica>/journal/   the journal of root n towards that standby (docs/formats.md)
    root-<n>/<replica>/status.json  the sender's status (what ``twinsite status`` reads)
    recv/root-<n>/applied_seq      on a standby: the durable position of root n
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
from pathlib import Path
from types import FrameType

from twinsite.config.loader import load_file
from twinsite.config.scenario import Root, Scenario
from twinsite.engine.sender import Sender
from twinsite.errors import ConfigError
from twinsite.monitor import Monitor
from twinsite.transport.channels import Endpoint, to_host

DEFAULT_CONFIG_DIR = Path("/etc/twinsite/scenarios")
DEFAULT_STATE_DIR = Path("/var/lib/twinsite")


def this_host() -> str:
    return os.environ.get("TWINSITE_HOST") or socket.gethostname()


def load_dir(config_dir: Path) -> list[Scenario]:
    """Every scenario in ``config_dir/*.yml``; all files are checked before any is used."""
    if not config_dir.is_dir():
        return []
    scenarios: list[Scenario] = []
    for f in sorted(config_dir.glob("*.yml")) + sorted(config_dir.glob("*.yaml")):
        scenarios.extend(load_file(f))
    names = [s.name for s in scenarios]
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        raise ConfigError(f"scenario names used more than once: {', '.join(dups)}", where=str(config_dir))
    return scenarios


def find_scenario(config_dir: Path, name: str) -> Scenario:
    """The scenario called ``name`` in ``config_dir``, or a ConfigError naming the ones there are."""
    found = {s.name: s for s in load_dir(config_dir)}
    if name not in found:
        raise ConfigError(f"no scenario {name!r} in {config_dir}", hint=f"known: {', '.join(found) or 'none'}")
    return found[name]


def receiver_state(state_dir: Path, scenario: str, index: int) -> Path:
    return state_dir / scenario / "recv" / f"root-{index}"


def sender_state(state_dir: Path, scenario: str, index: int, replica: str) -> Path:
    return state_dir / scenario / f"root-{index}" / replica


def endpoint(s: Scenario, root: Root, index: int, replica: str, state_dir: Path) -> Endpoint:
    rep = s.replication
    state = str(receiver_state(state_dir, s.name, index))
    return to_host(rep, replica, [rep.remote_twinsite, "receive", "--root", root.path, "--state", state])


def is_stopped(config_dir: Path, name: str) -> bool:
    return (config_dir / f"{name}.stopped").exists()


def wanted(
    scenarios: list[Scenario], host: str, config_dir: Path, state_dir: Path
) -> dict[str, tuple[Scenario, int, str]]:
    """The senders this host should run, keyed by what identifies their configuration."""
    out: dict[str, tuple[Scenario, int, str]] = {}
    for s in scenarios:
        if s.master != host or is_stopped(config_dir, s.name):
            continue
        for i, _root in enumerate(s.roots):
            for replica in s.replicas:
                out[f"{s.name}/{i}/{replica}/{hash(s)}"] = (s, i, replica)
    return out


def make_sender(s: Scenario, index: int, replica: str, state_dir: Path) -> Sender:
    root = s.roots[index]
    return Sender(
        s,
        root,
        endpoint(s, root, index, replica, state_dir),
        sender_state(state_dir, s.name, index, replica),
        replica=replica,
    )


def run(config_dir: Path, state_dir: Path, host: str, *, reload_every: float = 2.0) -> int:
    """Run until SIGTERM/SIGINT, following changes to the config directory (scenarios added, changed,
    stopped or removed) within ``reload_every`` seconds."""
    done = threading.Event()

    def _stop(_sig: int, _frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    running: dict[str, Sender] = {}
    monitors: dict[str, Monitor] = {}
    print(f"twinsite agent on {host}: watching {config_dir}", flush=True)
    while not done.is_set():
        try:
            scenarios = load_dir(config_dir)
            want = wanted(scenarios, host, config_dir, state_dir)
            _follow_monitors(monitors, scenarios, host, config_dir, state_dir)
        except ConfigError as exc:
            print(f"twinsite agent: configuration not reloaded: {exc}", flush=True)
            want = {k: (snd.scenario, 0, "") for k, snd in running.items()}
        for key in [k for k in running if k not in want]:
            running.pop(key).stop()
            print(f"twinsite agent: stopped {key.rsplit('/', 1)[0]}", flush=True)
        for key, (s, i, replica) in want.items():
            if key not in running:
                snd = make_sender(s, i, replica, state_dir)
                snd.start()
                running[key] = snd
                print(f"twinsite agent: started {key.rsplit('/', 1)[0]}", flush=True)
        done.wait(reload_every)
    for snd in running.values():
        snd.stop()
    for mon in monitors.values():
        mon.stop(wait=False)
    for mon in monitors.values():
        mon.join(timeout=5)  # (daemon threads: a round still waiting on ssh ends with the process)
    return 0


def _follow_monitors(
    monitors: dict[str, Monitor], scenarios: list[Scenario], host: str, config_dir: Path, state_dir: Path
) -> None:
    """One monitor per scenario this host is a standby of (monitoring on, scenario not stopped)."""
    want = {
        # (alerts and application settings are not in the scenario's hash: a change to them is a new monitor)
        f"{s.name}/{hash(s)}/{json.dumps([s.alerts, s.application_settings], sort_keys=True)}": s
        for s in scenarios
        if host in s.replicas and s.monitoring.enabled and not is_stopped(config_dir, s.name)
    }
    gone = [monitors.pop(k) for k in [k for k in monitors if k not in want]]
    for mon in gone:  # all told first, then waited for: no monitor waits for another's round
        mon.stop(wait=False)
    for mon in gone:
        mon.join()
        print(f"twinsite agent: stopped monitoring {mon.s.name}", flush=True)
    for key, s in want.items():
        if key not in monitors:
            monitors[key] = Monitor(s, host, state_dir, config_dir)
            monitors[key].start()
            print(f"twinsite agent: monitoring {s.master} for {s.name}", flush=True)
